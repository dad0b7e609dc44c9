"""Scale benchmark: disk per person and per audit event, and API p99, at 100k, 1M and 10M
persons (issue 16, goal 5).

Reproduce (from the repo root, as root for the embedded PostgreSQL user)::

    .venv/bin/python bench/scale.py --sizes 100000,1000000            # ~10-15 min here
    .venv/bin/python bench/scale.py                                   # up to 10,000,000 (long)

Method (one run, one stack: bench/_harness.py starts a fresh data dir, the embedded
PostgreSQL and `idservice serve --workers N`; everything is removed at the end):

1. Template: one registration issued through the API (`POST /v1/pins`); its stored `record`
   (canonical JSON of the request) and its `pin.issue` audit event are the shape every SQL row
   copies, so the generated rows have exactly the keys the issuance path writes.
2. Load, for each size in `--sizes` (cumulative, smallest first): persons are generated in the
   database as the owner, `--chunk` per statement, one statement per chunk doing what
   `issue_pin()` does for each row: a `person` row (valid PIN `PPPGYY` + 6 digits in the real
   bucket of its province, sex and birth year; names, dates, parents like bench/lua/issue.lua;
   `name_folded` by the service's own `fold_name`), its `registration` row (the trigger of
   migrations writes its `liveBirth` notify event, as for an API issuance) and its `pin.issue`
   audit event (`client` demo-registrar-052, outcome `issued`, details = the registration key).
   Then `pin_block` is recounted from `person` (what the allocator reads), the events are
   sequenced with the service's own `audit_sequence()` (the server's sequencer runs too), the
   server's integrator hashes them into the Merkle tree and checkpoints them (waited for), the
   delivery worker sequences the `liveBirth` outbox rows and prunes them, nobody being
   subscribed (waited for: a 9M backlog takes minutes and would share the cores with the
   measurement), and `VACUUM ANALYZE` runs on the tables (autovacuum would do it later on a
   live system). `notify_event`'s size is therefore what is left of the outbox after pruning.
   Then a `CHECKPOINT` writes the load's dirty buffers, so that the measured requests do not.
   The API-issued persons (template, the issuance measurement of each size) are counted apart.
3. Measure at each size, over HTTP, a fixed small load: `--concurrency` keep-alive connections
   (httpx, one event loop), `--requests` requests per operation after 20 warm-up requests,
   persons drawn at random from the table (province 052, the officer's jurisdiction):
   read by PIN (`GET /v1/persons/{pin}?purpose=` as the demo officer, logged in with
   `idservice login` and its SoftHSM token), search by name + date of birth
   (`GET /v1/persons?full_name=&date_of_birth=&purpose=`), verify (`POST /v1/pins/verify` as
   the registrar; the verify rate limit out of reach) and single issuance (`POST /v1/pins`, new
   registrations). p50/p90/p99/max per operation, CPU per part and the load average.
4. Disk: `pg_total_relation_size` (table + indexes + TOAST) of `person`, `registration`, the
   `audit_event` partitions and `audit_log`, divided by their row counts; every index size;
   plus the Merkle nodes (`audit_node`) and `notify_event` the issuances also wrote.
5. `EXPLAIN (ANALYZE, BUFFERS)` of the search statement (queries/persons.py SEARCH_FOLDED)
   for one sampled name + date of birth, as the service role; it must not scan `person`
   sequentially.
6. Targets: read and verify p99 at the largest size <= 2x their p99 at the smallest.

Report on stdout and in bench/results/scale-<UTC time>.json (written again after each size,
so a run cut short keeps what it measured). Never part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/scale.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx

from bench._harness import BENCH_DIR, REPO, VENV_BIN, Stack, _percentiles_ms, log
from idservice.db.roles import url_for
from idservice.persons.names import fold_name
from idservice.queries import persons as q

RESULTS_DIR = BENCH_DIR / "results"
SERVICE_ROLE = "idservice_app"
PURPOSE = "Kiểm tra hồ sơ (bench scale)"
# Provinces of the generated persons: codes valid from 1930 to today in the dated table (the
# samples for reads come from 052, the demo officer's jurisdiction).
PROVINCES = ["052", "001", "079", "048", "031", "092"]
YEARS = 96  # birth years 1930..2025, as bench/lua/issue.lua
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ",
          "Ngô", "Dương", "Lý"]
MIDDLE = {"M": ["Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh"],
          "F": ["Thị", "Ngọc", "Thu", "Minh", "Kim", "Thanh"]}
GIVEN = {"M": ["Hùng", "Dũng", "Nam", "Long", "Tuấn", "Khoa", "Phúc", "Bảo", "Huy"],
         "F": ["Lan", "Anh", "Hoa", "Mai", "Linh", "Trang", "Vy", "Ngân", "Hương"]}
COMMUNES = ["Nhơn Lý", "Ghềnh Ráng", "Quang Trung", "Nhơn Hội", "Tam Quan", "Bồng Sơn",
            "Phù Cát", "Tây Sơn", "Vĩnh Thạnh", "An Nhơn", "Hoài Nhơn"]


def names(sex: str) -> list[str]:
    return [f"{f} {m} {g}" for f in FAMILY for m in MIDDLE[sex] for g in GIVEN[sex]]


# One statement per chunk: persons g = $1..$2. Bucket b = g mod (provinces x 2 x 96) fixes
# province, sex and birth year; the serial (g / buckets) * 7919 + b mod 10^6 is a bijection
# inside the bucket (7919 is prime to 10^6), so the PINs are unique and spread like random
# draws. A PIN the API took meanwhile is skipped (ON CONFLICT), with its registration and event.
# $3 template record (jsonb), $4/$5 male names and folded names, $6/$7 female, $8 provinces,
# $9 communes.
LOAD = """
WITH src AS (
  SELECT g, h, b, p.prov, p.sex, p.year,
         make_pin(p.prov || ((CASE WHEN p.year < 2000 THEN 0 ELSE 2 END)
                             + (CASE WHEN p.sex = 'F' THEN 1 ELSE 0 END))::text
                          || lpad((p.year % 100)::text, 2, '0'),
                  (((g / p.nb) * 7919 + b) % 1000000)::int) AS pin,
         make_date(p.year, (1 + (h / 96) % 12)::int, (1 + (h / 1152) % 20)::int) AS dob,
         ($9::text[])[1 + (h / 46080) % 11] AS commune,
         (1 + (h / 7) % 756)::int AS ni, (1 + (h / 3) % 756)::int AS fi,
         (1 + (h / 5) % 756)::int AS mi
    FROM generate_series($1::bigint, $2::bigint) AS g,
         LATERAL (SELECT (g * 2654435761) % 4294967296 AS h,
                         g % (cardinality($8::text[]) * 2 * 96) AS b) AS hb,
         LATERAL (SELECT ($8::text[])[1 + b % cardinality($8::text[])] AS prov,
                         CASE WHEN (b / cardinality($8::text[])) % 2 = 0 THEN 'M' ELSE 'F' END
                           AS sex,
                         1930 + (b / (cardinality($8::text[]) * 2))::int AS year,
                         cardinality($8::text[]) * 2 * 96 AS nb) AS p
), gen AS (
  SELECT s.*, s.dob + (g % 8)::int AS registered_on,
         'UBND xã ' || s.commune || ', Bình Định' AS authority, 'scale-' || g AS number,
         CASE WHEN s.sex = 'M' THEN ($4::text[])[s.ni] ELSE ($6::text[])[s.ni] END AS full_name,
         CASE WHEN s.sex = 'M' THEN ($5::text[])[s.ni] ELSE ($7::text[])[s.ni] END AS name_folded,
         '052' || lpad(((g * 7919) % 1000000000)::text, 9, '0') AS mother_pin,
         s.prov || CASE WHEN s.year - 22 - h % 15 >= 2000 THEN '2' ELSE '0' END
           || lpad(((s.year - 22 - h % 15) % 100)::text, 2, '0')
           || lpad((h % 1000000)::text, 6, '0') AS father_pin
    FROM src s
), ins AS (
  INSERT INTO person (pin, registration_authority, registration_number, registered_on,
                      province_code, full_name, name_folded, other_names_folded, sex,
                      date_of_birth, record, mother_pin, mother_name_folded)
  SELECT r.pin, r.authority, r.number, r.registered_on, r.prov, r.full_name, r.name_folded,
         '{}', r.sex, r.dob,
         $3::jsonb
         || jsonb_build_object(
              'registration', ($3::jsonb -> 'registration') || jsonb_build_object(
                  'authority', r.authority, 'number', r.number,
                  'book', lpad((1 + (r.h / 96) % 12)::text, 2, '0') || '/' || r.year,
                  'registered_on', r.registered_on, 'province_code', r.prov),
              'child', ($3::jsonb -> 'child') || jsonb_build_object(
                  'full_name', r.full_name, 'sex', r.sex, 'date_of_birth', r.dob,
                  'place_of_birth', 'Trạm y tế xã ' || r.commune,
                  'home_town', r.commune || ', Bình Định'),
              'father', ($3::jsonb -> 'father') || jsonb_build_object(
                  'full_name', ($4::text[])[r.fi], 'pin', r.father_pin),
              'mother', ($3::jsonb -> 'mother') || jsonb_build_object(
                  'full_name', ($6::text[])[r.mi], 'pin', r.mother_pin)),
         r.mother_pin, ($7::text[])[r.mi]
    FROM gen r ORDER BY r.pin
  ON CONFLICT ON CONSTRAINT person_pkey DO NOTHING
  RETURNING pin, province_code, registration_authority, registration_number, record
), reg AS (
  INSERT INTO registration (province_code, authority, number, body_sha256, pin)
  SELECT i.province_code, i.registration_authority, i.registration_number,
         sha256(convert_to(i.record::text, 'UTF8')), i.pin
    FROM ins i
)
INSERT INTO audit_event (actor_type, actor_id, action, pin, purpose, outcome, request_id,
                         source_ip, details)
SELECT 'client', 'demo-registrar-052', 'pin.issue', i.pin, NULL, 'issued',
       md5(i.registration_number), '127.0.0.1',
       jsonb_build_object('registration', jsonb_build_object(
           'province_code', i.province_code, 'authority', i.registration_authority,
           'number', i.registration_number))
  FROM ins i ORDER BY i.pin
"""

# What the allocator reads: the used count of each block of 1000 serials of each bucket.
RECOUNT_BLOCKS = """
INSERT INTO pin_block AS b (prefix, block, used)
SELECT left(pin, 6), substr(pin, 7)::int / 1000, count(*)::int FROM person GROUP BY 1, 2
ON CONFLICT (prefix, block) DO UPDATE SET used = EXCLUDED.used
"""

SIZES = """
SELECT (SELECT count(*) FROM person) AS persons,
       (SELECT count(*) FROM registration) AS registrations,
       (SELECT count(*) FROM audit_event) AS events,
       (SELECT count(*) FROM audit_log) AS log_entries,
       (SELECT count(*) FROM notify_event) AS notify_events,
       pg_total_relation_size('person') AS person_bytes,
       pg_relation_size('person') AS person_heap_bytes,
       pg_indexes_size('person') AS person_index_bytes,
       pg_total_relation_size('registration') AS registration_bytes,
       (SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i
         WHERE i.inhparent = 'audit_event'::regclass) AS audit_event_bytes,
       (SELECT sum(pg_indexes_size(i.inhrelid)) FROM pg_inherits i
         WHERE i.inhparent = 'audit_event'::regclass) AS audit_event_index_bytes,
       pg_total_relation_size('audit_log') AS audit_log_bytes,
       pg_total_relation_size('audit_node') AS audit_node_bytes,
       pg_total_relation_size('notify_event') AS notify_event_bytes,
       pg_total_relation_size('pin_block') AS pin_block_bytes,
       pg_database_size(current_database()) AS database_bytes
"""

INDEXES = """
SELECT c.relname AS index, t.relname AS on_table, pg_relation_size(c.oid) AS bytes
  FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
 WHERE t.relname IN ('person', 'registration', 'audit_log', 'audit_node', 'notify_event')
    OR t.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_event'::regclass)
 ORDER BY 3 DESC
"""


# -- the stack's clients --------------------------------------------------------------------


def officer_token(stack: Stack) -> str:
    """`idservice login` with the demo officer's SoftHSM token (what an officer runs)."""
    text = stack.server_log.read_text(errors="replace")
    conf = re.findall(r"export SOFTHSM2_CONF=(\S+)", text)
    module = re.findall(r"idservice login --module (\S+)", text)
    if not conf or not module:
        raise RuntimeError("the dev banner (SoftHSM config, module) is not in the server log")
    pin_file = stack.data_dir / "demo" / "officer1.pin"
    out = subprocess.run(
        [str(VENV_BIN / "idservice"), "login", "--module", module[-1], "--token-label",
         "officer1", "--pin-file", str(pin_file), "--server", stack.origin],
        env={**stack.env, "SOFTHSM2_CONF": conf[-1]}, cwd=REPO, capture_output=True,
        text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"idservice login failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout.strip()


def start_server(stack: Stack, workers: int) -> None:
    """`idservice dev` (token, keys, demo client and officers), then `serve --workers N` with
    the demo officer PKI configured, as `dev` configures it for itself: `serve` runs only what
    is configured, and the officer login needs the trust anchors, issuing CA and CRLs."""
    stack.start_server(1)
    stack.stop_server()
    pki = stack.data_dir / "demo" / "pki"
    stack.env["IDSERVICE_TRUST_ANCHORS"] = str(pki / "root.pem")
    stack.env["IDSERVICE_ISSUING_CAS"] = str(pki / "officer-ca.pem")
    stack.env["IDSERVICE_CRLS"] = f"{pki / 'officer-ca.crl'},{pki / 'root.crl'}"
    stack._spawn(["serve", "--workers", str(workers), "--port", str(stack.port)],
                 expected_workers=workers)
    stack.workers = workers


def issue_body(tag: str, i: int, rng: random.Random) -> dict[str, Any]:
    sex = rng.choice("MF")
    year = rng.randrange(1930, 2026)
    dob = dt.date(year, rng.randrange(1, 13), rng.randrange(1, 21))
    commune = rng.choice(COMMUNES)
    return {
        "registration": {"authority": f"UBND xã {commune}, Bình Định", "number": f"{tag}-{i}",
                         "book": f"{dob.month:02d}/{year}",
                         "registered_on": (dob + dt.timedelta(days=i % 8)).isoformat(),
                         "province_code": "052"},
        "child": {"full_name": rng.choice(names(sex)), "other_names": [], "sex": sex,
                  "date_of_birth": dob.isoformat(), "place_of_birth": f"Trạm y tế xã {commune}",
                  "home_town": f"{commune}, Bình Định", "ethnicity": "Kinh",
                  "nationality": "VN"},
        "father": {"full_name": rng.choice(names("M")),
                   "pin": f"052{rng.randrange(10**9):09d}", "nationality": "VN"},
        "mother": {"full_name": rng.choice(names("F")),
                   "pin": f"052{rng.randrange(10**9):09d}", "nationality": "VN"},
    }


async def http_phase(stack: Stack, name: str, requests: list[dict[str, Any]], token: str,
                     concurrency: int, expect: int) -> dict[str, Any]:
    """`requests` (method, url, params/json) over `concurrency` keep-alive connections;
    the first 20 are a warm-up. Every answer must have status `expect`."""
    warm, timed = requests[:20], requests[20:]
    latencies: list[float] = []
    bad: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.origin, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as client:

        async def one(r: dict[str, Any], timed_call: bool) -> None:
            t0 = time.perf_counter()
            response = await client.request(r["method"], r["url"], params=r.get("params"),
                                            json=r.get("json"))
            elapsed = time.perf_counter() - t0
            if response.status_code != expect or not r.get("check", lambda _: True)(response):
                bad.append(f"{response.status_code} {response.text[:200]}")
            if timed_call:
                latencies.append(elapsed)

        async def run(items: list[dict[str, Any]], timed_call: bool) -> None:
            queue = list(reversed(items))

            async def worker() -> None:
                while queue:
                    await one(queue.pop(), timed_call)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await run(warm, False)
        load_before = os.getloadavg()
        meter = stack.cpu_meter().start()
        t0 = time.perf_counter()
        await run(timed, True)
        elapsed = time.perf_counter() - t0
        cpu = meter.stop()
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} unexpected answers, e.g. {bad[0]}")
    latencies.sort()
    return {"requests": len(timed), "concurrency": concurrency,
            "per_s": round(len(timed) / elapsed, 1), "latency_ms": _percentiles_ms(latencies),
            "cores": cpu["cores"], "machine_busy_pct": cpu["machine_busy_pct"],
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


# -- load -----------------------------------------------------------------------------------


async def template(stack: Stack, registrar: str) -> tuple[str, dict[str, Any]]:
    """Issue one registration through the API; its stored record is the SQL rows' shape."""
    body = issue_body("scale-template", 0, random.Random(0))
    async with httpx.AsyncClient(base_url=stack.origin, timeout=60) as client:
        response = await client.post("/v1/pins", json=body,
                                     headers={"Authorization": f"Bearer {registrar}"})
    if response.status_code != 201:
        raise RuntimeError(f"template issuance: {response.status_code} {response.text}")
    pin = response.json()["pin"]
    conn = await asyncpg.connect(stack.database_url())
    try:
        record = await conn.fetchval("SELECT record::text FROM person WHERE pin = $1", pin)
        event = await conn.fetchrow("SELECT actor_type, actor_id, action, outcome, request_id, "
                                    "source_ip, details::text FROM audit_event WHERE pin = $1",
                                    pin)
    finally:
        await conn.close()
    return record, dict(event)


async def _wait_until_done(left: Callable[[], Awaitable[str | None]]) -> None:
    """Poll `left` every 2 s until it says nothing is left; log what is, every 30 s."""
    last_log = 0.0
    while (progress := await left()) is not None:
        if time.perf_counter() - last_log > 30:
            log(f"  {progress}")
            last_log = time.perf_counter()
        await asyncio.sleep(2)


async def load(stack: Stack, first: int, last: int, chunk: int, record: str,
               deadline: float | None = None) -> dict[str, Any]:
    """Persons g = first..last by SQL (LOAD), then blocks, sequencing, integration, the
    outbox's sequencing and pruning, vacuum.
    No chunk is started after `deadline` (time.time()): the size is then what was reached."""
    male, female = names("M"), names("F")
    args = (record, male, [fold_name(n) for n in male], female, [fold_name(n) for n in female],
            PROVINCES, COMMUNES)
    conn = await asyncpg.connect(stack.database_url())
    t: dict[str, float] = {}
    cut = False
    inserted = 0
    try:
        await conn.execute("SET synchronous_commit = on")
        t0 = time.perf_counter()
        for lo in range(first, last + 1, chunk):
            if deadline is not None and time.time() > deadline:
                log(f"  load deadline passed: stopping at g = {lo - 1:,} of {last:,}")
                last, cut = lo - 1, True
                break
            hi = min(last, lo + chunk - 1)
            status = await conn.execute(LOAD, lo, hi, *args)
            inserted += int(status.split()[-1])
            log(f"  SQL: persons {hi:,}/{last:,} ({inserted:,} inserted this size)")
        t["insert_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await conn.execute(RECOUNT_BLOCKS)
        t["pin_block_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        while await conn.fetchval("SELECT audit_sequence(500000)"):
            pass
        # the server's sequencer may have held the lock a moment: once more after a pause
        await asyncio.sleep(2)
        while await conn.fetchval("SELECT audit_sequence(500000)"):
            pass
        # the server's sequencer takes the lock too (then audit_sequence() returns 0): wait
        # until the last event written (ours: nothing else writes during the load) is in
        newest = await conn.fetchval("SELECT max(id) FROM audit_event")
        while not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM audit_log "
                                      "WHERE event_id = $1)", newest):
            await conn.fetchval("SELECT audit_sequence(500000)")
            await asyncio.sleep(0.5)
        t["sequence_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sequenced = int(await conn.fetchval(
            "SELECT coalesce(max(index) + 1, 0) FROM audit_log"))

        async def integration_left() -> str | None:
            integrated, checkpointed = await conn.fetchrow(
                "SELECT (SELECT coalesce(max(size), 0) FROM audit_tree), "
                "(SELECT coalesce(max(tree_size), 0) FROM audit_checkpoint)")
            if integrated >= sequenced and checkpointed >= sequenced:
                return None
            return f"integrated {integrated:,}/{sequenced:,}, checkpointed {checkpointed:,}"

        await _wait_until_done(integration_left)
        t["integrate_s"] = time.perf_counter() - t0
        # The births' liveBirth events: the delivery worker sequences them and, nobody being
        # subscribed, prunes them (contract 9). Waited for like the log's integration, so that
        # the measurement does not share the cores with that backlog (both indexed probes).
        t0 = time.perf_counter()

        async def outbox_left() -> str | None:
            unsequenced, unpruned = await conn.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM notify_event WHERE seq IS NULL), "
                "EXISTS (SELECT 1 FROM notify_event WHERE topic = 'liveBirth' "
                "AND seq IS NOT NULL)")
            if not unsequenced and not unpruned:
                return None
            return f"outbox: unsequenced rows {unsequenced}, unpruned rows {unpruned}"

        await _wait_until_done(outbox_left)
        t["outbox_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for table in ("person", "registration", "audit_event", "audit_log", "audit_node",
                      "notify_event", "pin_block"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        t["vacuum_analyze_s"] = time.perf_counter() - t0
        # Write the load's dirty buffers out now: otherwise the measured requests evict them
        # (a backend writing pages for the checkpointer), a transient of the load, not of the
        # data's size (the first 10M run of 2026-12-07: PostgreSQL ~1 core during the reads).
        t0 = time.perf_counter()
        superuser = await asyncpg.connect(stack.superuser_url)
        try:
            await superuser.execute("CHECKPOINT")
        finally:
            await superuser.close()
        t["checkpoint_s"] = time.perf_counter() - t0
    finally:
        await conn.close()
    return {"sql_persons_inserted": inserted, "sql_range": [first, last],
            "cut_by_deadline": cut,
            **{k: round(v, 1) for k, v in t.items()}}


def _shape(value: Any) -> Any:
    """The keys of a JSON value, recursively, and the type of each leaf."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


async def same_shape(stack: Stack, record: str, event: dict[str, Any]) -> None:
    """The SQL rows have the keys of the API's row and the columns of its event (a check
    that LOAD still writes what the issuance path writes, when either changes)."""
    conn = await asyncpg.connect(stack.database_url())
    try:
        row = await conn.fetchrow("SELECT p.record::text, e.actor_type, e.actor_id, e.action, "
                                  "e.outcome, e.source_ip, e.details::text FROM person p "
                                  "JOIN audit_event e ON e.pin = p.pin "
                                  "WHERE p.registration_number = 'scale-1'")
    finally:
        await conn.close()
    api, sql = _shape(json.loads(record)), _shape(json.loads(row["record"]))
    if api != sql:
        raise RuntimeError(f"SQL record shape differs from the API's: {sql} != {api}")
    for column in ("actor_type", "actor_id", "action", "outcome", "source_ip"):
        if row[column] != event[column]:
            raise RuntimeError(f"SQL event {column} {row[column]!r} != {event[column]!r}")
    if _shape(json.loads(row["details"])) != _shape(json.loads(event["details"])):
        raise RuntimeError(f"SQL event details {row['details']} != {event['details']}")
    log("SQL rows have the shape of the API's row and event")


# -- measure --------------------------------------------------------------------------------


async def samples(stack: Stack, n: int, rng: random.Random) -> list[asyncpg.Record]:
    """`n` distinct random persons of province 052: for a random 12-digit number of the
    province, the first person at or after it (index probes, no scan of the table)."""
    conn = await asyncpg.connect(stack.database_url())
    picked: dict[str, asyncpg.Record] = {}
    try:
        for _ in range(50 * n):
            if len(picked) >= n:
                break
            start = f"052{rng.randrange(10**9):09d}"
            row = await conn.fetchrow(
                "SELECT pin, full_name, date_of_birth FROM person WHERE pin >= $1 "
                "AND pin < '053' AND status = 'active' ORDER BY pin LIMIT 1", start)
            if row is not None:
                picked[row["pin"]] = row
    finally:
        await conn.close()
    if len(picked) < n:
        raise RuntimeError(f"only {len(picked)} sample persons")
    return list(picked.values())


async def sizes(stack: Stack) -> dict[str, Any]:
    conn = await asyncpg.connect(stack.database_url())
    try:
        row = dict(await conn.fetchrow(SIZES))
        idx = [dict(r) for r in await conn.fetch(INDEXES)]
        settings = {r["name"]: r["setting"] + (r["unit"] or "") for r in await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name IN "
            "('shared_buffers', 'effective_cache_size', 'work_mem')")}
    finally:
        await conn.close()
    row = {k: int(v) for k, v in row.items()}
    row["bytes_per_person"] = round(row["person_bytes"] / max(1, row["persons"]), 1)
    row["bytes_per_registration"] = round(row["registration_bytes"]
                                          / max(1, row["registrations"]), 1)
    row["bytes_per_event"] = round(row["audit_event_bytes"] / max(1, row["events"]), 1)
    row["bytes_per_log_entry"] = round(row["audit_log_bytes"] / max(1, row["log_entries"]), 1)
    row["bytes_per_person_all"] = round(
        (row["person_bytes"] + row["registration_bytes"] + row["audit_event_bytes"]
         + row["audit_log_bytes"]) / max(1, row["persons"]), 1)
    row["indexes"] = idx
    row["settings"] = settings
    return row


async def explain_search(stack: Stack, person: asyncpg.Record) -> dict[str, Any]:
    conn = await asyncpg.connect(url_for(stack.database_url(), user=SERVICE_ROLE))
    try:
        plan = [r[0] for r in await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + q.SEARCH_FOLDED, fold_name(person["full_name"]),
            person["date_of_birth"], None, 100)]
    finally:
        await conn.close()
    text = "\n".join(plan)
    return {"plan": plan, "index_scan": "Seq Scan on person" not in text
            and ("Index" in text)}


async def measure(stack: Stack, size_label: int, args: argparse.Namespace,
                  rng: random.Random) -> dict[str, Any]:
    registrar, officer = stack.token(), officer_token(stack)
    n = args.requests + 20
    people = await samples(stack, n, rng)
    reads = [{"method": "GET", "url": f"/v1/persons/{p['pin']}",
              "params": {"purpose": PURPOSE}} for p in people]
    searches = [{"method": "GET", "url": "/v1/persons",
                 "params": {"full_name": p["full_name"],
                            "date_of_birth": p["date_of_birth"].isoformat(),
                            "purpose": PURPOSE},
                 "check": lambda r, pin=p["pin"]: _found(r.json(), pin)}
                for p in people]
    verifies = [{"method": "POST", "url": "/v1/pins/verify",
                 "json": {"pin": p["pin"], "full_name": p["full_name"],
                          "date_of_birth": p["date_of_birth"].isoformat()},
                 "check": lambda r: r.json().get("match") is True} for p in people]
    issues = [{"method": "POST", "url": "/v1/pins",
               "json": issue_body(f"scale-api-{size_label}", i, rng)} for i in range(n)]
    result: dict[str, Any] = {}
    for name, reqs, token, expect in (("read", reads, officer, 200),
                                      ("search", searches, officer, 200),
                                      ("verify", verifies, registrar, 200),
                                      ("issue", issues, registrar, 201)):
        log(f"  {name}: {len(reqs) - 20} requests, {args.concurrency} connections")
        result[name] = await http_phase(stack, name, reqs, token, args.concurrency, expect)
        log(f"    p99 {result[name]['latency_ms']['p99']} ms, {result[name]['per_s']}/s")
    result["explain_search"] = await explain_search(stack, people[0])
    return result


# -- report ---------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def render(report: dict[str, Any]) -> str:
    lines = [f"scale benchmark ({report['at']}, {report['workers']} workers, "
             f"{os.cpu_count()} cores shared)"]
    for stage in report["stages"]:
        s, m = stage["sizes"], stage["measure"]
        lines += [
            f"- {s['persons']:,} persons ({stage['api_persons']:,} issued through the API, "
            f"the rest generated by SQL as the owner); {s['events']:,} audit events, "
            f"{s['log_entries']:,} sequenced",
            f"    load      : {stage['load']}",
            f"    disk      : person {mib(s['person_bytes'])} ({s['bytes_per_person']} B/person;"
            f" heap {mib(s['person_heap_bytes'])}, indexes {mib(s['person_index_bytes'])}), "
            f"registration {mib(s['registration_bytes'])} ({s['bytes_per_registration']} B), "
            f"audit_event {mib(s['audit_event_bytes'])} ({s['bytes_per_event']} B/event), "
            f"audit_log {mib(s['audit_log_bytes'])} ({s['bytes_per_log_entry']} B/entry); "
            f"all four {s['bytes_per_person_all']} B/person; also audit_node "
            f"{mib(s['audit_node_bytes'])}, notify_event {mib(s['notify_event_bytes'])}; "
            f"database {mib(s['database_bytes'])}",
            "    indexes   : " + ", ".join(f"{i['index']} {mib(i['bytes'])}"
                                           for i in s["indexes"][:12]),
        ]
        for op in ("read", "search", "verify", "issue"):
            r = m[op]
            lines.append(
                f"    {op:<10}: p50 {r['latency_ms']['p50']} p90 {r['latency_ms']['p90']} "
                f"p99 {r['latency_ms']['p99']} max {r['latency_ms']['max']} ms, "
                f"{r['per_s']}/s; machine busy {r['machine_busy_pct']}%, load "
                f"{r['loadavg_before']} -> {r['loadavg_after']}")
        ex = m["explain_search"]
        lines.append(f"    search plan (index scan: {ex['index_scan']}):")
        lines += ["      " + p for p in ex["plan"]]
    first, last = report["stages"][0]["measure"], report["stages"][-1]["measure"]
    for op in ("read", "verify", "search", "issue"):
        a, b = first[op]["latency_ms"]["p99"], last[op]["latency_ms"]["p99"]
        target = " (target <= 2x)" if op in ("read", "verify") else ""
        lines.append(f"  p99 {op} largest/smallest: {b} / {a} ms = {b / a:.2f}x{target}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument("--load-until", help="UTC time HH:MM after which no SQL chunk starts; "
                        "the size being loaded is then measured where it stopped")
    args = parser.parse_args(argv)
    deadline = None
    if args.load_until:
        now = dt.datetime.now(dt.UTC)
        hh, mm = (int(x) for x in args.load_until.split(":"))
        until = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        deadline = (until if until > now else until + dt.timedelta(days=1)).timestamp()
    targets = [int(x) for x in args.sizes.split(",")]
    rng = random.Random(16)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"scale-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    report: dict[str, Any] = {"at": dt.datetime.now(dt.UTC).isoformat(),
                              "workers": args.workers, "args": vars(args), "stages": []}
    with Stack(keep=args.keep) as stack:
        stack.env["IDSERVICE_VERIFY_RATE_LIMIT"] = "1000000000"
        stack.start_cluster()
        start_server(stack, args.workers)
        record, event = asyncio.run(template(stack, stack.token()))
        report["template"] = {"record": json.loads(record), "event": event}
        asyncio.run(load(stack, 1, 10, 10, record))
        asyncio.run(same_shape(stack, record, event))
        generated = 10  # persons g = 1..generated were offered to LOAD
        for target in targets:
            have = asyncio.run(_count(stack, "SELECT count(*) FROM person"))
            want = target - have
            log(f"size {target:,}: {have:,} persons now, generating {want:,} by SQL")
            loaded = asyncio.run(load(stack, generated + 1, generated + want, args.chunk,
                                      record, deadline)) if want > 0 else {}
            generated = loaded["sql_range"][1] if loaded else generated
            stage = {"target": target, "loadavg_before_measure": os.getloadavg()}
            stage["load"] = loaded
            stage["sizes"] = asyncio.run(sizes(stack))
            stage["measure"] = asyncio.run(measure(stack, target, args, rng))
            stage["api_persons"] = asyncio.run(_count(
                stack, "SELECT count(*) FROM person WHERE registration_number LIKE "
                       "'scale-api-%' OR registration_number LIKE 'scale-template%'"))
            report["stages"].append(stage)
            if loaded.get("cut_by_deadline"):
                target = -1  # measured where the load stopped; no larger size
            out.write_text(json.dumps(report, indent=2, default=str))
            log(f"wrote {out}")
            log("\n" + render(report))
            if target == -1:
                break
    print(render(report))
    return 0


def _found(answer: Any, pin: str) -> bool:
    items = answer if isinstance(answer, list) else answer.get("items") or answer.get("persons")
    return any(x.get("pin") == pin for x in items or [])


async def _count(stack: Stack, sql: str) -> int:
    conn = await asyncpg.connect(stack.database_url())
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())

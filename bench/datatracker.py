"""Data Tracker benchmark: findUsage for one PIN on a large audit log (issue 14 item 2).

Reproduce (from the repo root, as root for the embedded PostgreSQL user)::

    .venv/bin/python bench/datatracker.py --events 1000000      # ~5 min
    .venv/bin/python bench/datatracker.py                       # 10,000,000 events (long)

Method (one run; everything started and removed by the script, bench/_harness.py: fresh data
dir under /tmp, the embedded PostgreSQL started by this process, `idservice dev` with its
default audit loops):

1. Log: `--events` events generated in the database (`INSERT ... SELECT generate_series` per
   `--chunk`, as the owner so `at` can be spread) over the last 24 months (monthly partitions,
   created first), about `--pins` distinct PINs (every PIN gets events/pins of them), actions
   in the proportions of a live service (4/10 reads, 1/10 each search, verify, issuance,
   correction, citizen.report, audit.read: 8/10 are usages), 97 officers registered with their
   organisation. Plus `--heavy` PINs with `--heavy-events` events each (a much-read record).
   The bench sequences the events itself (`audit_sequence`, the service's function) and waits
   until the server has integrated and checkpointed them all, then `VACUUM ANALYZE`.
2. findUsage over HTTP, closed loop, one keep-alive connection: `--requests` requests for
   PINs drawn uniformly from the pool, each `GET /datatracker/v2/findUsage` with a portal's
   token (registered with `idservice clients add --roles portal`, token by `clients token`)
   and `X-Road-UserId` = the PIN itself, default limit (1000): the whole service path, the
   `citizen.report` event committed with each answer. p50/p90/p99/max; target p99 <= 50 ms.
   The same for the heavy PINs (`--heavy-requests`).
3. The report's SQL alone (queries/datatracker.py REPORT, as the service role) for the same
   PINs, and `EXPLAIN (ANALYZE, BUFFERS)` of it for one PIN (the plan is in the JSON).

Report on stdout and in bench/results/datatracker-<UTC time>.json. Never part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/datatracker.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench._harness import BENCH_DIR, REPO, VENV_BIN, Stack, _percentiles_ms, log
from bench.audit import SERVICE_ROLE, wait_integrated
from idservice.datatracker.service import Period
from idservice.datatracker.usage import action_outcomes, visible_on
from idservice.db.roles import url_for
from idservice.queries import datatracker as q

RESULTS_DIR = BENCH_DIR / "results"
TARGET_P99_MS = 50.0
PORTAL_ID = "bench-portal"
HEAVY_BASE = 99_999_000  # heavy PINs: 0012 + 8 digits from here on

OFFICERS = """
INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, cert_pem, roles,
                      jurisdiction, org_code, org_name, system)
SELECT 'bench-officer-' || g, 'Officer ' || g, md5(g::text) || md5((g + 1000)::text),
       'CN=Bench CA', to_hex(g), '-', ARRAY['officer'], '001', 'H40.' || g,
       'UBND phường ' || g, 'Phần mềm hộ tịch'
  FROM generate_series(0, 96) g
"""

# $1..$2: the generate_series range; $3: PIN pool size; $4: first PIN number (the heavy ones
# use a pool of 1 from HEAVY_BASE + k). `at` spread over 730 days by a multiplicative hash.
GENERATE = """
INSERT INTO audit_event (at, actor_type, actor_id, action, pin, purpose, outcome, request_id,
                         source_ip, details)
SELECT now() - ((g * 104729) % 63072000) * interval '1 second',
       CASE WHEN g % 10 IN (5, 6) THEN 'client' ELSE 'operator' END,
       CASE WHEN g % 10 IN (5, 6) THEN 'demo-registrar-052' ELSE 'bench-officer-' || (g % 97) END,
       (ARRAY['person.read', 'person.read', 'person.read', 'person.read', 'person.search',
              'pin.verify', 'pin.issue', 'person.correct', 'citizen.report',
              'audit.read'])[1 + g % 10],
       '0012' || lpad(($4 + (g * 7919) % $3)::text, 8, '0'),
       CASE WHEN g % 10 < 5 THEN 'Hồ sơ số ' || (g % 10007) END,
       (ARRAY['found', 'found', 'found', 'found', 'found', 'match', 'issued', 'corrected',
              'ok', 'ok'])[1 + g % 10],
       md5(g::text), '10.0.' || (g % 256) || '.' || (g % 199),
       jsonb_build_object('bench', true, 'n', g)
  FROM generate_series($1::bigint, $2::bigint) AS g"""


def _pin(number: int) -> str:
    return f"0012{number:08d}"


async def generate(stack: Stack, events: int, pins: int, chunk: int, heavy: int,
                   heavy_events: int) -> dict[str, Any]:
    conn = await asyncpg.connect(stack.database_url())
    try:
        await conn.execute("SELECT audit_event_add_partitions(now() - interval '25 months')")
        await conn.execute(OFFICERS)
        t0 = time.perf_counter()
        for first in range(1, events + 1, chunk):
            last = min(events, first + chunk - 1)
            await conn.execute(GENERATE, first, last, pins, 0)
            log(f"  generated {last:,}/{events:,} events")
        for k in range(heavy):
            await conn.execute(GENERATE, events + 1 + k * heavy_events,
                               events + (k + 1) * heavy_events, 1, HEAVY_BASE + k)
        inserted = time.perf_counter() - t0
        t1 = time.perf_counter()
        while await conn.fetchval("SELECT audit_sequence(500000)"):
            pass  # the server's sequencer may hold the lock a moment: loop until none left
        sequenced = time.perf_counter() - t1
    finally:
        await conn.close()
    drained = await wait_integrated(stack, timeout=14400, report_every=15)
    conn = await asyncpg.connect(stack.database_url())
    try:
        t2 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE audit_event")
        await conn.execute("VACUUM ANALYZE audit_log")
        vacuumed = time.perf_counter() - t2
        size = await conn.fetchval(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_event'::regclass")
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_event'::regclass")
        total = await conn.fetchval("SELECT count(*) FROM audit_log")
    finally:
        await conn.close()
    return {"events": int(total), "generated": events + heavy * heavy_events,
            "pins": pins, "events_per_pin": round(events / pins, 1), "heavy_pins": heavy,
            "heavy_events_each": heavy_events, "insert_s": round(inserted, 1),
            "sequence_s": round(sequenced, 1), "integrated_after_s": drained,
            "vacuum_analyze_s": round(vacuumed, 1), "audit_event_size": size,
            "partitions": int(partitions)}


def register_portal(stack: Stack) -> str:
    """`idservice clients add --roles portal` with a fresh key, then `clients token`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PORTAL_ID)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_file, key_file = stack.data_dir / "portal.pem", stack.data_dir / "portal.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    idservice = str(VENV_BIN / "idservice")
    subprocess.run([idservice, "clients", "add", "--id", PORTAL_ID, "--cert", str(cert_file),
                    "--roles", "portal", "--org-name", "Cổng Dịch vụ công (bench)"],
                   env=stack.env, cwd=REPO, check=True, capture_output=True, timeout=120)
    out = subprocess.run([idservice, "clients", "token", "--id", PORTAL_ID, "--key",
                          str(key_file)], env=stack.env, cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def http_find_usage(stack: Stack, token: str, pins: list[str]) -> dict[str, Any]:
    latencies: list[float] = []
    usages = 0
    meter = stack.cpu_meter().start()
    with httpx.Client(base_url=stack.origin, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for pin in pins[:20]:  # warm-up: connection, token cache, plans
            client.get("/datatracker/v2/findUsage", params={"userCode": pin},
                       headers={"X-Road-UserId": f"VN{pin}"})
        t0 = time.perf_counter()
        for pin in pins:
            start = time.perf_counter()
            response = client.get("/datatracker/v2/findUsage", params={"userCode": pin},
                                  headers={"X-Road-UserId": f"VN{pin}"})
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"findUsage {response.status_code}: {response.text}")
            usages += response.json()["totalUsages"]
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(pins), "per_s": round(len(pins) / elapsed, 1),
            "mean_usages": round(usages / len(pins), 1), "latency_ms": _percentiles_ms(latencies),
            "cpu": meter.stop()}


async def sql_find_usage(stack: Stack, pins: list[str]) -> dict[str, Any]:
    """The report's statement (REPORT) as the service role, for the same PINs."""
    conn = await asyncpg.connect(url_for(stack.database_url(), user=SERVICE_ROLE))
    actions, pairs = action_outcomes()
    start, end = Period().bounds()
    today = visible_on(dt.datetime.now(dt.UTC).date())
    latencies = []
    try:
        for pin in pins:
            t0 = time.perf_counter()
            await conn.fetch(q.REPORT, pin, start, end, today, actions, pairs, 0, 1000)
            latencies.append(time.perf_counter() - t0)
        plan_rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + q.REPORT,
                                     pins[0], start, end, today, actions, pairs, 0, 1000)
    finally:
        await conn.close()
    latencies.sort()
    return {"queries": len(pins), "latency_ms": _percentiles_ms(latencies),
            "explain_analyze": [r[0] for r in plan_rows]}


def render(report: dict[str, Any]) -> str:
    gen, http, heavy, sql = (report["log"], report["http"], report["http_heavy"],
                             report["sql"])
    met = "MET" if report["met"] else "NOT MET"
    return "\n".join([
        f"datatracker benchmark ({report['at']})",
        f"  log                  : {gen['events']:,} sequenced events in {gen['partitions']} "
        f"monthly partitions ({gen['audit_event_size']}), {gen['pins']:,} PINs "
        f"(~{gen['events_per_pin']} events each) + {gen['heavy_pins']} heavy PINs of "
        f"{gen['heavy_events_each']:,}",
        f"    built              : insert {gen['insert_s']} s, sequence {gen['sequence_s']} s, "
        f"integrated after {gen['integrated_after_s']} s, vacuum analyze "
        f"{gen['vacuum_analyze_s']} s",
        f"  findUsage over HTTP  : {http['requests']:,} random PINs, {http['per_s']}/s, "
        f"{http['mean_usages']} usages each; latency ms {http['latency_ms']}",
        f"    p99 {http['latency_ms']['p99']} ms (target <= {TARGET_P99_MS:.0f} ms: {met})",
        "    cores              : " + ", ".join(f"{k} {v}" for k, v in
                                                 http["cpu"]["cores"].items())
        + f" (machine busy {http['cpu'].get('machine_busy_pct')}%)",
        f"  heavy PINs over HTTP : {heavy['requests']} requests, {heavy['mean_usages']} usages "
        f"each (page of 1000); latency ms {heavy['latency_ms']}",
        f"  report SQL alone     : latency ms {sql['latency_ms']}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--pins", type=int, default=500_000)
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--heavy", type=int, default=3)
    parser.add_argument("--heavy-events", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--heavy-requests", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args(argv)
    rng = random.Random(14)

    with Stack(keep=args.keep) as stack:
        stack.start_cluster()
        stack.start_server(1)
        log(f"generating {args.events:,} events over {args.pins:,} PINs")
        gen = asyncio.run(generate(stack, args.events, args.pins, args.chunk, args.heavy,
                                   args.heavy_events))
        token = register_portal(stack)
        pins = [_pin(rng.randrange(args.pins)) for _ in range(args.requests)]
        log(f"findUsage over HTTP: {len(pins):,} requests")
        http = http_find_usage(stack, token, pins)
        heavy_pins = [_pin(HEAVY_BASE + i % max(1, args.heavy))
                      for i in range(args.heavy_requests)]
        heavy = http_find_usage(stack, token, heavy_pins) if args.heavy else {}
        log("the report's SQL alone")
        sql = asyncio.run(sql_find_usage(stack, pins))
        report = {"at": dt.datetime.now(dt.UTC).isoformat(), "log": gen, "http": http,
                  "http_heavy": heavy, "sql": sql,
                  "met": http["latency_ms"]["p99"] <= TARGET_P99_MS}
    print(render(report))
    print("\n".join(["  EXPLAIN ANALYZE (one PIN):", *("    " + line for line in
                                                        sql["explain_analyze"])]))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"datatracker-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The stack's floor for single issuance (issue 16 goal 1): how close can any `POST /v1/pins`
on FastAPI + uvicorn + asyncpg come to pgbench on this machine?

Reproduce (from the repo root, as root for the embedded PostgreSQL user)::

    .venv/bin/python bench/floor.py                 # ~2-3 min
    .venv/bin/python bench/floor.py --seconds 20 --rounds 2

One embedded cluster (fsync and synchronous_commit on, bench/_harness.py), then in one run:

1. Baseline: pgbench, 32 connections, one durable single-row INSERT per transaction (the
   baseline of bench/issuance.py).
2. For each mode of bench/floor_app.py (`echo`, `insert`, `group`; see there), a fresh
   `uvicorn bench.floor_app:app --workers N` (uvloop, httptools, no access log) and
   `wrk -t2 -c32` with bench/lua/issue.lua's bodies (the very requests of issuance.py):
   answers/s, p99, CPU of the app and of PostgreSQL per request.
3. idservice itself on the same cluster (`idservice serve --workers N`, the same wrk run).

Each mode's rate is reported as a ratio to the baseline, like issuance.py's. `insert` and
`group` are the most any single issuance could reach with this stack on this machine: they
parse the body and write one row, and idservice must also authenticate the caller, validate
the registration, check idempotency and duplicates, allocate the PIN and commit an audit event.
If `group` stays below 0.25x, goal 1 is out of reach of the stack here, whatever idservice does.

`--rounds R` repeats steps 2-3 R times (alternated), since the machine drifts between runs.

`--batch-records N` adds the batch's floor in PostgreSQL (goal 2): N records written by the
very statements of a batch chunk (`registration_find_locked`, `person_duplicates_locked`,
`person_taken`, `person_insert` with its `pin_block` count, the registrations with their
liveBirth outbox trigger, `audit_write`), 500 per transaction, with every value made in SQL by
one function call per chunk (`bench_floor_chunk`, created in the scratch cluster): no Python
per record, one round trip per chunk. Then the events are sequenced (`audit_sequence`) and
the outbox numbered (`notify_sequence_batch`). PostgreSQL's CPU per record is the least any
batch can spend on the rows the contract asks for (the Merkle tree's appends not included).
Each record's PIN is looked up with three other candidates, as the allocator's four tries.
`--modes none --skip-idservice` runs that alone.
Report on stdout and in bench/results/floor-<UTC time>.json. Never part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/floor.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._harness import (
    BENCH_DIR,
    Stack,
    log,
    pgbench_insert_rate,
    prepare_scratch,
    run_wrk,
)
from idservice.db.migrate import migrate
from idservice.db.roles import ensure_database

RESULTS_DIR = BENCH_DIR / "results"
MODES = ("echo", "insert", "group")
TARGET_RATIO = 0.25
BATCH_RECORDS, BATCH_TARGET_S = 1_736_600, 120


# One chunk of the batch's statements, every value made in SQL from the record number n:
# (year, sex) spread over 180 buckets of province 052, a serial unique in its bucket.
BATCH_CHUNK_SQL = """
CREATE OR REPLACE FUNCTION bench_floor_chunk(k integer, size integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_rows person_row[]; v_prefix text[]; v_serial integer[]; v_auth text[]; v_num text[];
  v_pins text[]; v_details text[]; v_probes text[];
BEGIN
  SELECT array_agg(ROW(s.auth, s.num, s.dob + 3, '052', s.name, lower(s.name), '{}'::text[],
                       s.sex, s.dob, s.record, NULL, 'tran thi lan')::person_row ORDER BY s.n),
         array_agg(s.prefix ORDER BY s.n), array_agg(s.serial ORDER BY s.n),
         array_agg(s.auth ORDER BY s.n), array_agg(s.num ORDER BY s.n),
         array_agg(s.prefix || lpad(s.serial::text, 6, '0') ORDER BY s.n),
         array_agg(jsonb_build_object('registration', jsonb_build_object(
           'province_code', '052', 'authority', s.auth, 'number', s.num),
           'line', s.n % size + 1)::text ORDER BY s.n)
    INTO v_rows, v_prefix, v_serial, v_auth, v_num, v_pins, v_details
    FROM (SELECT g.n, 'UBND xã Nhơn Lý, Bình Định' AS auth, 'F-' || g.n AS num,
                 make_date(1930 + g.n % 90, 1 + g.n % 12, 1 + g.n % 28) AS dob,
                 CASE WHEN (g.n / 90) % 2 = 0 THEN 'M' ELSE 'F' END AS sex,
                 '052' || CASE WHEN (g.n / 90) % 2 = 0 THEN '0' ELSE '1' END
                   || lpad(((1930 + g.n % 90) % 100)::text, 2, '0') AS prefix,
                 (g.n / 180)::integer AS serial,
                 'Nguyễn Thị Minh Anh ' || g.n AS name,
                 jsonb_build_object(
                   'registration', jsonb_build_object('authority', 'UBND xã Nhơn Lý, Bình Định',
                     'number', 'F-' || g.n, 'book', '01/2024', 'registered_on', '2024-01-05',
                     'province_code', '052'),
                   'child', jsonb_build_object('full_name', 'Nguyễn Thị Minh Anh ' || g.n,
                     'other_names', '[]'::jsonb, 'sex', 'F', 'date_of_birth', '2024-01-02',
                     'place_of_birth', 'Trạm y tế xã Nhơn Lý', 'home_town', 'Nhơn Lý, Bình Định',
                     'ethnicity', 'Kinh', 'nationality', 'VN'),
                   'father', jsonb_build_object('full_name', 'Trần Văn Hùng',
                     'pin', '052090012345', 'nationality', 'VN'),
                   'mother', jsonb_build_object('full_name', 'Lê Thị Lan',
                     'pin', '052195000042', 'nationality', 'VN'))::text AS record
            FROM generate_series(k * size, k * size + size - 1) AS g(n)) s;
  -- Three more candidates per record: the allocator looks up chunk_random_tries (4).
  SELECT array_agg(u.prefix || lpad(((u.serial * 7919 + t.k * 104729) % 1000000)::text, 6, '0'))
    INTO v_probes
    FROM unnest(v_prefix, v_serial) AS u(prefix, serial), generate_series(1, 3) AS t(k);
  PERFORM count(*) FROM registration_find_locked(array_fill('052'::text, ARRAY[size]),
                                                 v_auth, v_num);
  PERFORM count(*) FROM person_duplicates_locked(v_rows);
  PERFORM count(*) FROM person_taken(v_pins || v_probes);
  PERFORM count(*) FROM person_insert(v_prefix, v_serial, v_rows, 1000);
  INSERT INTO registration (province_code, authority, number, body_sha256, pin)
  SELECT '052', u.auth, u.num, sha256(u.num::bytea), u.pin
    FROM unnest(v_auth, v_num, v_pins) AS u(auth, num, pin);
  PERFORM audit_write('client', 'bench-floor', NULL, NULL, array_fill('pin.issue'::text,
                      ARRAY[size]), v_pins, array_fill(NULL::text, ARRAY[size]),
                      array_fill('issued'::text, ARRAY[size]), v_details);
  RETURN size;
END
$$
"""


async def batch_floor(stack: Stack, records: int, chunk: int = 500) -> dict[str, Any]:
    """PostgreSQL's CPU per record for the batch's statements with no Python per record."""
    urls = await ensure_database(stack.superuser_url)  # as `idservice` itself would
    await migrate(urls.owner)
    conn = await asyncpg.connect(stack.database_url())
    try:
        await conn.execute(BATCH_CHUNK_SQL)
        chunks = records // chunk
        log(f"batch floor: {chunks * chunk:,} records in chunks of {chunk} (SQL only)")
        meter = stack.cpu_meter().start()
        t0 = time.perf_counter()
        for k in range(chunks):
            await conn.fetchval("SELECT bench_floor_chunk($1, $2)", k, chunk)
        write_s = time.perf_counter() - t0
        write = meter.stop()
        meter = stack.cpu_meter().start()
        t0 = time.perf_counter()
        while await conn.fetchval("SELECT audit_sequence(10000)"):
            pass
        while await conn.fetchval("SELECT notify_sequence_batch(10000)"):
            pass
        sequence_s = time.perf_counter() - t0
        sequence = meter.stop()
        events = await conn.fetchval("SELECT count(*) FROM audit_log")
    finally:
        await conn.close()
    n = chunks * chunk
    pg_write = write["cpu_s"]["postgresql"]
    pg_seq = sequence["cpu_s"]["postgresql"]
    result = {"records": n, "events_in_log": events, "write_s": round(write_s, 2),
              "sequence_s": round(sequence_s, 2),
              "pg_cpu_ms_per_record_write": round(1000 * pg_write / n, 4),
              "pg_cpu_ms_per_record_sequence": round(1000 * pg_seq / n, 4),
              "pg_cpu_ms_per_record": round(1000 * (pg_write + pg_seq) / n, 4),
              "client_cpu_s": write["cpu_s"].get("benchmark process")}
    log(f"batch floor: {n:,} records written in {write_s:.1f} s, sequenced in "
        f"{sequence_s:.1f} s; PostgreSQL CPU per record {result['pg_cpu_ms_per_record']} ms")
    return result


def start_floor(stack: Stack, mode: str, workers: int, dsn: str) -> None:
    """uvicorn with bench/floor_app.py in `mode`, as the stack's server."""
    log(f"starting floor app ({mode}, {workers} workers)")
    stack.spawn([str(Path(sys.executable).parent / "uvicorn"), "bench.floor_app:app",
                 "--workers", str(workers), "--host", "127.0.0.1", "--port", str(stack.port),
                 "--no-access-log"],
                {**os.environ, "FLOOR_MODE": mode, "FLOOR_DSN": dsn}, workers, timeout=60)


def measure(stack: Stack, name: str, token: str, seconds: int, warmup: int,
            baseline: float) -> dict[str, Any]:
    run = f"{name}{os.getpid()}{time.monotonic_ns()}"
    if warmup:
        run_wrk(stack, token=token, script=BENCH_DIR / "lua" / "issue.lua", seconds=warmup,
                connections=32, threads=2, run_id=f"w{run}", measure_cpu=False)
    wrk = run_wrk(stack, token=token, script=BENCH_DIR / "lua" / "issue.lua", seconds=seconds,
                  connections=32, threads=2, run_id=run)
    per_s = wrk["status"]["201"] / (wrk["duration_us"] / 1e6)
    cores = wrk["cpu"]["cores"]
    result = {
        "mode": name, "per_s": round(per_s, 1), "ratio": round(per_s / baseline, 4),
        "status": wrk["status"], "errors": wrk["errors"],
        "p50_ms": round(wrk["latency_us"]["p50"] / 1000, 2),
        "p99_ms": round(wrk["latency_us"]["p99"] / 1000, 2),
        "cores": cores, "machine_busy_pct": wrk["cpu"]["machine_busy_pct"],
        "app_cpu_ms": round(1000 * cores.get("idservice", 0.0) / per_s, 3) if per_s else None,
        "pg_cpu_ms": round(1000 * cores.get("postgresql", 0.0) / per_s, 3) if per_s else None,
        "error_sample": wrk["error_sample"],
    }
    log(f"{name}: {per_s:,.0f}/s ({result['ratio']:.3f}x), p99 {result['p99_ms']} ms, "
        f"CPU per request app {result['app_cpu_ms']} ms, PostgreSQL {result['pg_cpu_ms']} ms")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated floor modes (default: all)")
    parser.add_argument("--skip-idservice", action="store_true")
    parser.add_argument("--batch-records", type=int, default=0,
                        help="also the batch's floor in PostgreSQL for this many records")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m and m != "none"]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {sorted(unknown)}")
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with Stack() as stack:
        stack.start_cluster()
        baseline = pgbench_insert_rate(stack, args.seconds)
        base = float(baseline["commits_per_s"])
        log(f"pgbench: {base:,.0f} commits/s")
        dsn = asyncio.run(prepare_scratch(stack))
        token = ""
        for _ in range(args.rounds):
            for mode in modes:
                start_floor(stack, mode, args.workers, dsn)
                try:
                    results.append(measure(stack, mode, "floor-no-auth", args.seconds,
                                           args.warmup, base))
                finally:
                    stack.stop_server()
            if not args.skip_idservice:
                stack.start_server(args.workers)
                token = token or stack.token()
                try:
                    results.append(measure(stack, "idservice", token, args.seconds,
                                           args.warmup, base))
                finally:
                    stack.stop_server()
        # Last: its rows and events would be background work for a later idservice run.
        batch = asyncio.run(batch_floor(stack, args.batch_records)) \
            if args.batch_records else None
    report = {"at": datetime.now(UTC).isoformat(), "workers": args.workers,
              "seconds": args.seconds, "pgbench_commits_per_s": base,
              "pgbench_cores": baseline["cpu"]["cores"],
              "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()], "runs": results,
              "batch_floor": batch}
    lines = [f"Single-issuance floor of the stack ({args.workers} workers, wrk -c32, "
             f"{args.seconds} s, {args.rounds} round(s)); pgbench {base:,.0f} commits/s; "
             f"load before {report['loadavg_before']}",
             f"  {'mode':<10} {'per s':>8} {'ratio':>7} {'p99 ms':>7} {'app ms':>7} "
             f"{'PG ms':>6}  (CPU per request; median over rounds)"]
    for name in [*modes, *([] if args.skip_idservice else ["idservice"])]:
        mine = [r for r in results if r["mode"] == name]
        if not mine:
            continue

        def med(key: str, runs: list[dict[str, Any]] = mine) -> float:
            return statistics.median(float(r[key] or 0) for r in runs)

        lines.append(f"  {name:<10} {med('per_s'):>8,.0f} {med('ratio'):>7.3f} "
                     f"{med('p99_ms'):>7.1f} {med('app_cpu_ms'):>7.3f} {med('pg_cpu_ms'):>6.3f}")
    # Goal 1's CPU budget: the cores the load generator leaves, spread over 0.25x of pgbench.
    groups = [r for r in results if r["mode"] == "group"] or [
        r for r in results if r["mode"] == "insert"]
    if groups:
        cores = os.cpu_count() or 1
        wrk_cores = statistics.median(r["cores"].get("wrk + benchmark process", 0.0)
                                      for r in groups)
        budget = 1000 * (cores - wrk_cores) / (TARGET_RATIO * base)
        floor = statistics.median(r["app_cpu_ms"] + r["pg_cpu_ms"] for r in groups)
        lines.append(f"  goal 1 ({TARGET_RATIO}x = {TARGET_RATIO * base:,.0f}/s) allows "
                     f"{budget:.3f} ms of CPU per issuance ({cores} cores less the load "
                     f"generator's {wrk_cores:.2f}); the floor ({groups[0]['mode']}) uses "
                     f"{floor:.3f}, leaving {budget - floor:.3f} ms for all idservice adds")
        ours = [r for r in results if r["mode"] == "idservice"]
        if ours:
            spent = statistics.median(r["app_cpu_ms"] + r["pg_cpu_ms"] for r in ours)
            lines.append(f"  idservice adds {spent - floor:.3f} ms today ({spent:.3f} ms per "
                         "issuance in all)")
    if batch:
        budget = 1000 * (os.cpu_count() or 1) * BATCH_TARGET_S / BATCH_RECORDS
        lines.append(
            f"  batch floor (PostgreSQL only, {batch['records']:,} records): "
            f"{batch['pg_cpu_ms_per_record']:.3f} ms of CPU per record (write "
            f"{batch['pg_cpu_ms_per_record_write']:.3f}, sequencing "
            f"{batch['pg_cpu_ms_per_record_sequence']:.3f}); goal 2 ({BATCH_RECORDS:,} in "
            f"{BATCH_TARGET_S} s) allows {budget:.3f} ms per record for everything")
    print("\n".join(lines))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"floor-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {out}")
    bad = any(r["status"]["4xx"] or r["status"]["5xx"] or not r["status"]["201"]
              for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

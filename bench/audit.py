"""Audit log benchmark: write rate, integration lag, `audit verify` time (contract section 5).

Reproduce (from the repo root, as root for the embedded PostgreSQL user)::

    .venv/bin/python bench/audit.py --events 1000000        # ~3-5 min
    .venv/bin/python bench/audit.py                         # 10,000,000 events (long)

Method (one run, everything started and removed by the script, see bench/_harness.py: a fresh
data dir under /tmp, the embedded PostgreSQL started by this process, `idservice dev` with its
default audit loops: sequencer every 0.2 s, integrator every 0.25 s, checkpoints every 2 s):

1. Baseline, plain insert: `--connections` asyncpg connections (one event loop in this
   process), each transaction `BEGIN; INSERT one row; COMMIT` into a plain table with the
   columns of `audit_event` (no trigger, no secondary index) in a scratch database of the
   same cluster, for `--seconds`. Reference: pgbench (C client) single-row INSERT commits/s.
2. Write path, integration running: the same client and connections, each transaction
   `BEGIN; idservice.audit.recorder.record(one event); COMMIT` as the service's database role
   into `audit_event` (stamp trigger, indexes), while the server sequences, integrates and
   signs checkpoints. Ratio = write / plain insert (target >= 0.8).
3. Integration lag at `--lag-rate` (5,000) events/s for `--lag-seconds`: the service's audit
   INSERT statement as the service's role, paced by pgbench `--rate` (a C client; one asyncpg
   event loop tops out below 5,000 commits/s here; `--lag-writer python` paces `record()`
   itself on a fixed schedule instead). Lag of an event = `integrated_at` of the first tree
   head that contains its index (`audit_tree`, stamped by the database) minus the event's
   `at` (stamped at insert, a few ms before its commit); p50/p99/max over every paced event
   (target p99 <= 1 s). Checkpoint lag (first signed checkpoint containing it) is shown too.
4. Verify: `--events` events generated directly in the database (one `INSERT ... SELECT
   generate_series` per `--chunk` rows, realistic field widths), sequenced and integrated by
   the running server (its throughput is reported), a final checkpoint signed; then
   `idservice audit verify` (the CLI, reads as the auditor role, key from the HSM) is timed
   over the whole log. Baseline: raw SHA-256 of the same leaves (`0x00 || JCS(event)` of a
   sample of the generated events, prepared in memory first), projected to the number of
   leaves plus the n-1 interior nodes; the JCS rendering rate (render_row + rfc8785) and the
   rate of `entry.row_leaf_hashes` (rows to leaf hashes, what the integrator and the verify
   workers run) on one core are shown as well. `audit verify` uses one worker process per CPU.
   Target:
   10,000,000 events verified in <= 120 s (with fewer events, projected linearly).

The report goes to stdout and, as JSON, to bench/results/audit-<UTC time>.json (gitignored).
Benchmarks are never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/audit.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import rfc8785

from bench._harness import (
    BENCH_DIR,
    PG_BIN,
    REPO,
    SCRATCH_DB,
    VENV_BIN,
    Stack,
    _percentiles_ms,
    closed_loop,
    log,
    pgbench_insert_rate,
    prepare_scratch,
)
from idservice.audit import entry
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Actor
from idservice.db.roles import url_for
from idservice.queries import audit as q

RESULTS_DIR = BENCH_DIR / "results"
TARGET_WRITE_RATIO = 0.8
TARGET_LAG_P99_S = 1.0
TARGET_VERIFY_S = 120.0
TARGET_VERIFY_EVENTS = 10_000_000
SERVICE_ROLE = "idservice_app"

PLAIN_TABLE = """
DROP TABLE IF EXISTS bench_audit_plain;
CREATE TABLE bench_audit_plain (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_type  text NOT NULL, actor_id text NOT NULL, action text NOT NULL, pin text,
  purpose     text, outcome text NOT NULL, request_id text, source_ip text,
  details     jsonb NOT NULL DEFAULT '{}'::jsonb
)"""
PLAIN_INSERT = """
INSERT INTO bench_audit_plain (actor_type, actor_id, action, pin, purpose, outcome, request_id,
                               source_ip, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)"""

# Generated events: the shapes the service writes (PIN reads/issues by officers and clients).
GENERATE = """
INSERT INTO audit_event (actor_type, actor_id, action, pin, purpose, outcome, request_id,
                         source_ip, details)
SELECT CASE WHEN g % 3 = 0 THEN 'client' ELSE 'operator' END,
       CASE WHEN g % 3 = 0 THEN 'demo-registrar-052' ELSE 'officer-' || (g % 97) END,
       (ARRAY['person.read', 'pin.issue', 'person.search', 'pin.verify'])[1 + g % 4],
       lpad(((g * 7919) % 1000000000000)::text, 12, '0'),
       CASE WHEN g % 4 = 0 THEN 'case-' || (g % 10007) END,
       'ok', md5(g::text), '10.0.' || (g % 256) || '.' || (g % 199),
       jsonb_build_object('bench', true, 'n', g)
  FROM generate_series($1::bigint, $2::bigint) AS g"""


def _event(i: int, tag: str) -> tuple[RequestContext, list[AuditEvent]]:
    ctx = RequestContext(Actor("operator", f"officer-{i % 97}"), f"{tag}-{i}", "10.0.0.1")
    return ctx, [AuditEvent("person.read", "ok", pin=f"{(i * 7919) % 10**12:012d}",
                            purpose="bench", details={"bench": True, "n": i})]


def _plain_args(i: int, tag: str) -> tuple[Any, ...]:
    ctx, (event,) = _event(i, tag)
    return (ctx.actor.type, ctx.actor.id, event.action, event.pin, event.purpose,
            event.outcome, ctx.request_id, ctx.source_ip,
            json.dumps(event.details, ensure_ascii=False, sort_keys=True))


# -- phases 1 and 2: closed-loop write rates -----------------------------------------------


async def _closed_loop(stack: Stack, url: str, connections: int, seconds: float,
                       one: Any) -> dict[str, Any]:
    """One transaction per call of `one`, figures as this benchmark reports them."""

    async def in_transaction(conn: asyncpg.Connection, key: int) -> None:
        async with conn.transaction():
            await one(conn, key)

    run = await closed_loop(stack, url, connections, seconds, in_transaction)
    return {"connections": connections, "seconds": round(run.elapsed, 2), "events": run.count,
            "per_s": round(run.count / run.elapsed, 1),
            "latency_ms": _percentiles_ms(run.latencies), "cpu": run.cpu}


async def plain_insert_rate(stack: Stack, connections: int, seconds: float) -> dict[str, Any]:
    await prepare_scratch(stack)
    url = stack.database_url(SCRATCH_DB)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PLAIN_TABLE)
    finally:
        await conn.close()

    async def one(conn: asyncpg.Connection, i: int) -> None:
        await conn.execute(PLAIN_INSERT, *_plain_args(i, "plain"))

    return await _closed_loop(stack, url, connections, seconds, one)


def service_url(stack: Stack) -> str:
    return url_for(stack.database_url(), user=SERVICE_ROLE)


async def write_path_rate(stack: Stack, connections: int, seconds: float) -> dict[str, Any]:
    async def one(conn: asyncpg.Connection, i: int) -> None:
        ctx, events = _event(i, "write")
        await record(conn, ctx, events)

    result = await _closed_loop(stack, service_url(stack), connections, seconds, one)
    drained = await wait_integrated(stack, timeout=300)
    result["integrated_after_s"] = drained
    result["lag"] = await lag_of(stack, "write-%")
    return result


# -- phase 3: paced writes and integration lag ---------------------------------------------


async def paced_writes(stack: Stack, rate: float, seconds: float,
                       connections: int) -> dict[str, Any]:
    conns = [await asyncpg.connect(service_url(stack)) for _ in range(connections)]
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    next_slot = 0
    late: list[float] = []
    meter = stack.cpu_meter().start()
    start = loop.time() + 0.2

    async def worker(conn: asyncpg.Connection) -> int:
        nonlocal next_slot
        n = 0
        while next_slot < total:
            slot = next_slot
            next_slot += 1
            due = start + slot / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late.append(-delay)
            ctx, events = _event(slot, "lag")
            async with conn.transaction():
                await record(conn, ctx, events)
            n += 1
        return n

    counts = await asyncio.gather(*(worker(c) for c in conns))
    elapsed = loop.time() - start
    cpu = meter.stop()
    for conn in conns:
        await conn.close()
    drained = await wait_integrated(stack, timeout=300)
    late.sort()
    return {"target_per_s": rate, "events": sum(counts), "seconds": round(elapsed, 2),
            "achieved_per_s": round(sum(counts) / elapsed, 1),
            "behind_schedule_ms": _percentiles_ms(late) if late else None,
            "integrated_after_s": drained, "lag": await lag_of(stack, "lag-%"), "cpu": cpu}


# The service's own audit write (idservice.queries.audit.WRITE_EVENTS) with pgbench variables
# in place of its parameters: one person.read event per transaction, as `record()` writes it.
_PGBENCH_ARGS = ("'operator'", "'officer-' || (:n::bigint % 97)", "'lagpg-' || :n::bigint",
                 "'10.0.0.1'",
                 "ARRAY['person.read']",
                 "ARRAY[lpad(((:n::bigint * 7919) % 1000000000000)::text, 12, '0')]",
                 "ARRAY['bench']", "ARRAY['ok']",
                 "ARRAY[jsonb_build_object('bench', true, 'n', :n::bigint)::text]")


def _pgbench_script() -> str:
    sql = q.WRITE_EVENTS
    for i in range(len(_PGBENCH_ARGS), 0, -1):  # $10 would match $1 first the other way round
        sql = sql.replace(f"${i}", _PGBENCH_ARGS[i - 1])
    return "\\set n random(1, 1000000000)\n" + " ".join(sql.split()) + ";\n"


def paced_writes_pgbench(stack: Stack, rate: float, seconds: float,
                         clients: int) -> dict[str, Any]:
    """Integration lag with a C client pacing the writes (pgbench --rate, Poisson schedule):
    a single asyncpg event loop tops out below 5,000 commits/s on this machine, so it cannot
    drive the target rate itself. Same statement and database role as the service, prepared
    once per connection as asyncpg does (re-planning it per call cost PostgreSQL ~85 us)."""
    script = stack.data_dir / "bench_audit_lag.sql"
    script.write_text(_pgbench_script())
    cmd = [str(PG_BIN / "pgbench"), "-h", stack.socket_dir, "-p", str(stack.pg_port),
           "-U", SERVICE_ROLE, "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
           "-R", str(rate),
           "-T", str(int(seconds)), "-f", str(script), "idservice"]
    log("pgbench: " + " ".join(cmd))
    meter = stack.cpu_meter().start()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                          check=False)
    cpu = meter.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {proc.stderr}")
    done = re.search(r"number of transactions actually processed: (\d+)", proc.stdout)
    sched = re.search(r"rate limit schedule lag: avg ([\d.]+) \(max ([\d.]+)\) ms", proc.stdout)
    events = int(done.group(1)) if done else 0
    drained = asyncio.run(wait_integrated(stack, timeout=300))
    return {"writer": "pgbench --rate", "clients": clients, "target_per_s": rate,
            "events": events, "seconds": seconds, "achieved_per_s": round(events / seconds, 1),
            "schedule_lag_ms": {"avg": float(sched.group(1)), "max": float(sched.group(2))}
            if sched else None,
            "integrated_after_s": drained, "lag": asyncio.run(lag_of(stack, "lagpg-%")),
            "cpu": cpu}


async def lag_of(stack: Stack, request_ids: str) -> dict[str, Any]:
    conn = await asyncpg.connect(stack.database_url())
    try:
        rows = await conn.fetch("""
            SELECT extract(epoch FROM t.integrated_at - e.at)::float8 AS tree,
                   extract(epoch FROM c.created_at - e.at)::float8 AS checkpoint
              FROM audit_event e JOIN audit_log l ON l.event_id = e.id
              CROSS JOIN LATERAL (SELECT integrated_at FROM audit_tree WHERE size > l.index
                                   ORDER BY size LIMIT 1) t
              LEFT JOIN LATERAL (SELECT created_at FROM audit_checkpoint
                                  WHERE tree_size > l.index ORDER BY tree_size LIMIT 1) c
                ON true
             WHERE e.request_id LIKE $1""", request_ids)
    finally:
        await conn.close()
    tree = sorted(r["tree"] for r in rows)
    checkpoint = sorted(r["checkpoint"] for r in rows if r["checkpoint"] is not None)
    return {"events": len(rows),
            "integration_ms": _percentiles_ms(tree) if tree else None,
            "checkpoint_ms": _percentiles_ms(checkpoint) if checkpoint else None}


async def _log_state(conn: asyncpg.Connection) -> tuple[int, int, int, int]:
    row = await conn.fetchrow("""
        SELECT (SELECT count(*) FROM audit_event) AS written,
               (SELECT coalesce(max(index) + 1, 0) FROM audit_log) AS sequenced,
               (SELECT max(size) FROM audit_tree) AS integrated,
               (SELECT coalesce(max(tree_size), 0) FROM audit_checkpoint) AS checkpointed""")
    return (int(row["written"]), int(row["sequenced"]), int(row["integrated"]),
            int(row["checkpointed"]))


async def wait_integrated(stack: Stack, timeout: float,
                          report_every: float = 0.0) -> float:
    """Seconds until every written event is sequenced, integrated and checkpointed."""
    conn = await asyncpg.connect(stack.database_url())
    t0 = time.perf_counter()
    last_report = t0
    try:
        while True:
            written, sequenced, integrated, checkpointed = await _log_state(conn)
            now = time.perf_counter()
            if written == sequenced == integrated == checkpointed:
                return round(now - t0, 2)
            if now - t0 > timeout:
                raise RuntimeError(f"log not drained in {timeout} s: written {written}, "
                                   f"sequenced {sequenced}, integrated {integrated}, "
                                   f"checkpointed {checkpointed}")
            if report_every and now - last_report >= report_every:
                log(f"  sequenced {sequenced:,}/{written:,}, integrated {integrated:,}, "
                    f"checkpointed {checkpointed:,}")
                last_report = now
            await asyncio.sleep(0.2 if not report_every else 1.0)
    finally:
        await conn.close()


# -- phase 4: generated events, verify, hashing baseline -----------------------------------


async def generate(stack: Stack, events: int, chunk: int) -> dict[str, Any]:
    conn = await asyncpg.connect(stack.database_url())
    try:
        t0 = time.perf_counter()
        for first in range(1, events + 1, chunk):
            last = min(events, first + chunk - 1)
            await conn.execute(GENERATE, first, last)
            log(f"  generated {last:,}/{events:,} events")
        inserted = time.perf_counter() - t0
    finally:
        await conn.close()
    meter = stack.cpu_meter().start()
    t1 = time.perf_counter()
    drained = await wait_integrated(stack, timeout=7200, report_every=10)
    return {"events": events, "insert_s": round(inserted, 1),
            "insert_per_s": round(events / inserted), "sequenced_and_integrated_s": drained,
            "server_integration_per_s": round(events / max(1e-9, time.perf_counter() - t1)),
            "cpu_during_integration": meter.stop()}


def run_verify(stack: Stack) -> dict[str, Any]:
    cmd = [str(VENV_BIN / "idservice"), "audit", "verify"]
    meter = stack.cpu_meter().start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=stack.env, cwd=REPO, capture_output=True, text=True,
                          timeout=7200, check=False)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"audit verify failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"command": " ".join(cmd[1:]), "seconds": round(elapsed, 2),
            "output": proc.stdout.strip(), "cpu": cpu}


async def hashing_baseline(stack: Stack, sample: int, rows: int) -> dict[str, Any]:
    """Raw SHA-256 of `0x00 || JCS(event)` for a sample of the generated leaves."""
    conn = await asyncpg.connect(stack.database_url())
    try:
        start = int(await conn.fetchval("SELECT max(index) FROM audit_log")) - sample + 1
        records = await conn.fetch("""
            SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id,
                   source_ip, details::text AS details
              FROM audit_entry WHERE index >= $1 ORDER BY index""", max(0, start))
    finally:
        await conn.close()
    t0 = time.perf_counter()
    entry.row_leaf_hashes(records)  # the integrator's and the verifier's path, same columns
    pipeline_s = time.perf_counter() - t0
    rendered = []
    t0 = time.perf_counter()
    for r in records:
        row = dict(r)
        row["details"] = json.loads(row["details"])
        rendered.append(entry.render_row(row))
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    leaves = [b"\x00" + rfc8785.dumps({k: e[k] for k in entry.EVENT_FIELDS}) for e in rendered]
    jcs_s = time.perf_counter() - t0
    sha256 = hashlib.sha256
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for leaf in leaves:
            sha256(leaf).digest()
        best = max(best, len(leaves) / (time.perf_counter() - t0))
    node = b"\x01" + bytes(64)
    t0 = time.perf_counter()
    for _ in range(len(leaves)):
        sha256(node).digest()
    node_rate = len(leaves) / (time.perf_counter() - t0)
    projected = rows / best + max(0, rows - 1) / node_rate
    return {"sample": len(leaves), "mean_leaf_bytes": round(sum(map(len, leaves)) / len(leaves)),
            "leaf_sha256_per_s": round(best), "node_sha256_per_s": round(node_rate),
            "raw_hash_seconds_for_log": round(projected, 2),
            "render_per_s": round(len(leaves) / render_s),
            "row_leaf_hashes_per_s": round(len(records) / pipeline_s),
            "jcs_per_s": round(len(leaves) / jcs_s)}


# -- report --------------------------------------------------------------------------------


def _cores(cpu: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in cpu["cores"].items() if v >= 0.01)


def _met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def render(report: dict[str, Any]) -> str:
    plain, pgb, write = report["plain_insert"], report["pgbench_insert"], report["write_path"]
    lag, ver, gen, raw = report["lag"], report["verify"], report["generated"], report["hashing"]
    lines = [
        f"audit benchmark ({report['at']}; {report['connections']} connections, "
        f"{report['seconds']} s per closed-loop phase)",
        f"  baseline plain insert  : {plain['per_s']:,.0f} events/s (asyncpg, BEGIN/INSERT/COMMIT"
        f" into a plain table); pgbench single-row INSERT {pgb['commits_per_s']:,.0f}/s",
        f"  write path             : {write['per_s']:,.0f} events/s (recorder.record, service "
        f"role, integration running); ratio {report['write_ratio']:.2f} (target >= "
        f"{TARGET_WRITE_RATIO}: {_met(report['write_ratio'] >= TARGET_WRITE_RATIO)})",
        f"    latency ms           : {write['latency_ms']}",
        f"    drained after        : {write['integrated_after_s']} s; lag at saturation "
        f"{write['lag']['integration_ms']}",
        f"    cores                : {_cores(write['cpu'])}",
        f"  lag at {lag['target_per_s']:,.0f}/s       : achieved {lag['achieved_per_s']:,.0f}/s "
        f"for {lag['seconds']} s; integration lag ms {lag['lag']['integration_ms']}",
        f"    p99 {lag['lag']['integration_ms']['p99'] / 1000:.3f} s (target <= "
        f"{TARGET_LAG_P99_S} s: {_met(report['lag_met'])}); checkpoint lag ms "
        f"{lag['lag']['checkpoint_ms']}",
        f"    cores                : {_cores(lag['cpu'])}",
        f"  generated              : {gen['events']:,} events in {gen['insert_s']} s "
        f"({gen['insert_per_s']:,}/s); server sequenced+integrated them in "
        f"{gen['sequenced_and_integrated_s']} s ({gen['server_integration_per_s']:,}/s)",
        f"  audit verify           : {ver['seconds']} s for {report['log_rows']:,} events "
        f"({report['verify_per_s']:,.0f}/s) -> {report['verify_projected_s']:.1f} s for "
        f"{TARGET_VERIFY_EVENTS:,} (target <= {TARGET_VERIFY_S:.0f} s: "
        f"{_met(report['verify_met'])}){' [projected]' if report['projected'] else ''}",
        f"    output               : {ver['output']}",
        f"    cores                : {_cores(ver['cpu'])}",
        f"  raw SHA-256 baseline   : {raw['leaf_sha256_per_s']:,}/s leaves "
        f"({raw['mean_leaf_bytes']} B), {raw['node_sha256_per_s']:,}/s nodes -> "
        f"{raw['raw_hash_seconds_for_log']} s for this log; verify / raw = "
        f"{report['verify_over_raw']:.1f}x",
        f"    where verify goes    : render {raw['render_per_s']:,}/s, JCS "
        f"{raw['jcs_per_s']:,}/s (render_row + rfc8785); entry.row_leaf_hashes "
        f"{raw['row_leaf_hashes_per_s']:,}/s (Python, per core)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=TARGET_VERIFY_EVENTS,
                        help="events generated in the database for the verify phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="closed-loop phases")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--lag-rate", type=float, default=5000.0)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--lag-writer", choices=("pgbench", "python"), default="pgbench",
                        help="who paces the lag phase's writes (python: asyncpg + record())")
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--hash-sample", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args(argv)

    with Stack(keep=args.keep) as stack:
        stack.start_cluster()
        stack.start_server(1)
        log(f"baseline: plain insert, {args.connections} connections, {args.seconds} s")
        plain = asyncio.run(plain_insert_rate(stack, args.connections, args.seconds))
        log(f"  {plain['per_s']:,.0f}/s; pgbench reference")
        pgb = pgbench_insert_rate(stack, int(args.seconds), clients=args.connections)
        pgb.pop("raw", None)
        log("write path with integration running")
        write = asyncio.run(write_path_rate(stack, args.connections, args.seconds))
        log(f"  {write['per_s']:,.0f}/s; lag at {args.lag_rate:,.0f}/s for {args.lag_seconds} s")
        if args.lag_writer == "pgbench":
            lag = paced_writes_pgbench(stack, args.lag_rate, args.lag_seconds, args.connections)
        else:
            lag = asyncio.run(paced_writes(stack, args.lag_rate, args.lag_seconds,
                                           args.connections))
        log(f"  p99 {lag['lag']['integration_ms']}; generating {args.events:,} events")
        gen = asyncio.run(generate(stack, args.events, args.chunk))
        log("audit verify (CLI)")
        ver = run_verify(stack)
        rows = int(ver["output"].split("OK: ", 1)[1].split(" ", 1)[0])
        log(f"  {ver['seconds']} s for {rows:,} events; hashing baseline")
        raw = asyncio.run(hashing_baseline(stack, min(args.hash_sample, args.events), rows))
        per_s = rows / ver["seconds"]
        projected = TARGET_VERIFY_EVENTS / per_s if rows < TARGET_VERIFY_EVENTS \
            else ver["seconds"] * TARGET_VERIFY_EVENTS / rows
        report = {
            "at": datetime.now(UTC).isoformat(), "events_generated": args.events,
            "connections": args.connections, "seconds": args.seconds,
            "plain_insert": plain, "pgbench_insert": pgb, "write_path": write,
            "write_ratio": write["per_s"] / plain["per_s"],
            "write_ratio_to_pgbench": write["per_s"] / (pgb["commits_per_s"] or 1),
            "lag": lag, "lag_met": lag["lag"]["integration_ms"]["p99"] <= 1000 * TARGET_LAG_P99_S
            and lag["achieved_per_s"] >= 0.95 * args.lag_rate,
            "generated": gen, "verify": ver, "log_rows": rows, "verify_per_s": per_s,
            "verify_projected_s": projected, "projected": rows < TARGET_VERIFY_EVENTS,
            "verify_met": projected <= TARGET_VERIFY_S, "hashing": raw,
            "verify_over_raw": ver["seconds"] / raw["raw_hash_seconds_for_log"],
        }
    print(render(report))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"audit-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

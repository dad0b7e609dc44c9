"""Issuance benchmark: single `POST /v1/pins` and `POST /v1/pins:batch` against the durable
single-row INSERT ceiling of the same PostgreSQL.

Reproduce (from the repo root; needs root for the embedded PostgreSQL user and `apt-get`)::

    .venv/bin/python bench/issuance.py --seconds 5 --records 20000       # smoke run, ~2 min
    .venv/bin/python bench/issuance.py --seconds 20 --records 200000     # the reported run
    .venv/bin/python bench/issuance.py --seconds 20                      # 1,736,600 records

Method (one run, everything started and removed by the script, see bench/_harness.py):

1. A fresh data dir under /tmp, its embedded PostgreSQL (fsync and synchronous_commit forced
   on), then `idservice dev` once (SoftHSM token, signing key, demo registrar client
   `demo-registrar-052`) and, for `--workers N > 1`, `idservice serve --workers N` on the same
   data dir. Access tokens come from `idservice clients token` (private_key_jwt).
2. Baseline, on the very same cluster, while the service idles: durable single-row INSERT
   commits/s into a scratch table of a scratch database at 32 connections, measured with
   pgbench (C client: `-c 32 -j 2 -T <seconds> -n -f script.sql`, one INSERT per transaction);
   the same from Python (asyncpg, 32 connections, one event loop) for reference.
3. Single issuance: `wrk -t2 -c32 -d<seconds>s` with bench/lua/issue.lua, which builds a new
   registration (unique number, varied sex and birth year so PINs spread over the 192
   (052, G, YY) buckets) for every request; rate = 201 responses / duration, p50/p99 from
   wrk's latency histogram (its `done()` callback prints them as JSON). A 3 s warm-up run
   precedes it. Ratio = issuances/s / pgbench commits/s. Targets (issue 16 goal 1): ratio
   >= 0.25, p99 <= 50 ms.
4. Profile (`--profile-seconds`, default 10, 0 = off): another wrk run of that length (and,
   after the measured batch, a batch sized to last as long) with `py-spy record
   --subprocesses --nonblocking --gil` on the server; shares of notable code paths, top
   functions, a per-library breakdown; raw collapsed stacks kept in bench/results/ (open them
   in speedscope or flamegraph.pl). `--pg-stats` adds pg_stat_statements figures.
5. Batch: `--records` NDJSON lines (default 1,736,600, the population of Binh Dinh) sent as
   `--batch-streams` concurrent `POST /v1/pins:batch` requests (chunked upload, the answer read
   while the body is still being sent; lines are generated on the fly, never held in memory).
   uvicorn's workers share one listening socket and often both streams land on one worker;
   the client therefore plays load balancer (reconnects, before sending anything, until each
   stream sits on its own worker, found through /proc; `--no-batch-balance` turns it off).
   "Issued" = the last answer line received; "audited" = every audit event written so far has
   been sequenced into the log (`max(index) + 1` of audit_log reaches the number of
   audit_event rows); also shown: when the Merkle tree and a signed checkpoint cover them.
   Checks: every line answered, no errors, all PINs distinct, one `pin.issue` event per line.
   Target: 1,736,600 records issued and audited in <= 120 s (for fewer records the time for
   1,736,600 at the measured rate is shown as a projection).

CPU seconds of each part (idservice processes, PostgreSQL, the load generator, the rest of the
machine) are read from /proc around every phase, to tell a saturated server from a noisy box.
The report goes to stdout and, as JSON, to bench/results/issuance-<UTC time>.json
(gitignored). Benchmarks are never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

if __package__ in (None, ""):  # run as `python bench/issuance.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    BENCH_DIR,
    REPO,
    Stack,
    WorkerBalancer,
    asyncpg_insert_rate,
    ensure_wrk,
    log,
    pgbench_insert_rate,
    py_spy_start,
    run_wrk,
    summarise_profile,
)

BINH_DINH_POPULATION = 1_736_600
TARGET_RATIO = 0.25  # issue 16 goal 1
TARGET_P99_MS = 50.0
TARGET_BATCH_S = 120.0
LUA_SCRIPT = BENCH_DIR / "lua" / "issue.lua"
RESULTS_DIR = BENCH_DIR / "results"
BATCH_LIMIT_BYTES = 1024 * 1024 * 1024  # the server's default max_batch_body_bytes

# -- batch lines (same arithmetic as bench/lua/issue.lua) ---------------------------------

FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ",
          "Ngô", "Dương", "Lý")
MIDDLE = {"M": ("Văn", "Hữu", "Đức", "Minh", "Quốc", "Thanh"),
          "F": ("Thị", "Ngọc", "Thu", "Minh", "Kim", "Thanh")}
GIVEN = {"M": ("Hùng", "Dũng", "Nam", "Long", "Tuấn", "Khoa", "Phúc", "Bảo", "Huy"),
         "F": ("Lan", "Anh", "Hoa", "Mai", "Linh", "Trang", "Vy", "Ngân", "Hương")}
COMMUNE = ("Nhơn Lý", "Ghềnh Ráng", "Quang Trung", "Nhơn Hội", "Tam Quan", "Bồng Sơn",
           "Phù Cát", "Tây Sơn", "Vĩnh Thạnh", "An Nhơn", "Hoài Nhơn")
TEMPLATE = (
    '{"registration":{"authority":"UBND xã %s, Bình Định","number":"%s",'
    '"book":"%02d/%04d","registered_on":"%04d-%02d-%02d","province_code":"052"},'
    '"child":{"full_name":"%s","other_names":[],"sex":"%s","date_of_birth":"%04d-%02d-%02d",'
    '"place_of_birth":"Trạm y tế xã %s","home_town":"%s, Bình Định","ethnicity":"Kinh",'
    '"nationality":"VN"},'
    '"father":{"full_name":"%s","pin":"%s","nationality":"VN"},'
    '"mother":{"full_name":"%s","pin":"%s","nationality":"VN"}}\n'
)


def _name(h: int, sex: str) -> str:
    return (f"{FAMILY[h % len(FAMILY)]} {MIDDLE[sex][(h // 7) % 6]} "
            f"{GIVEN[sex][(h // 131) % 9]}")


@functools.lru_cache(maxsize=16)
def run_seed(run: str) -> int:
    """A number of the run id (same as run_seed() in bench/lua/issue.lua)."""
    seed = 0
    for byte in run.encode():
        seed = (seed * 31 + byte) % 1000003
    return seed


def make_line(n: int, stream: int, run: str) -> str:
    """The `n`-th registration (n >= 1) of `stream`: one NDJSON line, newline included."""
    h = (n * 2654435761 + stream * 40503) % 4294967296
    year = 1930 + h % 96
    month = 1 + (h // 96) % 12
    day = 1 + (h // 1152) % 20
    sex = "M" if (h // 23040) % 2 == 0 else "F"
    commune = COMMUNE[(h // 46080) % len(COMMUNE)]
    father_year = year - 22 - h % 15
    father_pin = f"052{2 if father_year >= 2000 else 0}{father_year % 100:02d}{h % 1000000:06d}"
    return TEMPLATE % (commune, f"{run}-t{stream}-{n}", month, year, year, month, day + n % 8,
                       _name(h, sex), sex, year, month, day, commune, commune,
                       _name(h // 3, "M"), father_pin, _name(h // 5, "F"),
                       f"052{(run_seed(run) * 7919 + stream * 1000003 + n) % 10**9:09d}")


# -- batch client --------------------------------------------------------------------------

_PIN = re.compile(rb'"pin": ?"(\d{12})"')
SEND_BLOCK_LINES = 1000


@dataclass
class StreamResult:
    stream: int
    request_id: str
    lines: int
    status: int = 0
    bytes_sent: int = 0
    answered: int = 0
    pins: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    send_error: str | None = None
    finished_s: float = 0.0
    worker_pid: int | None = None


@dataclass
class BatchProgress:
    started: float
    answered: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)


class _ChunkedReader:
    """Reads an HTTP/1.1 response body (chunked or not) as it arrives."""

    def __init__(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        self._reader = reader
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None else -1

    async def read(self) -> bytes:
        """Next piece of the body; b"" at its end."""
        if self._chunked:
            size_line = await self._reader.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await self._reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b""
            data = await self._reader.readexactly(size + 2)
            return data[:-2]
        if self._remaining == 0:
            return b""
        data = await self._reader.read(65536 if self._remaining < 0 else
                                       min(65536, self._remaining))
        if self._remaining > 0:
            self._remaining -= len(data)
        return data


async def batch_stream(
    connection: WorkerBalancer, host: str, port: int, token: str, stream: int, lines: int,
    run: str, pins: set[bytes], progress: BatchProgress, *, path: str = "/v1/pins:batch",
    make: Callable[[int, int, str], str] = make_line,
) -> StreamResult:
    """One NDJSON upload (`POST /v1/pins:batch`, or the offline sync of bench/offline.py):
    send `lines` lines made by `make(n, stream, run)` while reading the answer lines."""
    result = StreamResult(stream, f"bench-{run}-s{stream}", lines)
    reader, writer, result.worker_pid = await connection.open()
    writer.write((
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\n"
        f"Transfer-Encoding: chunked\r\nX-Request-ID: {result.request_id}\r\n"
        "Connection: close\r\n\r\n").encode())

    async def send() -> None:
        try:
            for first in range(1, lines + 1, SEND_BLOCK_LINES):
                last = min(first + SEND_BLOCK_LINES, lines + 1)
                block = "".join(make(n, stream, run) for n in range(first, last)).encode()
                writer.write(b"%x\r\n%s\r\n" % (len(block), block))
                result.bytes_sent += len(block)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, OSError) as exc:  # the server answered early and closed
            result.send_error = f"{type(exc).__name__}: {exc}"

    sender = asyncio.create_task(send())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        result.status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        body = _ChunkedReader(reader, headers)
        carry = b""
        while data := await body.read():
            carry += data
            cut = carry.rfind(b"\n") + 1
            if not cut:
                continue
            complete, carry = carry[:cut], carry[cut:]
            _account(complete, result, pins, progress)
        if carry.strip():
            _account(carry + b"\n", result, pins, progress)
        result.finished_s = time.perf_counter() - progress.started
    finally:
        if not sender.done():
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return result


def _account(complete: bytes, result: StreamResult, pins: set[bytes],
             progress: BatchProgress) -> None:
    n = complete.count(b"\n")
    if result.status != 200:  # one problem document, not NDJSON
        result.errors += 1
        result.error_samples.append(complete[:500].decode(errors="replace"))
        return
    result.answered += n
    progress.answered += n
    found = _PIN.findall(complete)
    result.pins += len(found)
    pins.update(found)
    if b'"error"' in complete:
        for line in complete.split(b"\n"):
            if b'"error"' in line:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(line[:500].decode(errors="replace"))
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("line") is None:  # the stream stopped
                        result.answered -= 1
                        progress.answered -= 1


async def _audit_position(conn: asyncpg.Connection) -> tuple[int, int]:
    """(events sequenced into audit_log, highest audit_event id)."""
    row = await conn.fetchrow(
        "SELECT (SELECT coalesce(max(index) + 1, 0) FROM audit_log) AS sequenced,"
        "       (SELECT coalesce(max(id), 0) FROM audit_event) AS written")
    assert row is not None
    return int(row["sequenced"]), int(row["written"])


async def wait_audited(conn: asyncpg.Connection, timeout: float) -> tuple[int, float]:
    """Wait until every audit event written so far has its index; (events, seconds waited)."""
    t0 = time.perf_counter()
    target = int(await conn.fetchval("SELECT count(*) FROM audit_event"))
    while True:
        sequenced, _ = await _audit_position(conn)
        if sequenced >= target:
            return target, time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"audit log at {sequenced} of {target} events after {timeout} s")
        await asyncio.sleep(0.05)


async def wait_integrated(conn: asyncpg.Connection, target: int, started: float,
                          timeout: float) -> dict[str, float | None]:
    """Seconds (since `started`) until the Merkle tree and a signed checkpoint cover `target`
    events; None where the schema has no such table or the wait timed out."""
    out: dict[str, float | None] = {}
    for name, table, column in (("in_merkle_tree_s", "audit_tree", "size"),
                                ("in_signed_checkpoint_s", "audit_checkpoint", "tree_size")):
        out[name] = None
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            continue
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            size = await conn.fetchval(f"SELECT coalesce(max({column}), 0) FROM {table}")
            if int(size) >= target:
                out[name] = round(time.perf_counter() - started, 2)
                break
            await asyncio.sleep(0.1)
    return out


async def run_batch(stack: Stack, token: str, records: int, streams: int,
                    run: str, *, balance: bool = True, quiet: bool = False,
                    path: str = "/v1/pins:batch",
                    make: Callable[[int, int, str], str] = make_line) -> dict[str, Any]:
    audit = await asyncpg.connect(stack.database_url())
    try:
        events_before, waited = await wait_audited(audit, 600)
        log(f"audit log settled at {events_before} events ({waited:.1f} s); batch of "
            f"{records:,} records in {streams} stream(s)")
        per_stream = [records // streams + (1 if i < records % streams else 0)
                      for i in range(streams)]
        pins: set[bytes] = set()
        progress = BatchProgress(time.perf_counter())
        await stack.pg_stats_reset()
        meter = stack.cpu_meter().start()
        reporter = asyncio.create_task(
            _report_progress(audit, progress, records, every=3600.0 if quiet else 10.0))
        host, port = "127.0.0.1", stack.port
        balancer = WorkerBalancer(stack, balance)
        try:
            results = await asyncio.gather(*(
                batch_stream(balancer, host, port, token, i, n, run, pins, progress,
                             path=path, make=make)
                for i, n in enumerate(per_stream) if n))
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        issued_s = time.perf_counter() - progress.started
        log(f"batch answered in {issued_s:.1f} s; waiting for the audit log")
        events_after, _ = await wait_audited(audit, max(600.0, records / 500))
        audited_s = time.perf_counter() - progress.started
        integrated = await wait_integrated(audit, events_after, progress.started, 120.0)
        cpu = meter.stop()
        log(f"audited after {audited_s:.1f} s; checking the audit log")
        pg_statements = await stack.pg_stats_top()
        request_ids = [r.request_id for r in results]
        per_line_events = int(await audit.fetchval(
            "SELECT count(*) FROM audit_entry WHERE request_id = ANY($1::text[])"
            " AND action = 'pin.issue'", request_ids))
    finally:
        await audit.close()
    answered = sum(r.answered for r in results)
    errors = sum(r.errors for r in results)
    ok = (answered == records and errors == 0 and len(pins) == records
          and per_line_events == records)
    return {
        "records": records,
        "streams": len(results),
        "balanced_over_workers": balancer.enabled,
        "stream_workers": [r.worker_pid for r in results],
        "lines_per_stream": per_stream,
        "bytes_sent": sum(r.bytes_sent for r in results),
        "answered": answered,
        "pins": sum(r.pins for r in results),
        "distinct_pins": len(pins),
        "errors": errors,
        "issued_s": round(issued_s, 2),
        "audited_s": round(audited_s, 2),
        "issued_per_s": round(records / issued_s, 1),
        "audited_per_s": round(records / audited_s, 1),
        "audit_events_added": events_after - events_before,
        **integrated,
        "pin_issue_events_for_batch": per_line_events,
        "all_checks_passed": ok,
        "streams_detail": [asdict(r) for r in results],
        "progress": progress.samples,
        "cpu": cpu,
        "pg_statements": pg_statements,
    }


async def _report_progress(audit: asyncpg.Connection, progress: BatchProgress,
                           records: int, every: float = 10.0) -> None:
    last_n, last_t = 0, progress.started
    while True:
        await asyncio.sleep(every)
        now = time.perf_counter()
        sequenced, written = await _audit_position(audit)
        rate = (progress.answered - last_n) / (now - last_t)
        sample = {"t_s": round(now - progress.started, 1), "answered": progress.answered,
                  "rate_per_s": round(rate, 1), "audit_sequenced": sequenced,
                  "audit_lag_events": written - sequenced}
        progress.samples.append(sample)
        log(f"batch: {progress.answered:,}/{records:,} answered, {rate:,.0f}/s now; "
            f"audit lag ~{written - sequenced:,} events")
        last_n, last_t = progress.answered, now


# -- phases ----------------------------------------------------------------------------------


def single_issuance(stack: Stack, args: argparse.Namespace, run: str) -> dict[str, Any]:
    token = stack.token()
    common = {"token": token, "script": LUA_SCRIPT, "connections": args.connections,
              "threads": args.threads}
    warm = min(3, args.seconds)
    log(f"warm-up: {warm} s of single issuance")
    run_wrk(stack, seconds=warm, run_id=f"{run}-warm", measure_cpu=False, **common)
    asyncio.run(stack.pg_stats_reset())
    result = run_wrk(stack, seconds=args.seconds, run_id=f"{run}-w", **common)
    result["pg_statements"] = asyncio.run(stack.pg_stats_top())
    duration = result["duration_us"] / 1e6
    created = result["status"]["201"]
    result["issued_per_s"] = round(created / duration, 1)
    result["p50_ms"] = round(result["latency_us"]["p50"] / 1000, 2)
    result["p99_ms"] = round(result["latency_us"]["p99"] / 1000, 2)
    result["non_201"] = result["requests"] - created + sum(result["errors"].values())
    return result


def _profiled(stack: Stack, seconds: int, raw: Path,
              load: Callable[[], float]) -> dict[str, Any]:
    """Run `load` (returns issuances/s) while py-spy samples the server for `seconds`."""
    assert stack.server is not None
    spy = py_spy_start(stack.server.pid, seconds, raw)
    time.sleep(1.0)  # let py-spy attach to every worker
    rate = load()
    try:
        spy.wait(timeout=120)
    except subprocess.TimeoutExpired:
        spy.terminate()
        spy.wait(timeout=30)
    if not raw.exists():
        return {"error": f"py-spy wrote nothing (exit {spy.returncode}); see "
                         f"{raw.with_suffix('.log')}"}
    summary = summarise_profile(raw)
    summary["raw_stacks"] = str(raw.relative_to(REPO))
    summary["issued_per_s_while_profiled"] = round(rate, 1)
    return summary


def profile_single(stack: Stack, args: argparse.Namespace, run: str,
                   stamp: str) -> dict[str, Any]:
    def load() -> float:
        result = run_wrk(stack, token=stack.token(), script=LUA_SCRIPT,
                         seconds=args.profile_seconds, connections=args.connections,
                         threads=args.threads, run_id=f"{run}-p")
        return float(result["status"]["201"] / (result["duration_us"] / 1e6))

    return _profiled(stack, args.profile_seconds,
                     RESULTS_DIR / f"profile-issue-{stamp}.txt", load)


def profile_batch(stack: Stack, args: argparse.Namespace, run: str, stamp: str,
                  rate: float) -> dict[str, Any]:
    """A batch sized to last about --profile-seconds, sampled by py-spy."""
    records = max(2000, int(rate * args.profile_seconds))

    def load() -> float:
        result = asyncio.run(run_batch(stack, stack.token(), records, args.batch_streams,
                                       f"{run}-pb", balance=args.batch_balance, quiet=True))
        return float(result["issued_per_s"])

    return _profiled(stack, args.profile_seconds,
                     RESULTS_DIR / f"profile-batch-{stamp}.txt", load)


# -- report ----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _cores(cpu: dict[str, Any] | None) -> str:
    if not cpu:
        return "-"
    parts = [f"{k} {v:.2f}" for k, v in cpu["cores"].items() if v >= 0.005]
    return ", ".join(parts) + f" (machine {cpu['machine_busy_pct']:.0f}% busy)"


def _statements(rows: list[dict[str, Any]] | None) -> list[str]:
    if not rows:
        return []
    out = ["  PostgreSQL statements (pg_stat_statements): calls, plan+exec ms total, "
           "mean exec ms, blocks/call, WAL records/call"]
    for r in rows[:8]:
        out.append(f"    {r['calls']:>8} {r['plan_ms'] + r['exec_ms']:>9.0f} "
                   f"{r['mean_exec_ms']:>7.3f} {r['blocks_per_call']:>6} "
                   f"{r['wal_records_per_call']:>5}  {r['query'][:60]}")
    return out


def _profile_lines(what: str, prof: dict[str, Any] | None) -> list[str]:
    if not prof:
        return []
    if "own" not in prof:
        return ["", f"Profile of the {what}: {prof.get('error')}"]
    out = ["", f"Profile of the {what} (py-spy --gil, {prof['samples']} samples, "
               f"{prof['issued_per_s_while_profiled']:,.0f}/s while sampled; "
               f"stacks: {prof['raw_stacks']})"]
    out.append("  own CPU by library: " + ", ".join(
        f"{c['category']} {c['pct']}%" for c in prof["categories"][:9]))
    out.append("  where the time goes (inclusive share of sampled CPU):")
    for row in prof["notable"]:
        if row["pct"] >= 0.5:
            out.append(f"    {row['pct']:5.1f}%  {row['what']}")
    out.append("  top functions, own samples:")
    for row in prof["own"][:8]:
        out.append(f"    {row['pct']:5.1f}%  {row['function']}")
    out.append("  innermost idservice function -> callee:")
    for row in prof["by_idservice_caller"][:10]:
        out.append(f"    {row['pct']:5.1f}%  {row['function']}")
    return out


def render(report: dict[str, Any]) -> str:
    out: list[str] = []
    meta = report["meta"]
    out.append(f"idservice issuance benchmark  {meta['started']}  commit {meta['commit']}  "
               f"{meta['cpus']} CPUs  workers={meta['workers']}  load avg before "
               f"{meta['loadavg_before']}")
    out.append("=" * 100)
    pg, apg = report["baseline"]["pgbench"], report["baseline"]["asyncpg"]
    out.append("Baseline: durable single-row INSERT commits/s, same embedded PostgreSQL "
               f"({meta['durability']})")
    out.append(f"  pgbench, C client, 32 connections (-c 32 -j 2, {pg['seconds']} s)"
               f"{pg['commits_per_s']:>14,.0f}/s   avg latency {pg['latency_avg_ms']} ms")
    out.append(f"    CPU cores: {_cores(pg['cpu'])}")
    out.append(f"  asyncpg, Python, 32 connections (reference)       "
               f"{apg['commits_per_s']:>12,.0f}/s   p50 {apg['latency_ms']['p50']} ms, "
               f"p99 {apg['latency_ms']['p99']} ms")
    single = report.get("single")
    if single:
        ratio = single["ratio_to_pgbench"]
        out.append("")
        out.append(f"Single issuance: POST /v1/pins, wrk -t{meta['threads']} "
                   f"-c{meta['connections']} -d{meta['seconds']}s (unique registrations)")
        out.append(f"  issued (201)                                      "
                   f"{single['issued_per_s']:>12,.0f}/s   p50 {single['p50_ms']} ms, "
                   f"p90 {single['latency_us']['p90'] / 1000:.2f} ms, p99 {single['p99_ms']} ms,"
                   f" max {single['latency_us']['max'] / 1000:.1f} ms")
        out.append(f"  responses: {single['status']}, socket errors {single['errors']}")
        out.append(f"  ratio to pgbench baseline                         {ratio:>12.2f}x   "
                   f"target >= {TARGET_RATIO}x   {_verdict(ratio >= TARGET_RATIO)}")
        out.append(f"  ratio to asyncpg baseline                         "
                   f"{single['ratio_to_asyncpg']:>12.2f}x")
        out.append(f"  p99 latency                                       "
                   f"{single['p99_ms']:>10.2f} ms   target <= {TARGET_P99_MS:.0f} ms   "
                   f"{_verdict(single['p99_ms'] <= TARGET_P99_MS)}")
        out.append(f"  CPU cores: {_cores(single.get('cpu'))}")
        per = single.get("cpu", {}).get("idservice_per_process_cores", {})
        if per:
            out.append("  idservice per process (cores): "
                       + ", ".join(f"pid {k} {v:.2f}" for k, v in per.items()))
        out.extend(_statements(single.get("pg_statements")))
    out.extend(_profile_lines("single-issuance path", report.get("profile")))
    batch = report.get("batch")
    if batch:
        projected = BINH_DINH_POPULATION / batch["audited_per_s"]
        out.append("")
        spread = ("steered onto different workers" if batch["balanced_over_workers"]
                  else "as the kernel spread them")
        out.append(f"Batch: POST /v1/pins:batch, {batch['records']:,} records in "
                   f"{batch['streams']} concurrent stream(s) ({spread}: worker pids "
                   f"{batch['stream_workers']}), {batch['bytes_sent'] / 1e6:,.0f} MB of NDJSON")
        out.append(f"  answered {batch['answered']:,}, PINs {batch['pins']:,} "
                   f"({batch['distinct_pins']:,} distinct), errors {batch['errors']}, "
                   f"pin.issue events {batch['pin_issue_events_for_batch']:,}: "
                   f"{'all checks passed' if batch['all_checks_passed'] else 'CHECKS FAILED'}")
        out.append(f"  issued (last answer line)                         "
                   f"{batch['issued_per_s']:>12,.0f}/s   in {batch['issued_s']:.1f} s")
        out.append(f"  issued and audited (all events sequenced)         "
                   f"{batch['audited_per_s']:>12,.0f}/s   in {batch['audited_s']:.1f} s")
        for key, what in (("in_merkle_tree_s", "in the Merkle tree"),
                          ("in_signed_checkpoint_s", "in a signed checkpoint")):
            if key in batch:
                at = batch[key]
                out.append(f"  all events {what:<34}    "
                           + (f"{at:>10.1f} s" if at is not None else "  not within 120 s "
                              "of sequencing (or no such table)"))
        label = ("measured" if batch["records"] == BINH_DINH_POPULATION
                 else "projected at this rate")
        out.append(f"  {BINH_DINH_POPULATION:,} records issued and audited ({label}) "
                   f"{projected:>10.1f} s   target <= {TARGET_BATCH_S:.0f} s   "
                   f"{_verdict(projected <= TARGET_BATCH_S)}")
        out.append(f"  CPU cores: {_cores(batch.get('cpu'))}")
        per = batch.get("cpu", {}).get("idservice_per_process_cores", {})
        if per:
            out.append("  idservice per process (cores): "
                       + ", ".join(f"pid {k} {v:.2f}" for k, v in per.items()))
        out.extend(_statements(batch.get("pg_statements")))
        for r in batch["streams_detail"]:
            if r["error_samples"] or r["send_error"]:
                out.append(f"  stream {r['stream']} (HTTP {r['status']}): "
                           f"{r['send_error'] or ''} {r['error_samples'][:2]}")
    out.extend(_profile_lines("batch path", report.get("batch_profile")))
    return "\n".join(out)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "idservice", "migrations"],
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout
        return out.stdout.strip() + ("+local changes" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20,
                        help="length of each baseline and of the wrk run (default 20)")
    parser.add_argument("--records", type=int, default=BINH_DINH_POPULATION,
                        help=f"batch size in records (default {BINH_DINH_POPULATION:,})")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--skip-batch", action="store_true", help="no batch phase")
    parser.add_argument("--skip-single", action="store_true",
                        help="no wrk and profile phases")
    parser.add_argument("--batch-streams", type=int, default=0,
                        help="concurrent batch requests (default: one per worker)")
    parser.add_argument("--no-batch-balance", dest="batch_balance", action="store_false",
                        help="do not steer batch streams onto different workers")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--profile-seconds", type=int, default=10,
                        help="py-spy profile of single issuance, 0 = off (default 10)")
    parser.add_argument("--pg-stats", action="store_true",
                        help="preload pg_stat_statements and report the service's statements "
                             "(adds a little PostgreSQL overhead; off for headline figures)")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.records < 1 or args.workers < 1:
        parser.error("--seconds, --records and --workers must be >= 1")
    args.batch_streams = args.batch_streams or args.workers
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run = uuid.uuid4().hex[:8]
    ensure_wrk()
    line_bytes = len(make_line(1, 0, run).encode())
    per_request = line_bytes * math.ceil(args.records / args.batch_streams)
    if not args.skip_batch and per_request > BATCH_LIMIT_BYTES:
        log(f"warning: ~{per_request / 2**20:,.0f} MiB per batch request exceeds the server's "
            f"1 GiB batch body limit; use more --batch-streams")
    report: dict[str, Any] = {"meta": {
        "started": started.isoformat(timespec="seconds"), "commit": _git_commit(),
        "cpus": os.cpu_count(), "workers": args.workers, "seconds": args.seconds,
        "connections": args.connections, "threads": args.threads, "records": args.records,
        "batch_streams": args.batch_streams, "run_id": run,
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "line_bytes": line_bytes, "pg_stat_statements": args.pg_stats,
    }}
    with Stack(keep=args.keep) as stack:
        stack.start_cluster(pg_stats=args.pg_stats)
        stack.start_server(args.workers)
        pg = pgbench_insert_rate(stack, args.seconds)
        log(f"pgbench: {pg['commits_per_s']:,.0f} commits/s")
        report["meta"]["durability"] = "fsync=on, synchronous_commit=on"
        apg = asyncio.run(asyncpg_insert_rate(stack, args.seconds))
        log(f"asyncpg: {apg['commits_per_s']:,.0f} commits/s")
        report["baseline"] = {"pgbench": pg, "asyncpg": apg}
        if not args.skip_single:
            single = single_issuance(stack, args, run)
            single["ratio_to_pgbench"] = round(single["issued_per_s"] / pg["commits_per_s"], 3)
            single["ratio_to_asyncpg"] = round(single["issued_per_s"] / apg["commits_per_s"], 3)
            report["single"] = single
            log(f"single issuance: {single['issued_per_s']:,.0f}/s, p50 {single['p50_ms']} ms, "
                f"p99 {single['p99_ms']} ms")
            if args.profile_seconds > 0:
                report["profile"] = profile_single(stack, args, run, stamp)
        if not args.skip_batch:
            report["batch"] = asyncio.run(
                run_batch(stack, stack.token(), args.records, args.batch_streams, f"{run}-b",
                          balance=args.batch_balance))
            if args.profile_seconds > 0:
                report["batch_profile"] = profile_batch(stack, args, run, stamp,
                                                        report["batch"]["issued_per_s"])
        report["meta"]["server_log_tail"] = stack.log_tail(15)
    report["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    text = render(report)
    print(text)
    path = RESULTS_DIR / f"issuance-{stamp}.json"
    path.write_text(json.dumps({**report, "text": text}, indent=2, ensure_ascii=False))
    log(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

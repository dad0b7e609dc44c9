"""PIN verification benchmark: `POST /v1/pins/verify`/s against a plain SELECT of the row.

Reproduce (from the repo root, as root for the embedded PostgreSQL user)::

    .venv/bin/python bench/verify.py                    # 10 s each phase, ~1-2 min
    .venv/bin/python bench/verify.py --seconds 20 --persons 20000

Method (one run, everything started and removed by the script, bench/_harness.py):

1. Fresh data dir, embedded PostgreSQL, `idservice serve --workers N` with
   `IDSERVICE_VERIFY_RATE_LIMIT` out of reach (10^9: the per-caller count still runs on every
   verification, the limit is never hit; all requests come from the one demo registrar).
2. Records: `POST /v1/pins` with wrk (bench/lua/issue.lua) for `--seed-seconds`; then up to
   `--persons` of them (PIN, name, birth date) become the verify bodies (all matches).
3. Baseline, same cluster, while the service idles: pgbench `-c C -j 2 -T S` of
   `SELECT full_name, date_of_birth FROM person WHERE pin = <random seeded PIN>` (the PIN is
   looked up by a random integer in a small scratch table `bench_verify_pins` of the same
   database, so each transaction is two index lookups), read-only, no commit to flush.
4. Load: `wrk -t2 -cC -dS -s bench/lua/verify.lua`; rate = 200 answers / duration (every
   answer must be 200). Each verify reads the row, counts the caller and commits its
   `pin.verify` event (durable) before answering.
5. Ratio = verifies/s / baseline SELECTs/s; target for issue 16: >= 3,000 verifies/s.

Report on stdout and in bench/results/verify-<UTC time>.json (gitignored), with CPU per part
and the load average before and after each phase. Benchmarks are never part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/verify.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._harness import BENCH_DIR, PG_BIN, Stack, log, run_wrk

RESULTS_DIR = BENCH_DIR / "results"
TARGET_PER_S = 3000


async def _seeded(stack: Stack, persons: int, path: Path) -> int:
    conn = await asyncpg.connect(stack.database_url())
    try:
        rows = await conn.fetch("SELECT pin, full_name, date_of_birth FROM person "
                                "ORDER BY random() LIMIT $1", persons)
        await conn.execute("DROP TABLE IF EXISTS bench_verify_pins")
        await conn.execute("CREATE TABLE bench_verify_pins (i int PRIMARY KEY, pin text)")
        await conn.executemany("INSERT INTO bench_verify_pins VALUES ($1, $2)",
                               [(i + 1, r["pin"]) for i, r in enumerate(rows)])
        await conn.execute("ANALYZE bench_verify_pins; ANALYZE person")
    finally:
        await conn.close()
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps({"pin": r["pin"], "full_name": r["full_name"],
                                "date_of_birth": r["date_of_birth"].isoformat()},
                               ensure_ascii=False) + "\n")
    return len(rows)


def pgbench_select(stack: Stack, seconds: int, clients: int, n: int) -> dict[str, Any]:
    script = stack.data_dir / "bench_verify_select.sql"
    script.write_text(f"\\set i random(1, {n})\n"
                      "SELECT full_name, date_of_birth FROM person "
                      "WHERE pin = (SELECT pin FROM bench_verify_pins WHERE i = :i);\n")
    cmd = [str(PG_BIN / "pgbench"), "-h", stack.socket_dir, "-p", str(stack.pg_port),
           "-U", "postgres", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
           "-M", "prepared", "-f", str(script), "idservice"]
    log("pgbench: " + " ".join(cmd))
    load = os.getloadavg()
    meter = stack.cpu_meter().start()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                         check=True).stdout
    cpu = meter.stop()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    return {"selects_per_s": float(tps.group(1)) if tps else None, "cpu": cpu,
            "loadavg_before": [round(x, 2) for x in load],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()], "command": " ".join(cmd)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--seed-seconds", type=int, default=3)
    parser.add_argument("--persons", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    with Stack(keep=args.keep) as stack:
        stack.env["IDSERVICE_VERIFY_RATE_LIMIT"] = "1000000000"
        stack.start_cluster()
        stack.start_server(args.workers)
        token = stack.token()
        seed = run_wrk(stack, token=token, script=BENCH_DIR / "lua" / "issue.lua",
                       seconds=args.seed_seconds, connections=8, threads=2,
                       run_id=f"seed{os.getpid()}", measure_cpu=False)
        bodies = stack.data_dir / "verify-bodies.ndjson"
        n = asyncio.run(_seeded(stack, args.persons, bodies))
        log(f"seeded: {seed['status']['201']} issued, {n} verify bodies")
        baseline = pgbench_select(stack, args.seconds, args.connections, n)
        load_before = os.getloadavg()
        wrk = run_wrk(stack, token=token, script=BENCH_DIR / "lua" / "verify.lua",
                      seconds=args.seconds, connections=args.connections, threads=2,
                      run_id=str(bodies), path="/v1/pins/verify")
        load_after = os.getloadavg()
    per_s = wrk["status"]["200"] / (wrk["duration_us"] / 1e6)
    report = {
        "at": datetime.now(UTC).isoformat(), "workers": args.workers,
        "connections": args.connections, "seconds": args.seconds, "bodies": n,
        "baseline": baseline,
        "verify": {"per_s": round(per_s, 1), "status": wrk["status"], "errors": wrk["errors"],
                   "latency_ms": {k: round(v / 1000, 2) for k, v in wrk["latency_us"].items()},
                   "error_sample": wrk["error_sample"], "cpu": wrk.get("cpu")},
        "ratio": per_s / baseline["selects_per_s"] if baseline["selects_per_s"] else None,
        "loadavg_1_5_15": {"before": [round(x, 2) for x in load_before],
                           "after": [round(x, 2) for x in load_after]},
    }
    cores = wrk.get("cpu", {}).get("cores", {})
    print("\n".join([
        f"PIN verify benchmark ({args.workers} workers, {args.connections} connections, "
        f"{args.seconds} s, {n} records)",
        f"  baseline SELECT/s    : {baseline['selects_per_s']:,.0f} (pgbench, same cluster)",
        f"  verifies/s           : {per_s:,.1f} (status {wrk['status']}; target >= "
        f"{TARGET_PER_S:,}: {'MET' if per_s >= TARGET_PER_S else 'NOT MET'})",
        f"  latency ms           : p50 {report['verify']['latency_ms']['p50']}, "
        f"p99 {report['verify']['latency_ms']['p99']}",
        f"  ratio                : {report['ratio']:.4f} of the plain SELECT",
        "  cores used           : " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
        + f"; machine busy {wrk.get('cpu', {}).get('machine_busy_pct')}%",
        f"  load average 1/5/15  : before {report['loadavg_1_5_15']['before']}, after "
        f"{report['loadavg_1_5_15']['after']} ({os.cpu_count()} cores)",
    ]))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"verify-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {out}")
    return 0 if wrk["status"]["200"] and not (wrk["status"]["4xx"] or wrk["status"]["5xx"]) \
        else 1


if __name__ == "__main__":
    sys.exit(main())

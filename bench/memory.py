"""Memory benchmark: RSS of every server worker after 10k and after N issuances (issue 16,
goal 6: RSS after 1,000,000 within 1.2x of RSS after 10,000).

Reproduce (from the repo root, as root for the embedded PostgreSQL user)::

    .venv/bin/python bench/memory.py                          # 1,000,000 (~17+ min here)
    .venv/bin/python bench/memory.py --issuances 100000       # ~2-3 min

Method: fresh stack (bench/_harness.py), `idservice serve --workers N`, then wrk rounds of
`POST /v1/pins` (bench/lua/issue.lua, `--connections` connections, every request a new
registration) of `--round-seconds` each until 10,000 issuances (201s), then until
`--issuances` or `--max-minutes`, whichever comes first (the report says which). After each
round: VmRSS and VmHWM of every worker (/proc/<pid>/status; the supervisor process too) and
the 201s so far. Ratio = RSS at the end / RSS at 10k, per worker (target <= 1.2).
Report on stdout and bench/results/memory-<UTC time>.json. Never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/memory.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import BENCH_DIR, Stack, log, run_wrk

RESULTS_DIR = BENCH_DIR / "results"
FIRST = 10_000


def _status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def rss(stack: Stack) -> dict[str, dict[str, int]]:
    assert stack.server is not None
    return {("supervisor" if pid == stack.server.pid else f"worker {pid}"): _status_kib(pid)
            for pid in stack.server_pids()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issuances", type=int, default=1_000_000)
    parser.add_argument("--max-minutes", type=float, default=30.0)
    parser.add_argument("--round-seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    samples: list[dict[str, Any]] = []
    issued, at_first, stopped_by = 0, None, "issuances"
    deadline = time.monotonic() + 60 * args.max_minutes
    with Stack() as stack:
        stack.start_cluster()
        stack.start_server(args.workers)
        token = stack.token()
        samples.append({"issued": 0, "rss_kib": rss(stack), "loadavg": os.getloadavg()})
        n = 0
        while issued < args.issuances:
            if time.monotonic() > deadline:
                stopped_by = "max-minutes"
                break
            target = FIRST if at_first is None else args.issuances
            # a round no longer than needed to reach the next mark at ~1,000/s
            seconds = max(2, min(args.round_seconds, (target - issued) // 1000 + 1))
            n += 1
            result = run_wrk(stack, token=token, script=BENCH_DIR / "lua" / "issue.lua",
                             seconds=seconds, connections=args.connections, threads=2,
                             run_id=f"mem{os.getpid()}r{n}", measure_cpu=False)
            issued += result["status"]["201"]
            if result["status"]["5xx"] or result["status"]["4xx"]:
                raise RuntimeError(f"errors while issuing: {result['error_sample']}")
            sample = {"issued": issued, "rss_kib": rss(stack),
                      "loadavg": [round(x, 2) for x in os.getloadavg()]}
            samples.append(sample)
            log(f"{issued:,} issued; RSS " + ", ".join(
                f"{k} {v['VmRSS'] / 1024:.1f} MiB" for k, v in sample["rss_kib"].items()))
            if at_first is None and issued >= FIRST:
                at_first = sample
    end = samples[-1]
    assert at_first is not None, "fewer than 10,000 issuances"
    ratios = {k: round(end["rss_kib"][k]["VmRSS"] / v["VmRSS"], 3)
              for k, v in at_first["rss_kib"].items() if k in end["rss_kib"]}
    report = {"at": datetime.now(UTC).isoformat(), "workers": args.workers,
              "asked": args.issuances, "issued": end["issued"], "stopped_by": stopped_by,
              "at_10k": at_first, "at_end": end, "ratio_end_over_10k": ratios,
              "samples": samples}
    print("\n".join([
        f"memory benchmark ({args.workers} workers): {end['issued']:,} issued "
        f"(asked {args.issuances:,}; stopped by {stopped_by})",
        *(f"  {k:>16}: {at_first['rss_kib'][k]['VmRSS'] / 1024:7.1f} MiB at "
          f"{at_first['issued']:,} -> {end['rss_kib'][k]['VmRSS'] / 1024:7.1f} MiB at "
          f"{end['issued']:,}: {ratios[k]:.3f}x (target <= 1.2)" for k in ratios),
        f"  load average 1/5/15 at the end: {end['loadavg']}",
    ]))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"memory-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""OSIA UIN Generation against our own issuance, in the same run (issue 12: `POST
/osia/v1/uin` within 10% of `POST /v1/pins`).

    .venv/bin/python bench/osia.py [--seconds 15] [--rounds 4] [--workers 2]

One stack (bench/_harness.py: fresh data dir, embedded PostgreSQL, `idservice serve`), one
registrar token, wrk with bench/lua/issue.lua: the same generated birth registrations (a new
one per request, spread over the 192 (052, G, YY) buckets) sent either as `POST /v1/pins`
bodies or, with the script argument `osia`, as flat OSIA attributes to
`POST /osia/v1/uin?transactionId=<the registration number>`. A warm-up of each (--warmup), then
`--rounds` rounds of the two interfaces in alternating order (ABBA...), so a drift of the
machine (other work on the 2 shared cores, the tables growing) weighs on both alike. Figures:
issuances/s (201 resp. 200 answers / duration) summed over the rounds, p50 and p99 (the worst
round), CPU milliseconds per issuance of idservice and of PostgreSQL (from /proc, as
bench/issuance.py measures CPU), and the ratio OSIA / ours (target >= 0.9). Report on stdout and in
`bench/results/osia-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/osia.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import BENCH_DIR, Stack, ensure_wrk, log, run_wrk

LUA_SCRIPT = BENCH_DIR / "lua" / "issue.lua"
RESULTS_DIR = BENCH_DIR / "results"
TARGET_RATIO = 0.9
INTERFACES: dict[str, dict[str, Any]] = {
    "v1_pins": {"path": "/v1/pins", "script_args": ()},
    "osia_uin": {"path": "/osia/v1/uin", "script_args": ("osia",)},
}


def _run(stack: Stack, token: str, args: argparse.Namespace, interface: str, run_id: str,
         seconds: int, measure: bool = True) -> dict[str, Any]:
    return run_wrk(stack, token=token, script=LUA_SCRIPT, seconds=seconds,
                   connections=args.connections, threads=args.threads, run_id=run_id,
                   measure_cpu=measure, **INTERFACES[interface])


def measure(stack: Stack, args: argparse.Namespace, run: str) -> dict[str, Any]:
    token = stack.token()
    for interface in INTERFACES:
        log(f"warm-up: {args.warmup} s of {interface}")
        _run(stack, token, args, interface, f"{run}-warm-{interface}", args.warmup,
             measure=False)
    rounds: list[dict[str, Any]] = []
    order = list(INTERFACES)
    for number in range(args.rounds):
        for interface in (order if number % 2 == 0 else order[::-1]):
            result = _run(stack, token, args, interface, f"{run}-{number}-{interface}",
                          args.seconds)
            issued = result["status"]["201"]
            rounds.append({
                "round": number, "interface": interface,
                "issued": issued, "duration_s": result["duration_us"] / 1e6,
                "failed": result["requests"] - issued + sum(result["errors"].values()),
                "p50_ms": result["latency_us"]["p50"] / 1000,
                "p99_ms": result["latency_us"]["p99"] / 1000,
                "error_sample": result["error_sample"], "cpu": result.get("cpu"),
            })
            log(f"round {number} {interface}: {issued / rounds[-1]['duration_s']:,.0f}/s, "
                f"p50 {rounds[-1]['p50_ms']:.1f} ms, p99 {rounds[-1]['p99_ms']:.1f} ms")
    summary: dict[str, Any] = {}
    for interface in INTERFACES:
        mine = [r for r in rounds if r["interface"] == interface]
        summary[interface] = {
            "issued_per_s": round(sum(r["issued"] for r in mine)
                                  / sum(r["duration_s"] for r in mine), 1),
            "p50_ms": round(max(r["p50_ms"] for r in mine), 2),
            "p99_ms": round(max(r["p99_ms"] for r in mine), 2),
            "failed": sum(r["failed"] for r in mine),
            # CPU per issuance by part: what each interface costs, whatever else the
            # (shared) machine was doing meanwhile
            "cpu_ms_per_issuance": {
                part: round(sum(r["cpu"]["cores"][part] * r["duration_s"] for r in mine)
                            * 1000 / max(1, sum(r["issued"] for r in mine)), 3)
                for part in ("idservice", "postgresql")},
        }
    ratio = summary["osia_uin"]["issued_per_s"] / summary["v1_pins"]["issued_per_s"]
    return {"rounds": rounds, "summary": summary, "ratio": round(ratio, 3),
            "round_ratios": _round_ratios(rounds), "target_met": ratio >= TARGET_RATIO}


def _round_ratios(rounds: list[dict[str, Any]]) -> list[float]:
    """OSIA / ours per round (the two ran back to back): their spread and median show how
    much one hiccup of the shared machine moved the headline ratio, which stays the sums'."""
    rate = {(r["round"], r["interface"]): r["issued"] / r["duration_s"] for r in rounds}
    return [round(rate[(n, "osia_uin")] / rate[(n, "v1_pins")], 3)
            for n in sorted({r["round"] for r in rounds})]


def render(report: dict[str, Any]) -> str:
    meta, result = report["meta"], report["result"]
    lines = [f"OSIA UIN vs POST /v1/pins: {meta['rounds']} x {meta['seconds']} s each, "
             f"wrk -t{meta['threads']} -c{meta['connections']}, {meta['workers']} workers, "
             f"{meta['cpus']} CPUs, load before {meta['loadavg_before']}"]
    for interface, figures in result["summary"].items():
        lines.append(f"  {interface:9} {figures['issued_per_s']:8,.1f} issuances/s   "
                     f"p50 {figures['p50_ms']:6.2f} ms   p99 {figures['p99_ms']:6.2f} ms   "
                     f"failed {figures['failed']}   CPU ms/issuance: idservice "
                     f"{figures['cpu_ms_per_issuance']['idservice']:.2f}, PostgreSQL "
                     f"{figures['cpu_ms_per_issuance']['postgresql']:.2f}")
    verdict = "met" if result["target_met"] else "NOT met"
    lines.append(f"  ratio OSIA / ours: {result['ratio']:.3f} (target >= {TARGET_RATIO}: "
                 f"{verdict})")
    per_round = result["round_ratios"]
    lines.append(f"  per round: {', '.join(f'{r:.3f}' for r in per_round)} (median "
                 f"{statistics.median(per_round):.3f})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15, help="each measured run (15)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds of both (4: one minute of each; see bench/README.md)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="warm-up of each interface before the rounds (10 s: the new "
                             "cluster's first checkpoint and table growth settle)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.rounds < 1 or args.workers < 1 or args.warmup < 1:
        parser.error("--seconds, --rounds, --workers and --warmup must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    ensure_wrk()
    run = uuid.uuid4().hex[:8]
    report: dict[str, Any] = {"meta": {
        "started": started.isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "workers": args.workers, "seconds": args.seconds, "rounds": args.rounds,
        "warmup": args.warmup,
        "connections": args.connections, "threads": args.threads, "run_id": run,
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}}
    with Stack(keep=args.keep) as stack:
        stack.start_cluster()
        stack.start_server(args.workers)
        report["result"] = measure(stack, args, run)
        report["meta"]["server_log_tail"] = stack.log_tail(10)
    report["meta"]["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(report)
    print(text)
    path = RESULTS_DIR / f"osia-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({**report, "text": text}, indent=2, ensure_ascii=False))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

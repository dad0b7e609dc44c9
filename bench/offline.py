"""Offline offices benchmark (contract 8, issue 13): reserving 20,000 PINs in one request, and
syncing 20,000 offline records against the batch issuance rate of the same run.

Reproduce (from the repo root, as root, like bench/issuance.py)::

    .venv/bin/python bench/offline.py                 # 20,000 PINs, 2 rounds, ~3-5 min
    .venv/bin/python bench/offline.py --rounds 3 --records 10000

Method (one run, everything started and removed by the script, see bench/_harness.py): a
fresh stack (`idservice dev`, then `serve --workers N`), the demo registrar `demo-registrar-052`
as the office. Each round, interleaved so that load from elsewhere on the shared machine hits
both alike:

1. reserve: one `POST /v1/reservations` of `--records` PINs (buckets of 1,000: M and F of
   birth years 2016 onward, at most 40 buckets), timed from request to the parsed answer
   (JWS signed in the HSM, plain payload beside it). Target <= 2 s for 20,000.
2. batch: `--records` new registrations as one `POST /v1/pins:batch` stream (bench/issuance.py's
   client and lines; rate = records / time to the last answer line).
3. sync: one record per reserved PIN, each signed with the office key as `idservice office`
   writes it (signatures made before timing), as one `POST /v1/reservations/{id}/issued`
   stream through the same client; rate as for the batch. Target >= 0.5x the batch rate.

Both uploads also wait until every audit event is sequenced ("audited") and check one
`pin.issue` event per line, no error, distinct PINs. CPU use per part and the machine's load
are reported per phase ("other" = the rest of the shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/offline.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import REPO, Stack, log
from bench.issuance import RESULTS_DIR, make_line, run_batch
from idservice.auth.assertion import load_private_key
from idservice.persons.models import IssueRequest
from idservice.persons.office_records import birth_digest, sign_issuance, signed_payload

TARGET_RESERVE_S = 2.0
TARGET_SYNC_RATIO = 0.5
CLIENT_ID = "demo-registrar-052"
UPLOAD_TIMEOUT_S = 600.0  # a stalled upload fails the run instead of hanging it
FIRST_YEAR = 2016  # births of past years only: every generated date is before today


def buckets(records: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    year, left = FIRST_YEAR, records
    while left > 0:
        for sex in ("M", "F"):
            if left > 0:
                out.append({"sex": sex, "birth_year": year, "count": min(1000, left)})
                left -= out[-1]["count"]
        year += 1
    if len(out) > 40:
        raise SystemExit("at most 40,000 records (40 buckets of 1,000)")
    return out


def reserve(stack: Stack, token: str, records: int) -> tuple[float, dict[str, Any]]:
    body = json.dumps({"buckets": buckets(records), "days": 30}).encode()
    request = urllib.request.Request(
        f"{stack.origin}/v1/reservations", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: dict[str, Any] = json.loads(response.read())
    elapsed = time.perf_counter() - t0
    assert response.status == 201 and sum(len(p) for p in answer["pins"].values()) == records
    return elapsed, answer


def sync_lines(stack: Stack, reservation: dict[str, Any], run: str) -> list[str]:
    """One offline record per reserved PIN, signed with the office key (as the journal does)."""
    key = load_private_key((stack.data_dir / "demo" / "registrar-052.key.pem").read_bytes())
    at = datetime.now(UTC).replace(microsecond=0).isoformat()
    lines, n = [], 0
    for name, pins in reservation["pins"].items():
        sex, year = name[0], int(name[1:])
        for pin in pins:
            n += 1
            birth = json.loads(make_line(n, 9, f"{run}-o"))
            birth["child"]["sex"] = sex
            month_day = birth["child"]["date_of_birth"][4:]
            birth["child"]["date_of_birth"] = birth["registration"]["registered_on"] = \
                f"{year}{month_day}"
            digest = birth_digest(IssueRequest.model_validate(birth))
            signature = sign_issuance(key, CLIENT_ID, signed_payload(
                reservation["reservation_id"], pin, at, digest))
            lines.append(json.dumps({"pin": pin, "issued_offline_at": at, "birth": birth,
                                     "office_signature": signature}, ensure_ascii=False) + "\n")
    return lines


def _upload_summary(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("records", "answered", "errors", "distinct_pins", "pin_issue_events_for_batch",
            "issued_s", "issued_per_s", "audited_s", "audited_per_s", "all_checks_passed")
    out = {k: result[k] for k in keep}
    out["cpu"] = {k: result["cpu"][k] for k in ("cores", "machine_busy_pct")}
    samples = [r["error_samples"] for r in result["streams_detail"] if r["error_samples"]]
    out["error_samples"] = samples[:1]
    return out


def run_round(stack: Stack, token: str, records: int, run: str, i: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    meter = stack.cpu_meter().start()
    reserve_s, reservation = reserve(stack, token, records)
    reserve_cpu = meter.stop()
    log(f"round {i}: reserved {records:,} PINs in {reserve_s:.2f} s")
    batch = asyncio.run(asyncio.wait_for(run_batch(
        stack, token, records, 1, f"{run}-r{i}b", balance=False, quiet=True), UPLOAD_TIMEOUT_S))
    log(f"round {i}: batch {batch['issued_per_s']:,.0f}/s")
    lines = sync_lines(stack, reservation, f"{run}-r{i}")
    sync = asyncio.run(asyncio.wait_for(run_batch(
        stack, token, len(lines), 1, f"{run}-r{i}s", balance=False, quiet=True,
        path=f"/v1/reservations/{reservation['reservation_id']}/issued",
        make=lambda n, _stream, _run: lines[n - 1]), UPLOAD_TIMEOUT_S))
    log(f"round {i}: sync {sync['issued_per_s']:,.0f}/s")
    return {"loadavg_1min_before": round(load, 2), "reserve_s": round(reserve_s, 3),
            "reserve_cpu": {k: reserve_cpu[k] for k in ("cores", "machine_busy_pct")},
            "batch": _upload_summary(batch), "sync": _upload_summary(sync),
            "sync_to_batch": round(sync["issued_per_s"] / batch["issued_per_s"], 3)}


def render(report: dict[str, Any]) -> str:
    meta, rounds = report["meta"], report["rounds"]
    out = [f"Offline offices, {meta['records']:,} PINs per round, {len(rounds)} round(s), "
           f"{meta['workers']} worker(s), {meta['cpus']} CPUs, commit {meta['commit']}, "
           f"load average before {meta['loadavg_before']}"]
    for i, r in enumerate(rounds, 1):
        b, s = r["batch"], r["sync"]
        out.append(f"  round {i} (load {r['loadavg_1min_before']}): reserve {r['reserve_s']:.2f} s"
                   f" (machine busy {r['reserve_cpu']['machine_busy_pct']}%); batch "
                   f"{b['issued_per_s']:,.0f}/s (audited {b['audited_per_s']:,.0f}/s, busy "
                   f"{b['cpu']['machine_busy_pct']}%); sync {s['issued_per_s']:,.0f}/s (audited "
                   f"{s['audited_per_s']:,.0f}/s, busy {s['cpu']['machine_busy_pct']}%); "
                   f"sync/batch {r['sync_to_batch']:.2f}; checks "
                   f"{'passed' if b['all_checks_passed'] and s['all_checks_passed'] else 'FAILED'}")
    reserve_med = statistics.median(r["reserve_s"] for r in rounds)
    ratio_med = statistics.median(r["sync_to_batch"] for r in rounds)
    met = "MET" if reserve_med <= TARGET_RESERVE_S else "MISSED"
    out.append(f"  reserve {meta['records']:,} PINs, median {reserve_med:.2f} s   target <= "
               f"{TARGET_RESERVE_S:.0f} s   {met}")
    out.append(f"  sync / batch rate, median {ratio_med:.2f}x   target >= {TARGET_SYNC_RATIO}x   "
               f"{'MET' if ratio_med >= TARGET_SYNC_RATIO else 'MISSED'}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--records", type=int, default=20_000, help="PINs per round (20,000)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (2)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (2)")
    args = parser.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    from bench.issuance import _git_commit
    report: dict[str, Any] = {"meta": {
        "started": started.isoformat(timespec="seconds"), "commit": _git_commit(),
        "cpus": os.cpu_count(), "workers": args.workers, "records": args.records,
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}, "rounds": []}
    with Stack() as stack:
        stack.start_cluster()
        stack.env["IDSERVICE_RESERVATION_MAX_OPEN"] = str(max(20_000, args.records))
        stack.start_server(args.workers)
        token = stack.token()
        for i in range(1, args.rounds + 1):
            report["rounds"].append(run_round(stack, token, args.records, run, i))
    report["meta"]["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = render(report)
    print(text)
    path = RESULTS_DIR / f"offline-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({**report, "text": text}, indent=2, ensure_ascii=False))
    log(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

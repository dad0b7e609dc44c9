"""Notification delivery benchmark (contract 9, issue 11 item 4): does delivery keep up with
issuance at 1,000 PINs/s (or the machine's issuance rate, if lower) to 3 subscribers?

Reproduce (from the repo root, as root, like bench/issuance.py)::

    .venv/bin/python bench/notifications.py                  # 1,000/s for 30 s, 3 subscribers
    .venv/bin/python bench/notifications.py --rate 500 --seconds 20 --workers 2

Method (everything started and removed by the script, bench/_harness.py): a fresh stack
(`idservice dev`, then `serve --workers N`) with IDSERVICE_NOTIFY_ALLOW_PRIVATE=1 and the
default delivery settings. Three subscriber HTTP servers on loopback run in a process of their
own (asyncio, keep-alive, answer 200 at once), each with a confirmed `liveBirth` subscription
of the demo's subscriber client. The load: every second, one `POST /v1/pins:batch` of `--rate`
new registrations (bench/issuance.py's lines), for `--seconds` seconds; a batch that takes
longer than a second delays the next, so the achieved issuance rate is measured, not assumed.
Measured: issuance rate achieved; the time until every subscriber has every event; lag of each
first delivery (arrival at the subscriber minus the event's `timestamp`, the time its
transaction wrote it) p50/p99/max; the backlog (the /metrics query, sampled every 0.5 s):
max and at the end of issuance; CPU per part and the machine's load; and, once issuance has
stopped, the drain on its own: deliveries per second and the service's CPU per delivery
(what delivery alone costs, without issuance's share).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/notifications.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from bench._harness import REPO, VENV_BIN, Stack, free_port, log
from bench.issuance import RESULTS_DIR, make_line
from idservice.auth.assertion import client_token_form
from idservice.demo import self_signed_client_cert
from idservice.queries.notify import BACKLOG

SUBSCRIBERS = 3
TARGET_LAG_P99_S = 2.0


# -- the subscribers (a process of their own) ------------------------------------------------

def _subscribers(ports: list[int], out_dir: str, stop: EventType,
                 counts: Any) -> None:
    records: list[list[tuple[str, float, str]]] = [[] for _ in ports]
    seen: list[set[str]] = [set() for _ in ports]

    async def handle(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                headers: dict[str, str] = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length)
                now = time.time()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                message = json.loads(body)
                if headers.get("message-type") == "SubscriptionConfirmation":
                    Path(out_dir, f"confirm-{i}.json").write_bytes(body)
                else:
                    mid = headers["message-id"]
                    if mid not in seen[i]:
                        seen[i].add(mid)
                        records[i].append((mid, now, message["timestamp"]))
                        counts[i] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(
            lambda r, w, i=i: handle(i, r, w), "127.0.0.1", port)
            for i, port in enumerate(ports)]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for server in servers:
            server.close()
        for i, rows in enumerate(records):
            Path(out_dir, f"received-{i}.json").write_text(json.dumps(rows))

    asyncio.run(main())


# -- the run ---------------------------------------------------------------------------------

def _subscriber_token(stack: Stack) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = stack.data_dir / "bench-subscriber.pem"
    cert.write_bytes(self_signed_client_cert(key, "bench-subscriber").public_bytes(Encoding.PEM))
    subprocess.run([str(VENV_BIN / "idservice"), "clients", "add", "--id", "bench-subscriber",
                    "--cert", str(cert), "--roles", "subscriber", "--jurisdiction", "*"],
                   env=stack.env, cwd=REPO, check=True, capture_output=True, timeout=120)
    url = f"{stack.origin}/v1/auth/client-token"
    response = httpx.post(url, data=client_token_form("bench-subscriber", key, url), timeout=30)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def _subscribe(stack: Stack, token: str, ports: list[int], out_dir: Path) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for i, port in enumerate(ports):
        response = httpx.post(f"{stack.origin}/osia/v1/subscriptions", headers=auth, params={
            "topic": "liveBirth", "address": f"http://127.0.0.1:{port}/hook",
            "policy": "1,600"}, timeout=30)
        response.raise_for_status()
        confirm = out_dir / f"confirm-{i}.json"
        deadline = time.monotonic() + 60
        while not confirm.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("no confirmation message arrived")
            time.sleep(0.1)
        token_value = json.loads(confirm.read_bytes())["token"]
        httpx.get(f"{stack.origin}/osia/v1/subscriptions/confirm", headers=auth,
                  params={"token": token_value}, timeout=30).raise_for_status()
    log(f"{len(ports)} liveBirth subscriptions confirmed")


async def _load(stack: Stack, token: str, rate: int, seconds: int, run: str) -> dict[str, Any]:
    """One batch of `rate` lines per second (a slow batch delays the next)."""
    started = time.perf_counter()
    issued = 0
    async with httpx.AsyncClient(base_url=stack.origin, timeout=600) as client:
        for second in range(seconds):
            due = started + second
            if time.perf_counter() < due:
                await asyncio.sleep(due - time.perf_counter())
            body = "".join(make_line(second * rate + n, 0, run) for n in range(1, rate + 1))
            response = await client.post("/v1/pins:batch", content=body.encode(), headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
            response.raise_for_status()
            issued += sum(1 for line in response.text.splitlines() if '"pin"' in line)
    elapsed = time.perf_counter() - started
    return {"issued": issued, "issuing_s": round(elapsed, 2),
            "issued_per_s": round(issued / elapsed, 1)}


async def _sample_backlog(url: str, samples: list[tuple[float, int, float]],
                          stop: asyncio.Event) -> None:
    conn = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            row = await conn.fetchrow(BACKLOG)
            assert row is not None
            samples.append((time.time(), int(row["n"]), float(row["age"])))
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="issuances per second asked")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with Stack(keep=args.keep) as stack:
        stack.env["IDSERVICE_NOTIFY_ALLOW_PRIVATE"] = "1"
        stack.start_cluster()
        stack.start_server(args.workers)
        out_dir = stack.data_dir / "subscribers"
        out_dir.mkdir()
        ports = [free_port() for _ in range(SUBSCRIBERS)]
        stop = multiprocessing.Event()
        counts = multiprocessing.Array("q", SUBSCRIBERS)
        process = multiprocessing.Process(target=_subscribers,
                                          args=(ports, str(out_dir), stop, counts))
        process.start()
        try:
            time.sleep(1.0)
            _subscribe(stack, _subscriber_token(stack), ports, out_dir)
            registrar = stack.token()
            result = asyncio.run(_measure(stack, registrar, args, counts))
        finally:
            stop.set()
            process.join(timeout=60)
        lags: list[float] = []
        for i in range(SUBSCRIBERS):
            rows = json.loads((out_dir / f"received-{i}.json").read_text())
            lags += [arrived - _epoch(stamp) for _, arrived, stamp in rows]
        result.update({
            "subscribers": SUBSCRIBERS, "workers": args.workers, "rate_asked": args.rate,
            "deliveries": len(lags),
            "lag_p50_s": round(statistics.median(lags), 3),
            "lag_p99_s": round(_percentile(lags, 0.99), 3),
            "lag_max_s": round(max(lags), 3),
            "lag_p99_within_target": _percentile(lags, 0.99) <= TARGET_LAG_P99_S,
            "load_avg_1m_at_end": os.getloadavg()[0],
            "cpus": os.cpu_count()})
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"notifications-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2))
        print(json.dumps({k: v for k, v in result.items() if k != "backlog_samples"}, indent=2))
        log(f"results in {out}")


def _epoch(stamp: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def _measure(stack: Stack, registrar: str, args: argparse.Namespace,
                   counts: Any) -> dict[str, Any]:
    samples: list[tuple[float, int, float]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_backlog(stack.database_url(), samples, stop))
    meter = stack.cpu_meter().start()
    started = time.time()
    load = await _load(stack, registrar, args.rate, args.seconds, f"notify-{int(started)}")
    at_end_of_load = samples[-1] if samples else (0.0, 0, 0.0)
    target = load["issued"]
    drain_meter = stack.cpu_meter().start()  # after issuance: the deliveries' cost alone
    drain_started, delivered_before = time.time(), sum(counts[:])
    deadline = time.monotonic() + 600
    while min(counts[:]) < target and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    delivered_s = time.time() - started
    drain = drain_meter.stop()
    cpu = meter.stop()
    drained = sum(counts[:]) - delivered_before
    drain_wall = time.time() - drain_started
    stop.set()
    await sampler
    return {**load,
            "all_delivered": min(counts[:]) >= target,
            "all_delivered_after_s": round(delivered_s, 2),
            "drain_after_issuing_s": round(delivered_s - load["issuing_s"], 2),
            "delivered_per_s": round(SUBSCRIBERS * target / delivered_s, 1),
            "delivery_to_issuance_ratio": round(delivered_s and load["issuing_s"] / delivered_s,
                                                3),
            "backlog_max": max((n for _, n, _ in samples), default=0),
            "backlog_at_end_of_issuing": at_end_of_load[1],
            "oldest_undelivered_max_s": round(max((a for _, _, a in samples), default=0.0), 2),
            "cpu": cpu,
            "drain": {"deliveries": drained,
                      "delivered_per_s": round(drained / drain_wall, 1) if drain_wall else 0,
                      "idservice_cpu_ms_per_delivery": round(
                          1000 * drain["cpu_s"]["idservice"] / drained, 3) if drained else None,
                      "postgresql_cpu_ms_per_delivery": round(
                          1000 * drain["cpu_s"]["postgresql"] / drained, 3) if drained else None,
                      "cpu": drain},
            "backlog_samples": samples}


if __name__ == "__main__":
    main()

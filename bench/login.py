"""Officer login benchmark: full Web eID-style logins/s against raw P-256 verify/s.

Reproduce (from the repo root, as root for the embedded PostgreSQL user)::

    .venv/bin/python bench/login.py                  # 16 clients, 10 s measured, ~1-2 min
    .venv/bin/python bench/login.py --seconds 30 --clients 16 --workers 2

Method (one run, everything started and removed by the script, see bench/_harness.py):

1. A fresh data dir under /tmp (`tempfile.mkdtemp`), a test PKI written into it (root CA ->
   issuing CA -> one P-256 officer certificate per client, fresh CRLs of both CAs, built with
   `idservice.devpki`), the embedded PostgreSQL, then `idservice dev` once (SoftHSM token and
   the access-token signing key) and `idservice serve --workers N` with
   IDSERVICE_TRUST_ANCHORS / IDSERVICE_ISSUING_CAS / IDSERVICE_CRLS pointing at that PKI
   (default `IDSERVICE_REVOCATION=require`, certificates without OCSP URL: CRL-checked).
   One operator per certificate is registered with `idservice operators add`.
2. Baseline, in the same run while the service idles: raw P-256 ECDSA verify/s with
   `cryptography` (the same 64-byte `H(origin) || H(nonce)` message the server verifies), one
   process (= one core), and one process per core in parallel (the whole machine).
3. Logins: `--clients` concurrent clients (asyncio, one keep-alive HTTP/1.1 connection each,
   a minimal hand-written client so the load generator costs little CPU), spread evenly over
   the workers as a load balancer would (uvicorn's shared socket can give one worker all 16
   connections opened at once: `WorkerBalancer` of bench/_harness.py reconnects until the
   spread is even; `--no-balance` leaves them where they land). Each login is
   `POST /v1/auth/challenge`, an ES256 signature by the client's software key over the
   challenge (the client side; not what is measured), and `POST /v1/auth/token`, which the
   server answers after the full check list of contract 3.1 (nonce consumed in PostgreSQL,
   path validation and CRL check with pyhanko-certvalidator, signature, operator lookup),
   an audit event in its own transaction, and an ES256 access token signed in SoftHSM.
   Each client reuses its certificate, so after its first login the path validation is a
   hit of the validation cache (`--validation-cache-seconds 0`: validate every time).
   Rate = 200 answers / measured seconds after a warm-up; every answer must be 200.
   The load average before and after is reported: the machine may be shared.
4. Ratio = logins/s / single-core verify/s (target >= 0.12, issue 16 goal 3); the ratio to
   the whole-machine verify/s is shown too. CPU seconds per part (server, PostgreSQL, this
   process = load generator, the rest of the machine) are read from /proc around the measured
   phase.

The report goes to stdout and, as JSON, to bench/results/login-<UTC time>.json (gitignored).
Benchmarks are never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/login.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from bench._harness import (
    BENCH_DIR,
    REPO,
    VENV_BIN,
    Stack,
    WorkerBalancer,
    _percentiles_ms,
    log,
    py_spy_start,
    summarise_profile,
)
from idservice.auth.webeid import auth_token, signed_data
from idservice.devpki import new_ca, officer_certificate, pki_name

TARGET_RATIO = 0.12  # issue 16 goal 3
RESULTS_DIR = BENCH_DIR / "results"


# -- test PKI and operators ----------------------------------------------------------------


@dataclass(frozen=True)
class Officer:
    key: ec.EllipticCurvePrivateKey
    cert_der: bytes
    cert_path: Path


def write_pki(directory: Path, clients: int) -> tuple[dict[str, str], list[Officer]]:
    """Root + issuing CA, fresh CRLs and one officer certificate per client; the settings."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    base = "http://127.0.0.1:9"  # CRL DPs: never fetched, the files below are configured
    root = new_ca("Bench Root CA", None, now, f"{base}/root.crl")
    issuing = new_ca("Bench Officer CA", root, now, f"{base}/officer.crl")
    (directory / "root.pem").write_bytes(root.pem)
    (directory / "issuing.pem").write_bytes(issuing.pem)
    (directory / "officer.crl").write_bytes(issuing.crl(now).public_bytes(Encoding.DER))
    (directory / "root.crl").write_bytes(root.crl(now).public_bytes(Encoding.DER))
    officers = []
    for i in range(clients):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = officer_certificate(issuing, key.public_key(), pki_name(f"Bench Officer {i}"),
                                   not_before=now - timedelta(days=1),
                                   not_after=now + timedelta(days=30))
        path = directory / f"officer-{i}.pem"
        path.write_bytes(cert.public_bytes(Encoding.PEM))
        officers.append(Officer(key, cert.public_bytes(Encoding.DER), path))
    env = {"IDSERVICE_TRUST_ANCHORS": str(directory / "root.pem"),
           "IDSERVICE_ISSUING_CAS": str(directory / "issuing.pem"),
           "IDSERVICE_CRLS": f"{directory / 'officer.crl'},{directory / 'root.crl'}",
           "IDSERVICE_REVOCATION": "require",
           # the benchmark logs in far more than 120/min from one address, 600/min per officer
           "IDSERVICE_AUTH_SOURCE_RATE_LIMIT": "0", "IDSERVICE_AUTH_RATE_LIMIT": "0"}
    return env, officers


def register_operators(stack: Stack, officers: list[Officer]) -> None:
    """`idservice operators add` per certificate (a few at a time)."""
    pending = list(enumerate(officers))
    while pending:
        batch, pending = pending[:4], pending[4:]
        procs = [subprocess.Popen(
            [str(VENV_BIN / "idservice"), "operators", "add", "--cert", str(o.cert_path),
             "--name", f"Bench Officer {i}", "--roles", "officer", "--jurisdiction", "052",
             "--id", f"bench-officer-{i}"],
            env=stack.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for i, o in batch]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"operators add failed: {err.decode(errors='replace')}")
    log(f"registered {len(officers)} operators")


# -- baseline: raw P-256 verify ------------------------------------------------------------


def _verify_loop(seconds: float) -> tuple[int, float]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    message = signed_data("http://127.0.0.1:8000", "x" * 44, "ES256")
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    algorithm = ec.ECDSA(hashes.SHA256())
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(200):
            public.verify(signature, message, algorithm)
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return n, now - t0


def verify_rates(seconds: float) -> dict[str, Any]:
    n, elapsed = _verify_loop(seconds)
    single = n / elapsed
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        results = pool.map(_verify_loop, [seconds] * cores)
    machine = sum(n / t for n, t in results)
    return {"single_core_per_s": round(single), "all_cores_per_s": round(machine),
            "processes": cores, "seconds": seconds}


# -- the login load ------------------------------------------------------------------------


class HttpConnection:
    """Keep-alive HTTP/1.1 POST of JSON over asyncio streams (cheap on the client side)."""

    def __init__(self, balancer: WorkerBalancer) -> None:
        self.host, self.port = "127.0.0.1", balancer.stack.port
        self.balancer = balancer
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer, _ = await self.balancer.open()
        assert self.reader is not None
        payload = json.dumps(body).encode() if body is not None else b""
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            .encode() + payload)
        await self.writer.drain()
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class LoadResult:
    ok: int = 0
    failures: Counter[str] | None = None
    latencies: list[float] | None = None
    sample_token: str | None = None


async def _client(officer: Officer, origin: str, balancer: WorkerBalancer, stop_at: float,
                  measure_from: float, result: LoadResult) -> None:
    assert result.failures is not None and result.latencies is not None
    conn = HttpConnection(balancer)
    loop = asyncio.get_running_loop()
    try:
        while (start := loop.time()) < stop_at:
            status, body = await conn.post("/v1/auth/challenge", None)
            if status != 200:
                result.failures[f"challenge {status}"] += 1
                continue
            nonce = json.loads(body)["nonce"]
            der = officer.key.sign(signed_data(origin, nonce, "ES256"),
                                   ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            token = auth_token(officer.cert_der, "ES256",
                               r.to_bytes(32, "big") + s.to_bytes(32, "big"))
            status, body = await conn.post("/v1/auth/token",
                                           {"nonce": nonce, "auth_token": token})
            end = loop.time()
            if start < measure_from or end > stop_at:
                continue  # warm-up, or finished after the window closed
            if status == 200:
                result.ok += 1
                result.latencies.append(end - start)
                if result.sample_token is None:
                    result.sample_token = json.loads(body)["access_token"]
            else:
                code = json.loads(body).get("code", "?") if body else "?"
                result.failures[f"token {status} {code}"] += 1
    finally:
        await conn.close()


async def login_load(stack: Stack, officers: list[Officer], seconds: float, warmup: float,
                     balance: bool = True) -> tuple[LoadResult, dict[str, Any]]:
    """The logins; `cpu` also tells how many connections each worker held (`spread`)."""
    result = LoadResult(failures=Counter(), latencies=[])
    balancer = WorkerBalancer(stack, balance)
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    stop_at = measure_from + seconds
    clients = [asyncio.create_task(_client(o, stack.origin, balancer, stop_at,
                                           measure_from, result)) for o in officers]
    await asyncio.sleep(warmup)
    meter = stack.cpu_meter().start()
    await asyncio.gather(*clients)
    cpu = meter.stop()
    cpu["cpu_s"]["load generator (benchmark process)"] = cpu["cpu_s"].pop("benchmark process")
    cpu["cores"]["load generator (benchmark process)"] = cpu["cores"].pop("benchmark process")
    cpu["spread"] = {"balanced": balancer.enabled,
                     "connections_per_worker": sorted(balancer.busy.values(), reverse=True)}
    return result, cpu


def profile(stack: Stack, officers: list[Officer], seconds: int) -> dict[str, Any]:
    """py-spy (`--gil`: Python CPU time) on the server while the login load runs again."""
    assert stack.server is not None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = RESULTS_DIR / f"profile-login-{stamp}.txt"
    RESULTS_DIR.mkdir(exist_ok=True)
    spy = py_spy_start(stack.server.pid, seconds, raw)
    time.sleep(1.0)  # let py-spy attach to every worker
    result, _ = asyncio.run(login_load(stack, officers, max(1.0, seconds - 2.0), 0.0))
    try:
        spy.wait(timeout=120)
    except subprocess.TimeoutExpired:
        spy.terminate()
        spy.wait(timeout=30)
    if not raw.exists():
        return {"error": f"py-spy wrote nothing (exit {spy.returncode})"}
    summary = summarise_profile(raw)
    summary["raw_stacks"] = str(raw.relative_to(REPO))
    summary["logins_while_profiled"] = result.ok
    return summary


# -- report --------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    v, lg = report["verify"], report["logins"]
    cores = ", ".join(f"{k} {c:.2f}" for k, c in report["cpu"]["cores"].items())
    return "\n".join([
        f"officer login benchmark ({report['clients']} clients, {report['workers']} worker(s), "
        f"{report['seconds']} s measured, revocation={report['revocation']}, "
        f"validation cache {report['validation_cache_seconds']} s)",
        f"  raw P-256 verify/s   : {v['single_core_per_s']:,} (1 core), "
        f"{v['all_cores_per_s']:,} ({v['processes']} processes)",
        f"  full logins/s        : {lg['per_s']:,.1f}  ({lg['ok']} logins; failures: "
        f"{lg['failures'] or 'none'})",
        f"  login latency ms     : p50 {lg['latency_ms'].get('p50')}, "
        f"p90 {lg['latency_ms'].get('p90')}, p99 {lg['latency_ms'].get('p99')}",
        f"  ratio                : {report['ratio']:.4f} of 1-core verify/s "
        f"(target >= {TARGET_RATIO}: {'MET' if report['ratio'] >= TARGET_RATIO else 'NOT MET'})"
        f"; {report['ratio_all_cores']:.4f} of all-cores verify/s",
        f"  access token         : {report['access_token_header']}",
        f"  cores used           : {cores}; machine busy {report['cpu']['machine_busy_pct']}%",
        f"  connections/worker   : {report['cpu']['spread']['connections_per_worker']} "
        f"({'spread by the client' if report['cpu']['spread']['balanced'] else 'as accepted'})",
        f"  load average 1/5/15  : before {report['loadavg_1_5_15']['before']}, "
        f"after {report['loadavg_1_5_15']['after']} ({os.cpu_count()} cores)",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--verify-seconds", type=float, default=3.0)
    parser.add_argument("--validation-cache-seconds", type=float, default=None,
                        help="IDSERVICE_VALIDATION_CACHE_SECONDS for the server (default: the "
                             "service's default, 60; 0 = every login validates its path)")
    parser.add_argument("--profile-seconds", type=int, default=0,
                        help="after the measured run, sample the server with py-spy while "
                             "the same load runs this long (0 = off)")
    parser.add_argument("--no-balance", dest="balance", action="store_false",
                        help="leave each connection on the worker that accepted it (uvicorn's "
                             "shared socket may give one worker all of them)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args(argv)

    with Stack(keep=args.keep) as stack:
        pki_env, officers = write_pki(stack.data_dir / "bench-pki", args.clients)
        stack.env.update(pki_env)
        if args.validation_cache_seconds is not None:
            stack.env["IDSERVICE_VALIDATION_CACHE_SECONDS"] = str(args.validation_cache_seconds)
        stack.start_cluster()
        stack.start_server(args.workers)
        register_operators(stack, officers)
        log("baseline: raw P-256 verify")
        verify = verify_rates(args.verify_seconds)
        log(f"logins: {args.clients} clients, {args.warmup} s warm-up, {args.seconds} s")
        load_before = os.getloadavg()
        result, cpu = asyncio.run(login_load(stack, officers, args.seconds, args.warmup,
                                             args.balance))
        load_after = os.getloadavg()
        assert result.latencies is not None and result.failures is not None
        per_s = result.ok / args.seconds
        header = (jwt.get_unverified_header(result.sample_token)
                  if result.sample_token else None)
        report = {
            "at": datetime.now(UTC).isoformat(), "clients": args.clients,
            "workers": args.workers, "seconds": args.seconds,
            "revocation": pki_env["IDSERVICE_REVOCATION"], "verify": verify,
            "validation_cache_seconds": stack.env.get("IDSERVICE_VALIDATION_CACHE_SECONDS",
                                                      "default (60)"),
            "logins": {"ok": result.ok, "per_s": round(per_s, 1),
                       "failures": dict(result.failures),
                       "latency_ms": _percentiles_ms(sorted(result.latencies))},
            "ratio": per_s / verify["single_core_per_s"],
            "ratio_all_cores": per_s / verify["all_cores_per_s"],
            "access_token_header": header, "cpu": cpu,
            "loadavg_1_5_15": {"before": [round(x, 2) for x in load_before],
                               "after": [round(x, 2) for x in load_after]},
        }
        if result.ok == 0:
            log("no successful login; server log tail:\n" + stack.log_tail())
        if args.profile_seconds > 0:
            report["profile"] = profile(stack, officers, args.profile_seconds)
    print(render(report))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"login-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {out}")
    return 0 if result.ok and not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())

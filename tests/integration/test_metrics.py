"""/metrics and /readyz (contract 6): every metric after some traffic, sums over `serve --workers
2`, and a stale officer-login CRL making the service not ready (with the reason)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from idservice.auth.assertion import client_token_form
from idservice.clock import SystemClock
from idservice.db.pool import connect, create_pool
from idservice.metrics import MetricsRefresher, iter_metric_names
from idservice.runtime import DatabaseTarget
from tests.support.bodies import issue_body
from tests.support.officer_server import (
    OfficerLoginEnv,
    officer_env_fixture,  # noqa: F401 - the fixture
)
from tests.support.pki import new_client_key
from tests.support.server import free_port

EXPECTED = {
    "idservice_request_seconds_bucket",
    "idservice_pins_issued_total",
    "idservice_audit_sequenced_total",
    "idservice_hsm_errors_total",
    "idservice_pin_bucket_fill_ratio",
    "idservice_crl_age_seconds",
    "idservice_crl_next_update_seconds",
    "idservice_audit_unintegrated_events",
    "idservice_audit_checkpoint_age_seconds",
    "idservice_audit_partition_horizon_seconds",
    "idservice_db_pool_connections_in_use",
    "idservice_db_pool_connections",
    "idservice_db_pool_max_connections",
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _registrar_token(origin: str, make_client: Callable[..., tuple[str, object]]) -> str:
    client_id, key = make_client("052")
    response = httpx.post(f"{origin}/v1/auth/client-token",
                          data=client_token_form(client_id, key, f"{origin}/v1/auth/client-token"))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_metrics_expose_every_metric_after_traffic(
        officer_env: OfficerLoginEnv, make_client: Callable[..., tuple[str, object]]) -> None:
    origin = officer_env.origin
    token = _registrar_token(origin, make_client)
    pins = []
    for _ in range(3):
        response = httpx.post(f"{origin}/v1/pins", json=issue_body("052", dob="2023-05-01",
                                                                    registered_on="2023-05-09"),
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        pins.append(response.json()["pin"])
    bucket = pins[0][:6]
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{origin}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        names = set(iter_metric_names(response.text))
        samples = _samples(response.text)
        fill = samples.get(("idservice_pin_bucket_fill_ratio", (("bucket", bucket),)))
        if (names >= EXPECTED and fill is not None and fill >= 3 / 1_000_000
                and samples.get(("idservice_db_pool_connections", ()), 0) > 0
                and samples.get(("idservice_audit_sequenced_total", ()), 0) >= 3):
            break
        assert time.monotonic() < deadline, f"missing: {EXPECTED - names}, fill {fill}"
        time.sleep(0.2)
    issued = sum(v for (name, labels), v in samples.items()
                 if name == "idservice_pins_issued_total" and ("province", "052") in labels)
    assert issued >= 3
    # This server's CRLs only: gauges live in the test process, where other tests' servers
    # (a deliberately stale client CRL, say) set theirs.
    crl_sources = {dict(labels)["source"] for (name, labels) in samples
                   if name == "idservice_crl_next_update_seconds"
                   and dict(labels)["source"].startswith(str(officer_env.pki_dir))}
    assert any(source.endswith("officer.crl") for source in crl_sources)
    assert all(samples[("idservice_crl_next_update_seconds", (("source", s),))] > 0
               for s in crl_sources)
    # the service created this month's partition and the 3 after it at start
    assert samples[("idservice_audit_partition_horizon_seconds", ())] > 3 * 28 * 86400
    route = ("idservice_request_seconds_count",
             (("method", "POST"), ("route", "/v1/pins"), ("status", "201")))
    assert samples[route] >= 3


def _ready(origin: str) -> tuple[int, dict[str, str]]:
    response = httpx.get(f"{origin}/readyz", timeout=10)
    checks: dict[str, str] = response.json()["checks"]
    return response.status_code, checks


def _wait_ready(origin: str, want: int) -> dict[str, str]:
    deadline = time.monotonic() + 20
    while True:
        status, checks = _ready(origin)
        if status == want:
            return checks
        assert time.monotonic() < deadline, (status, checks)
        time.sleep(0.1)


def test_readyz_tells_the_public_only_ready_or_not(officer_env: OfficerLoginEnv) -> None:
    """Issue 9 item 16: a caller behind the proxy (here: X-Forwarded-For from the trusted
    loopback proxy, as nginx sends it) learns ready or not ready; which part is down, and the
    CRL sources, are for callers on this host only (and /metrics)."""
    public = httpx.get(f"{officer_env.origin}/readyz", timeout=10,
                       headers={"X-Forwarded-For": "203.0.113.7"})
    assert public.status_code == 200 and public.json() == {"status": "ready"}
    local = httpx.get(f"{officer_env.origin}/readyz", timeout=10)
    assert local.json()["checks"] == {"database": "ok", "hsm": "ok", "crl": "ok"}
    officer_env.publish_crls(stale=True)
    try:
        deadline = time.monotonic() + 20
        while (public := httpx.get(f"{officer_env.origin}/readyz", timeout=10, headers={
                "X-Forwarded-For": "203.0.113.7"})).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert public.json() == {"status": "not_ready"}
        assert "officer.crl" not in public.text
    finally:
        officer_env.publish_crls()
    _wait_ready(officer_env.origin, 200)


def test_readyz_not_ready_while_a_crl_is_stale(officer_env: OfficerLoginEnv) -> None:
    checks = _wait_ready(officer_env.origin, 200)
    assert checks == {"database": "ok", "hsm": "ok", "crl": "ok"}
    officer_env.publish_crls(stale=True)
    try:
        checks = _wait_ready(officer_env.origin, 503)
        assert checks["database"] == "ok" and checks["hsm"] == "ok"
        assert checks["crl"].startswith("stale: ")
        assert "officer.crl: stale, nextUpdate" in checks["crl"]
        assert "root.crl" not in checks["crl"]  # only the stale source is named
    finally:
        officer_env.publish_crls()
    assert _wait_ready(officer_env.origin, 200)["crl"] == "ok"


# --- serve --workers 2 --------------------------------------------------------------------


@pytest.fixture
def fresh_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="idservice-metrics-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _issued_per_worker(prom_dir: Path) -> dict[int, float]:
    """From the workers' own files: how many PINs each worker process counted."""
    counts: dict[int, float] = {}
    for path in prom_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[-1])
        with tempfile.TemporaryDirectory() as one:
            shutil.copy(path, one)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=one)
            counts[pid] = sum(s.value for family in registry.collect() for s in family.samples
                              if s.name == "idservice_pins_issued_total")
    return counts


def test_two_workers_scrapes_report_the_sum_over_workers(fresh_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IDSERVICE_", "SOFTHSM2", "PROMETHEUS_"))}
    env.update({"IDSERVICE_DATA_DIR": str(fresh_dir), "IDSERVICE_ORIGIN": base,
                "IDSERVICE_ALLOW_DEV_PARTS": "1"})  # serve on the embedded cluster and SoftHSM
    stale = fresh_dir / "prometheus" / "counter_999999.db"  # from an "earlier run": dropped
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"junk")
    process = subprocess.Popen(
        [sys.executable, "-m", "idservice.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "service did not become ready"
            time.sleep(0.2)
        assert not stale.exists()

        client_id = f"metrics-{secrets.token_hex(4)}"
        key = new_client_key(client_id)
        cert = fresh_dir / "client.pem"
        cert.write_bytes(key.cert_pem)
        added = subprocess.run(
            [sys.executable, "-m", "idservice.cli", "clients", "add", "--id", client_id,
             "--cert", str(cert), "--roles", "registrar", "--jurisdiction", "052"],
            env=env, capture_output=True, text=True, timeout=120)
        assert added.returncode == 0, added.stdout + added.stderr
        token_url = f"{base}/v1/auth/client-token"
        token = httpx.post(token_url, data=client_token_form(client_id, key.key, token_url),
                           timeout=30).json()["access_token"]

        def issue(_: int) -> str:
            # A new connection per request, so the kernel hands them to both workers.
            response = httpx.post(f"{base}/v1/pins", json=issue_body(
                number=f"W-{secrets.token_hex(8)}"),
                headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert response.status_code == 201, response.text
            pin: str = response.json()["pin"]
            return pin

        issued: list[str] = []
        prom_dir = fresh_dir / "prometheus"
        with ThreadPoolExecutor(8) as pool:
            while True:
                issued += pool.map(issue, range(16))
                per_worker = _issued_per_worker(prom_dir)
                if sum(1 for n in per_worker.values() if n > 0) >= 2 or len(issued) >= 320:
                    break
        assert len(set(issued)) == len(issued)
        busy = {pid: n for pid, n in per_worker.items() if n > 0}
        assert len(busy) == 2, f"one worker did all the work: {per_worker}"
        assert sum(busy.values()) == len(issued)

        for _ in range(6):  # whichever worker answers, the total is the sum over both
            text = httpx.get(f"{base}/metrics", timeout=10).text
            total = sum(v for (name, _labels), v in _samples(text).items()
                        if name == "idservice_pins_issued_total")
            assert total == len(issued), text
            pool_max = _samples(text)[("idservice_db_pool_max_connections", ())]
            assert pool_max == 2 * 40  # both workers' pools, summed (livesum)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert "stopped embedded PostgreSQL" in output, output[-3000:]


def test_hsm_error_answered_503_is_counted() -> None:
    import asyncio

    from fastapi import FastAPI

    from hsm.errors import HsmUnavailable
    from idservice.api.problems import install_handlers
    from idservice.metrics import HSM_ERRORS

    app = FastAPI()
    install_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise HsmUnavailable("token removed")

    before = HSM_ERRORS.labels("request")._value.get()
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/boom")

    response = asyncio.run(get())
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert HSM_ERRORS.labels("request")._value.get() == before + 1


def test_fullest_buckets_are_read_on_their_own_slower_beat(database: DatabaseTarget) -> None:
    """The fullest buckets (a sum over every `pin_block` row: 200-700 ms at 10M persons) are
    read again only after `bucket_interval`; the other facts on every refresh. Shown to fail
    when the buckets are read on every refresh (the block added below shows up at once)."""
    prefix = f"99{secrets.randbelow(10_000):04d}"

    async def main() -> tuple[list[tuple[str, int]], list[tuple[str, int]],
                              list[tuple[str, int]]]:
        assert database.owner_url is not None
        owner = await connect(database.owner_url)
        pool = await create_pool(database.service_url, min_size=1, max_size=1)
        try:
            slow = MetricsRefresher(pool, None, SystemClock(), interval=60, top_buckets=1000,
                                    bucket_interval=300)
            first = (await slow.refresh()).buckets
            await owner.execute(
                "INSERT INTO pin_block (prefix, block, used) VALUES ($1, 0, 1000)", prefix)
            again = await slow.refresh()
            assert again.sequenced is not None
            fresh = MetricsRefresher(pool, None, SystemClock(), interval=60, top_buckets=1000,
                                     bucket_interval=0.01)
            return first, again.buckets, (await fresh.refresh()).buckets
        finally:
            await owner.execute("DELETE FROM pin_block WHERE prefix = $1", prefix)
            await pool.close()
            await owner.close()

    first, again, fresh = asyncio.run(main())
    assert prefix not in dict(first)
    assert again == first  # not read again within the 300 s
    assert dict(fresh)[prefix] == 1000

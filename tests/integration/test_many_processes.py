"""Many processes on one database and HSM (HA item 4): `idservice serve --workers 3` on a fresh
data dir, every request on a new connection so the kernel spreads them over the workers.
Client-assertion jti replay, officer-login nonces, token revocation, the authentication rate
limit and the audit log must all hold across the processes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from idservice.auth.assertion import client_token_form
from idservice.db.pool import connect
from idservice.demo import self_signed_client_cert
from idservice.runtime import resolve_database
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.server import free_port

pytestmark = pytest.mark.embedded_only  # the embedded cluster itself (fixtures_db.py)

IDSERVICE = [sys.executable, "-m", "idservice.cli"]
WORKERS = 3
RATE_LIMIT = 30  # per source address and minute
PROBE = "127.0.0.9"  # the rate-limit probe's own address
PINS = 60


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    data_dir: Path
    client_id: str
    key: ec.EllipticCurvePrivateKey

    def assertion(self) -> dict[str, str]:
        return client_token_form(self.client_id, self.key, f"{self.base}/v1/auth/client-token")

    def post(self, path: str, *, source: str = "127.0.0.1", **kwargs: object) -> httpx.Response:
        """One request on its own connection (`Connection: close`): any worker may answer."""
        headers = {"Connection": "close", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        with httpx.Client(base_url=self.base, timeout=30,
                          transport=httpx.HTTPTransport(local_address=source)) as client:
            return client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*IDSERVICE, *args], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)

    def sql(self, query: str) -> list:
        async def main() -> list:
            target = await resolve_database(Settings(data_dir=self.data_dir),
                                            apply_migrations=False)
            try:
                conn = await connect(target.owner_url)
                try:
                    return list(await conn.fetch(query))
                finally:
                    await conn.close()
            finally:
                target.close()
        return asyncio.run(main())


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="idservice-many-test-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IDSERVICE_", "SOFTHSM2", "PROMETHEUS_"))}
    env.update({"IDSERVICE_DATA_DIR": str(data_dir), "IDSERVICE_ORIGIN": base,
                "IDSERVICE_ALLOW_DEV_PARTS": "1",  # serve on the embedded cluster and SoftHSM
                "IDSERVICE_AUTH_SOURCE_RATE_LIMIT": str(RATE_LIMIT),
                "IDSERVICE_REVOCATION_POLL_INTERVAL": "0.5"})
    process = subprocess.Popen(
        [*IDSERVICE, "serve", "--workers", str(WORKERS), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        ready = 0
        while time.monotonic() < deadline and ready < 3 * WORKERS:
            with contextlib.suppress(httpx.HTTPError):
                ready += httpx.get(f"{base}/readyz", headers={"Connection": "close"},
                                   timeout=2).status_code == 200
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
        assert ready == 3 * WORKERS, "workers did not become ready"
        key = ec.generate_private_key(ec.SECP256R1())
        cert = data_dir / "registrar.pem"
        cert.write_bytes(self_signed_client_cert(key, "many-registrar").public_bytes(Encoding.PEM))
        result = subprocess.run([*IDSERVICE, "clients", "add", "--id", "many-registrar",
                                 "--cert", str(cert), "--roles", "registrar",
                                 "--jurisdiction", "052"],
                                env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        yield Stack(base, env, data_dir, "many-registrar", key)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        shutil.rmtree(data_dir, ignore_errors=True)
    assert "stopped embedded PostgreSQL" in output, output[-3000:]


def _workers_that_issued(data_dir: Path) -> int:
    """From the workers' own metric files: how many worker processes issued a PIN."""
    workers = 0
    for path in (data_dir / "prometheus").glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as one:
            shutil.copy(path, one)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=one)
            workers += any(s.value > 0 for family in registry.collect() for s in family.samples
                           if s.name == "idservice_pins_issued_total")
    return workers


def _token(stack: Stack) -> str:
    response = stack.post("/v1/auth/client-token", data=stack.assertion())
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_a_client_assertion_is_used_once_whatever_worker_answers(stack: Stack) -> None:
    form = stack.assertion()
    first = stack.post("/v1/auth/client-token", data=form)
    assert first.status_code == 200, first.text
    for _ in range(5):
        again = stack.post("/v1/auth/client-token", data=form)
        assert again.status_code == 401, again.text
        assert again.json()["error"] == "invalid_client"


def test_a_challenge_nonce_is_consumed_once_across_workers(stack: Stack) -> None:
    challenge = stack.post("/v1/auth/challenge")
    assert challenge.status_code == 200, challenge.text
    nonce = challenge.json()["nonce"]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_client_cert(key, "not-an-officer").public_bytes(Encoding.DER)
    body = {"nonce": nonce, "auth_token": {
        "format": "web-eid:1.0", "algorithm": "ES256",
        "unverifiedCertificate": base64.b64encode(cert).decode(),
        "signature": base64.b64encode(b"\x00" * 64).decode()}}
    first = stack.post("/v1/auth/token", json=body)
    assert first.status_code == 401, first.text
    assert first.json()["code"] != "nonce_not_found", first.text
    for _ in range(3):
        second = stack.post("/v1/auth/token", json=body)
        assert second.status_code == 401, second.text
        assert second.json()["code"] == "nonce_not_found", second.text


def test_logout_on_one_worker_stops_the_token_on_all(stack: Stack) -> None:
    token = _token(stack)
    auth = {"Authorization": f"Bearer {token}"}
    assert stack.post("/v1/pins", json=issue_body("052"), headers=auth).status_code == 201
    assert stack.post("/v1/auth/logout", headers=auth).status_code == 204
    time.sleep(1.5)  # three poll intervals of the other workers
    for _ in range(3 * WORKERS):
        refused = stack.post("/v1/pins", json=issue_body("052"), headers=auth)
        assert refused.status_code == 401, refused.text


def test_the_rate_limit_counts_across_workers(stack: Stack) -> None:
    if time.time() % 60 > 45:  # the fixed window must not roll over in the middle
        time.sleep(60.5 - time.time() % 60)
    form = client_token_form("rate-probe", ec.generate_private_key(ec.SECP256R1()),
                             f"{stack.base}/v1/auth/client-token")
    statuses = [stack.post("/v1/auth/client-token", data=form, source=PROBE).status_code
                for _ in range(RATE_LIMIT)]
    assert statuses == [401] * RATE_LIMIT  # an unknown client, counted all the same
    limited = stack.post("/v1/auth/client-token", data=form, source=PROBE)
    assert limited.status_code == 429, limited.text
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1


def test_pins_from_every_worker_make_one_verifiable_audit_log(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {_token(stack)}"}
    before = stack.sql("SELECT count(*) FROM audit_event WHERE action = 'pin.issue'")[0][0]
    pins = set()
    for _ in range(PINS):
        response = stack.post("/v1/pins", json=issue_body("052"), headers=auth)
        assert response.status_code == 201, response.text
        pins.add(response.json()["pin"])
    assert len(pins) == PINS
    assert _workers_that_issued(stack.data_dir) >= 2  # the requests did reach several workers
    deadline = time.monotonic() + 30
    while True:  # sequenced, integrated and checkpointed up to the last event
        events, logged, tree, checkpoint = stack.sql(
            "SELECT (SELECT count(*) FROM audit_event), (SELECT count(*) FROM audit_log),"
            " (SELECT max(size) FROM audit_tree), (SELECT max(tree_size) FROM audit_checkpoint)")[0]
        if events == logged == tree == checkpoint:
            break
        assert time.monotonic() < deadline, (events, logged, tree, checkpoint)
        time.sleep(0.2)
    rows = stack.sql("SELECT l.index, e.action, e.pin FROM audit_log l"
                     " JOIN audit_event e ON e.id = l.event_id ORDER BY l.index")
    assert [r["index"] for r in rows] == list(range(len(rows)))  # gap-free
    issued = [r["pin"] for r in rows if r["action"] == "pin.issue"]
    assert len(issued) == before + PINS
    assert pins <= set(issued) and len(set(issued)) == len(issued)  # one event per issuance
    result = stack.cli("audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:")

"""kill -9 of the service in the middle of delivering notifications loses nothing (contract 9,
issue 11 item 4): a real `idservice serve` process on a data dir of its own delivers to a slow
real subscriber on loopback; it is killed with SIGKILL while deliveries are in flight, started
again, and every event arrives. Duplicates may come (at least once), each told apart by its
`message-id`: one message id per person's liveBirth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.auth.assertion import client_token_form
from idservice.demo import self_signed_client_cert
from idservice.runtime import DatabaseTarget, resolve_database
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.server import free_port
from tests.support.subscriber import Subscriber

pytestmark = [pytest.mark.embedded_only, pytest.mark.slow]  # two service starts, ~20-40 s

IDSERVICE = [sys.executable, "-m", "idservice.cli"]
BIRTHS = 300
KILL_AFTER = 30  # deliveries received before the kill


@pytest.fixture
def cluster() -> Iterator[tuple[Path, DatabaseTarget]]:
    """The data dir's embedded cluster, started (and stopped) by the test itself, so that the
    killed service leaves it running and the restarted one reuses it."""
    data_dir = Path(tempfile.mkdtemp(prefix="idservice-notify-kill-"))
    target = asyncio.run(resolve_database(Settings(data_dir=data_dir)))
    try:
        yield data_dir, target
    finally:
        target.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _serve(env: dict[str, str], base: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([*IDSERVICE, "serve", "--port", base.rsplit(":", 1)[1]],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               text=True)
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return process
        assert process.poll() is None, "serve exited"
        assert time.monotonic() < deadline, "serve did not become ready"
        time.sleep(0.1)


def _client(env: dict[str, str], data_dir: Path, base: str, client_id: str,
            role: str) -> httpx.Client:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = data_dir / f"{client_id}.pem"
    cert.write_bytes(self_signed_client_cert(key, client_id).public_bytes(Encoding.PEM))
    added = subprocess.run([*IDSERVICE, "clients", "add", "--id", client_id, "--cert", str(cert),
                            "--roles", role, "--jurisdiction", "052"],
                           env=env, capture_output=True, text=True, timeout=120, check=False)
    assert added.returncode == 0, added.stdout + added.stderr
    token = httpx.post(f"{base}/v1/auth/client-token",
                       data=client_token_form(client_id, key, f"{base}/v1/auth/client-token"))
    assert token.status_code == 200, token.text
    return httpx.Client(base_url=base, timeout=60,
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"})


def test_service_killed_mid_delivery_every_event_arrives_after_restart(
        cluster: tuple[Path, DatabaseTarget]) -> None:
    data_dir, _ = cluster
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IDSERVICE_", "SOFTHSM2", "PROMETHEUS_"))}
    env.update({"IDSERVICE_DATA_DIR": str(data_dir), "IDSERVICE_ORIGIN": base,
                "IDSERVICE_ALLOW_DEV_PARTS": "1", "IDSERVICE_NOTIFY_ALLOW_PRIVATE": "1",
                "IDSERVICE_NOTIFY_INTERVAL": "0.05", "IDSERVICE_NOTIFY_CONCURRENCY": "4"})
    service = _serve(env, base)
    subscriber = Subscriber(free_port(), delay=0.05).start()  # a slow subscriber
    try:
        registrar = _client(env, data_dir, base, "kill-registrar", "registrar")
        listener = _client(env, data_dir, base, "kill-subscriber", "subscriber")
        sid = listener.post("/osia/v1/subscriptions", params={
            "topic": "liveBirth", "address": subscriber.address, "policy": "1,600"}).json()["uuid"]
        token = subscriber.confirmation(sid).body["token"]
        assert listener.get("/osia/v1/subscriptions/confirm",
                            params={"token": token}).status_code == 200
        lines = "".join(json.dumps(issue_body("052")) + "\n" for _ in range(BIRTHS))
        batch = registrar.post("/v1/pins:batch", content=lines.encode(),
                               headers={"Content-Type": "application/x-ndjson"})
        assert batch.status_code == 200, batch.text
        pins = {json.loads(line)["pin"] for line in batch.text.splitlines()}
        assert len(pins) == BIRTHS

        subscriber.wait_for(lambda: len(subscriber.of_type("Notification")) >= KILL_AFTER)
        os.kill(service.pid, signal.SIGKILL)  # mid-delivery: requests are in flight
        assert service.wait(timeout=30) == -signal.SIGKILL
        at_kill = {r.event["uin"] for r in subscriber.of_type("Notification")}
        assert KILL_AFTER <= len(at_kill) < BIRTHS

        service = _serve(env, base)
        subscriber.wait_for(lambda: {r.event["uin"] for r in subscriber.of_type(
            "Notification")} >= pins, timeout=120)
    finally:
        subscriber.stop()
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
    received = subscriber.of_type("Notification")
    by_uin: dict[str, set[str]] = {}
    for r in received:
        by_uin.setdefault(r.event["uin"], set()).add(r.headers["message-id"])
    assert set(by_uin) == pins  # every event, nothing else
    assert all(len(ids) == 1 for ids in by_uin.values())  # a duplicate has the same message-id

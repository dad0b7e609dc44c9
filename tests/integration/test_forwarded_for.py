"""The client address behind a proxy (docs/decisions.md, "Client address behind a proxy"):
`X-Forwarded-For` is believed only from a peer in `IDSERVICE_FORWARDED_ALLOW_IPS`, for the audit
`source_ip` and for the per-address rate limit of the login endpoints.

`idservice serve` itself runs (one worker and two: the setting reaches uvicorn on both paths)
on 127.0.0.1, trusting only 127.0.0.2 as its proxy; the tests connect from 127.0.0.2 (the
"proxy") and from 127.0.0.3 (a client that reached the service directly), so the service sees
distinct loopback peers over real TCP."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from idservice.auth.clients import ASSERTION_TYPE
from idservice.runtime import DatabaseTarget
from tests.integration.test_rate_limit import _assert_limited, _fresh_window
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.server import free_port

PROXY, DIRECT = "127.0.0.2", "127.0.0.3"
LIMIT = 3
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    base_url: str
    workers: int

    def client(self, source: str) -> httpx.Client:
        """An HTTP client whose TCP connections come from `source`."""
        return httpx.Client(base_url=self.base_url, timeout=30,
                            transport=httpx.HTTPTransport(local_address=source))


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def served(request: pytest.FixtureRequest, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
           softhsm_token_factory: Callable) -> Iterator[Served]:
    workers: int = request.param
    hsm = softhsm_token_factory("forwarded")
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="idservice-forwarded-test-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IDSERVICE_") and k != "FORWARDED_ALLOW_IPS"}
    env.update({
        "IDSERVICE_DATABASE_URL": database.service_url,
        "IDSERVICE_OWNER_DATABASE_URL": database.owner_url or database.service_url,
        "IDSERVICE_DATA_DIR": str(data_dir), "IDSERVICE_ORIGIN": f"http://127.0.0.1:{port}",
        "IDSERVICE_PKCS11_MODULE": hsm.module_path, "IDSERVICE_PKCS11_TOKEN_LABEL":
        hsm.token_label, "IDSERVICE_PKCS11_PIN": softhsm_dir.user_pin,
        "IDSERVICE_JWT_KEY_LABEL": "forwarded-es256", "IDSERVICE_LOG_LEVEL": "WARNING",
        "IDSERVICE_FORWARDED_ALLOW_IPS": PROXY,
        "IDSERVICE_ALLOW_DEV_PARTS": "1",  # the HSM here is SoftHSM
        "IDSERVICE_AUTH_SOURCE_RATE_LIMIT": str(LIMIT)})
    process = subprocess.Popen(
        [sys.executable, "-m", "idservice.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "serve did not become ready in 120 s"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield Served(base, workers)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


def _test_net() -> str:
    """A fresh documentation address (RFC 5737), so no other run's counters interfere."""
    return f"203.0.113.{secrets.randbelow(254) + 1}" if secrets.randbelow(2) else \
        f"198.51.100.{secrets.randbelow(254) + 1}"


def _failed_login_source_ip(served: Served, source: str, service_db: Callable[..., list],
                            forwarded_for: str | None) -> str:
    """A refused client-token exchange (audited as `auth.login_failed`); its `source_ip`."""
    # (counts of earlier tests in this minute, from the same addresses, are not this one's)
    service_db("DELETE FROM auth_source_window WHERE source = ANY($1::text[])",
               [source, *(forwarded_for or "").replace(" ", "").split(",")])
    request_id = f"fwd-{secrets.token_hex(8)}"
    headers = {"X-Request-Id": request_id}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    with served.client(source) as client:
        response = client.post("/v1/auth/client-token", headers=headers, data={
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": "not.a.jwt", "client_id": f"fwd-{secrets.token_hex(4)}"})
    assert response.status_code == 401, response.text
    rows = service_db("SELECT action, source_ip FROM audit_event WHERE request_id = $1",
                      request_id)
    assert [r["action"] for r in rows] == ["auth.login_failed"]
    source_ip: str = rows[0]["source_ip"]
    return source_ip


def test_the_trusted_proxys_forwarded_address_is_audited(
        served: Served, service_db: Callable[..., list]) -> None:
    client_ip = _test_net()
    assert _failed_login_source_ip(served, PROXY, service_db, client_ip) == client_ip
    # nginx overwrites the header, but a proxy that appends: the address *it* saw wins, not
    # what the client put in front of it
    assert _failed_login_source_ip(served, PROXY, service_db,
                                   f"10.9.9.9, {client_ip}") == client_ip
    # the proxy's own request (no header) is the proxy
    assert _failed_login_source_ip(served, PROXY, service_db, None) == PROXY


def test_an_untrusted_peers_header_is_ignored(served: Served,
                                              service_db: Callable[..., list]) -> None:
    assert _failed_login_source_ip(served, DIRECT, service_db, _test_net()) == DIRECT
    assert _failed_login_source_ip(served, DIRECT, service_db, PROXY) == DIRECT


def test_a_spoofed_header_cannot_evade_the_rate_limit(
        served: Served, service_db: Callable[..., list]) -> None:
    """A direct client sending a new X-Forwarded-For each time is still one address."""
    _fresh_window()
    spoofed = [_test_net() for _ in range(LIMIT + 1)]
    # The addresses are drawn from 508: an earlier test of this minute (behind the trusted
    # proxy, where a forwarded address does count) may have counted one of them (a CI run
    # failed so). Only what this test's requests count is its concern.
    service_db("DELETE FROM auth_source_window WHERE source = ANY($1::text[])",
               [DIRECT, *spoofed])
    with served.client(DIRECT) as client:
        for address in spoofed[:LIMIT]:
            response = client.post("/v1/auth/challenge", headers={"X-Forwarded-For": address})
            assert response.status_code == 200, response.text
        _assert_limited(client.post("/v1/auth/challenge",
                                    headers={"X-Forwarded-For": spoofed[LIMIT]}))
    counted = service_db("SELECT source FROM auth_source_window WHERE source = ANY($1::text[]) "
                         "AND window_start = date_trunc('minute', now())", [DIRECT, *spoofed])
    assert [r["source"] for r in counted] == [DIRECT]


def test_clients_behind_the_trusted_proxy_are_limited_one_by_one(
        served: Served, service_db: Callable[..., list]) -> None:
    """Behind the proxy the limit is per forwarded address: one busy client is limited, the
    next one is not (all of them share the proxy's TCP address)."""
    _fresh_window()
    busy, other = _test_net(), _test_net()
    while other == busy:
        other = _test_net()
    service_db("DELETE FROM auth_source_window WHERE source = ANY($1::text[])", [busy, other])
    with served.client(PROXY) as proxy:
        for _ in range(LIMIT):
            assert proxy.post("/v1/auth/challenge",
                              headers={"X-Forwarded-For": busy}).status_code == 200
        _assert_limited(proxy.post("/v1/auth/challenge", headers={"X-Forwarded-For": busy}))
        assert proxy.post("/v1/auth/challenge",
                          headers={"X-Forwarded-For": other}).status_code == 200


def test_compose_sets_the_setting_serve_reads() -> None:
    """`serve` hands uvicorn IDSERVICE_FORWARDED_ALLOW_IPS explicitly, which overrides
    uvicorn's own FORWARDED_ALLOW_IPS: the compose file must set ours, or every audited
    address would be the nginx container's."""
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    environment = compose["services"]["idservice"]["environment"]
    assert "FORWARDED_ALLOW_IPS" not in environment
    assert environment.get("IDSERVICE_FORWARDED_ALLOW_IPS")

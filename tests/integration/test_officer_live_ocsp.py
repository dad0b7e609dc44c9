"""Live officer tokens and OCSP (contract 3.3: revoking a certificate stops its tokens within
60 s), with the real OCSP responder of `tests/support/ocsp_responder.py`.

A server of its own with short intervals (`IDSERVICE_OCSP_RECHECK_SECONDS` 1 s, so live
tokens stop after 2 s of unconfirmed status), in a module of its own so that its re-checks do
not ask the responder about the certificates of the other OCSP tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from hashlib import sha256

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.ocsp_responder import Behaviour, OcspResponder, with_ocsp_url
from tests.support.officer_server import OfficerLoginEnv, start_officer_env

RECHECK = 1.0


@pytest.fixture(scope="module")
def live_env(settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
             softhsm_token_factory: Callable,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfficerLoginEnv]:
    env = start_officer_env(
        settings, database, softhsm_dir, softhsm_token_factory,
        tmp_path_factory.mktemp("officer-live-pki"), officer_token="officer-live-usb",
        service_token="officer-live-svc", key_label="officer-live-es256",
        ocsp_recheck_seconds=RECHECK, revocation_poll_interval=0.5)
    yield env
    env.server.stop()


@pytest.fixture(scope="module")
def responder(live_env: OfficerLoginEnv) -> Iterator[OcspResponder]:
    running = OcspResponder(live_env.pki.issuing.cert, live_env.pki.issuing.key).start()
    yield running
    running.stop()


def _logged_in(env: OfficerLoginEnv, responder: OcspResponder) -> tuple[x509.Certificate, str]:
    cert = with_ocsp_url(env.cert("good"), env.pki.issuing.key, responder.url)
    env.register(cert)
    response = env.login(cert)
    assert response.status_code == 200, response.text
    return cert, response.json()["access_token"]


def _read(env: OfficerLoginEnv, token: str) -> int:
    with env.server.client(token) as client:
        return client.get("/v1/persons/052000000003", params={"purpose": "probe"}).status_code


def _seconds_until_refused(env: OfficerLoginEnv, token: str, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        status = _read(env, token)
        if status == 401:
            return time.monotonic() - start
        assert status == 404  # authenticated; no such PIN
        time.sleep(0.1)
    raise AssertionError(f"token still accepted after {limit} s")


def _problem(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code, response.json()


def test_revoked_by_ocsp_only_live_token_refused_within_recheck(
        live_env: OfficerLoginEnv, responder: OcspResponder) -> None:
    cert, token = _logged_in(live_env, responder)
    time.sleep(2.5 * RECHECK)  # re-checked at least once, still good: still works
    assert _read(live_env, token) == 404
    asked = len([r for r in responder.requests if r.serial_number == cert.serial_number])
    assert asked >= 2  # the login's request and at least one re-check
    responder.behaviours[cert.serial_number] = Behaviour(status="revoked")
    # One re-check period, one step, one poll of this process: well under the contract's 60 s.
    assert _seconds_until_refused(live_env, token, limit=10 * RECHECK) < 10 * RECHECK
    _problem(live_env.login(cert), "cert_revoked")


def test_unconfirmed_ocsp_status_live_token_refused_after_grace_require(
        live_env: OfficerLoginEnv, responder: OcspResponder) -> None:
    """`require`: no usable answer for two re-check periods stops the token (fail closed)."""
    cert, token = _logged_in(live_env, responder)
    responder.behaviours[cert.serial_number] = Behaviour(status="unknown")
    elapsed = _seconds_until_refused(live_env, token, limit=12 * RECHECK)
    assert elapsed >= RECHECK  # not at the first bad answer: after the grace period
    _problem(live_env.login(cert), "revocation_unavailable")
    responder.behaviours[cert.serial_number] = Behaviour(status="good")
    assert live_env.login(cert).status_code == 200  # confirmed good again
    deadline = time.monotonic() + 5
    while _read(live_env, token) != 404:  # and its tokens work again
        assert time.monotonic() < deadline, "token still refused after a good login"
        time.sleep(0.1)


def test_certificate_without_ocsp_url_not_tracked(live_env: OfficerLoginEnv,
                                                  service_db: Callable) -> None:
    cert = live_env.cert("good")
    live_env.register(cert)
    assert live_env.login(cert).status_code == 200
    rows = service_db("SELECT 1 FROM officer_live_cert WHERE cert_sha256 = $1",
                      sha256(cert.public_bytes(Encoding.DER)).hexdigest())
    assert rows == []

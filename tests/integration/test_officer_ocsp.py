"""Officer login with OCSP (contract 3.1 revocation, 6.1 `IDSERVICE_REVOCATION`).

A real OCSP responder on a loopback port (`tests/support/ocsp_responder.py`) answers for
officer certificates that name it in their AIA extension; two servers share the test PKI and
the officer's SoftHSM token: one with `require` (the default), one with `ocsp-then-crl`.
The CRLs of the test PKI stay fresh throughout, so a refusal under `require` shows that a CRL
does not stand in for a missing OCSP answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.ocsp import OcspUnavailable, check_freshness
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.ocsp_responder import Behaviour, OcspResponder, with_ocsp_url
from tests.support.officer_pki import POLICY_OID
from tests.support.officer_server import (
    OfficerLoginEnv,
    officer_env_fixture,  # noqa: F401 - the fixture
)
from tests.support.server import ServerThread, free_port


@pytest.fixture(scope="module")
def responder(officer_env: OfficerLoginEnv) -> Iterator[OcspResponder]:
    issuing = officer_env.pki.issuing
    running = OcspResponder(issuing.cert, issuing.key).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def fallback_env(officer_env: OfficerLoginEnv, settings: Settings, database: DatabaseTarget,
                 softhsm_dir: SoftHsmDir,
                 softhsm_token_factory: Callable) -> Iterator[OfficerLoginEnv]:
    """A second server on the same PKI files, with `IDSERVICE_REVOCATION=ocsp-then-crl`."""
    files = officer_env.pki.write(officer_env.pki_dir)
    service_token = softhsm_token_factory("officer-ocsp-svc")
    port = free_port()
    fallback_settings = settings.model_copy(update={
        "pkcs11_module": service_token.module_path,
        "pkcs11_token_label": service_token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "officer-ocsp-es256",
        "origin": f"http://127.0.0.1:{port}", "cert_policies": [POLICY_OID],
        "crl_refresh_seconds": 0.2, "revocation": "ocsp-then-crl", **files})
    thread = ServerThread(create_app(fallback_settings, database=database), port).start()
    yield OfficerLoginEnv(thread, officer_env.pki, officer_env.pki_dir, officer_env.officer,
                          database)
    thread.stop()


def _ocsp_cert(env: OfficerLoginEnv, responder: OcspResponder,
               behaviour: Behaviour | None = None, *, url: str | None = None
               ) -> x509.Certificate:
    """A registered officer certificate naming the responder (or `url`) for OCSP."""
    cert = with_ocsp_url(env.cert("good"), env.pki.issuing.key, url or responder.url)
    if behaviour is not None:
        responder.behaviours[cert.serial_number] = behaviour
    env.register(cert)
    return cert


def _problem(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/ocsp"  # nothing listens there


def test_good_ocsp_answer_logs_in_with_our_nonce(officer_env: OfficerLoginEnv,
                                                 responder: OcspResponder) -> None:
    cert = _ocsp_cert(officer_env, responder)
    response = officer_env.login(cert)
    assert response.status_code == 200, response.text
    asked = [r for r in responder.requests if r.serial_number == cert.serial_number]
    assert len(asked) == 1
    nonce = asked[0].extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert len(nonce) == 32


def test_delegated_responder_good_logs_in(officer_env: OfficerLoginEnv,
                                          responder: OcspResponder) -> None:
    cert = _ocsp_cert(officer_env, responder, Behaviour(signer="delegated"))
    assert officer_env.login(cert).status_code == 200


def test_revoked_by_ocsp_cert_revoked(officer_env: OfficerLoginEnv,
                                      responder: OcspResponder) -> None:
    cert = _ocsp_cert(officer_env, responder, Behaviour(status="revoked"))
    _problem(officer_env.login(cert), "cert_revoked")  # no CRL lists it: OCSP decided


def test_revoked_by_delegated_responder_cert_revoked(officer_env: OfficerLoginEnv,
                                                     responder: OcspResponder) -> None:
    cert = _ocsp_cert(officer_env, responder, Behaviour(status="revoked", signer="delegated"))
    _problem(officer_env.login(cert), "cert_revoked")


@pytest.mark.parametrize("behaviour", [
    Behaviour(status="unknown"),
    Behaviour(nonce="wrong"),
    Behaviour(nonce="none"),
    Behaviour(this_update=timedelta(minutes=-10)),
    Behaviour(this_update=timedelta(minutes=10)),
    Behaviour(this_update=timedelta(minutes=-1), next_update=timedelta(seconds=-45)),
    Behaviour(signer="unrelated"),
    Behaviour(status="revoked", signer="unrelated"),
], ids=["unknown", "wrong-nonce", "no-nonce", "stale-this-update", "future-this-update",
        "next-update-passed", "unrelated-signer", "revoked-by-unrelated-signer"])
def test_unusable_ocsp_answer_revocation_unavailable(
        officer_env: OfficerLoginEnv, responder: OcspResponder, behaviour: Behaviour) -> None:
    cert = _ocsp_cert(officer_env, responder, behaviour)
    _problem(officer_env.login(cert), "revocation_unavailable")


def test_responder_down_require_revocation_unavailable_despite_fresh_crl(
        officer_env: OfficerLoginEnv, responder: OcspResponder) -> None:
    cert = _ocsp_cert(officer_env, responder, url=_dead_url())
    _problem(officer_env.login(cert), "revocation_unavailable")


def test_responder_down_ocsp_then_crl_falls_back_to_fresh_crl(
        fallback_env: OfficerLoginEnv, responder: OcspResponder) -> None:
    cert = _ocsp_cert(fallback_env, responder, url=_dead_url())
    response = fallback_env.login(cert)
    assert response.status_code == 200, response.text


def test_wrong_nonce_ocsp_then_crl_falls_back_to_fresh_crl(
        fallback_env: OfficerLoginEnv, responder: OcspResponder) -> None:
    cert = _ocsp_cert(fallback_env, responder, Behaviour(nonce="wrong"))
    assert fallback_env.login(cert).status_code == 200


def test_responder_down_ocsp_then_crl_crl_lists_it_cert_revoked(
        fallback_env: OfficerLoginEnv, responder: OcspResponder) -> None:
    cert = _ocsp_cert(fallback_env, responder, url=_dead_url())
    fallback_env.pki.issuing.revoked.append(cert.serial_number)
    fallback_env.publish_crls()
    for _ in range(50):  # the CRL cache re-reads its files every 0.2 s
        response = fallback_env.login(cert)
        if response.status_code != 200:
            break
    _problem(response, "cert_revoked")


def test_revoked_by_ocsp_ocsp_then_crl_cert_revoked_without_fallback(
        fallback_env: OfficerLoginEnv, responder: OcspResponder) -> None:
    cert = _ocsp_cert(fallback_env, responder, Behaviour(status="revoked"))
    _problem(fallback_env.login(cert), "cert_revoked")



_NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
_SKEW, _AGE = timedelta(seconds=30), timedelta(seconds=120)


@pytest.mark.parametrize(("this_update", "next_update", "usable"), [
    (_NOW - _AGE, None, True),
    (_NOW - _AGE - timedelta(seconds=1), None, False),
    (_NOW + _SKEW, None, True),
    (_NOW + _SKEW + timedelta(seconds=1), None, False),
    (_NOW - _AGE, _NOW - _SKEW, True),
    (_NOW - _AGE, _NOW - _SKEW - timedelta(seconds=1), False),
    (_NOW, _NOW - timedelta(seconds=1), False),  # nextUpdate before thisUpdate
], ids=["oldest-allowed", "too-old", "latest-allowed", "too-far-ahead", "next-update-in-skew",
        "next-update-passed", "next-before-this"])
def test_freshness_boundaries_web_eid_rules(this_update: datetime, next_update: datetime | None,
                                            usable: bool) -> None:
    def judge() -> None:
        check_freshness(this_update, next_update, _NOW, skew=_SKEW, max_age=_AGE)

    if usable:
        judge()
    else:
        with pytest.raises(OcspUnavailable):
            judge()

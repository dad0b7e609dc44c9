"""Officer login with USB-token certificates (contract 3.1): every refusal names its check.

Real parts throughout: a SoftHSM token holding the officer's key (made with pkcs11-tool), a
test PKI made in the test (`tests/support/officer_pki.py`), the service over HTTP with the
session's PostgreSQL, and the audit rows the logins leave.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.auth.operators import x5t_s256
from idservice.auth.webeid import auth_token, signed_data
from tests.support.officer_server import (
    OfficerLoginEnv,
    b64,
    officer_env_fixture,  # noqa: F401 - the fixture
)
from tests.support.officer_tokens import sign_with_pkcs11_tool


def _problem(response, code: str) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


def _last_event(service_db: Callable, actor_id: str) -> dict:
    rows = service_db("SELECT action, outcome, details::text AS details FROM audit_event "
                      "WHERE actor_id = $1 ORDER BY id DESC LIMIT 1", actor_id)
    assert rows, f"no audit event for {actor_id}"
    return dict(rows[0])


def test_challenge_is_44_char_base64_of_32_bytes(officer_env: OfficerLoginEnv) -> None:
    nonces = {officer_env.challenge() for _ in range(3)}
    assert len(nonces) == 3
    for nonce in nonces:
        assert len(nonce) == 44 and len(b64_decode(nonce)) == 32


def b64_decode(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def test_good_certificate_logs_in_and_token_is_bound_to_it(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    cert = officer_env.cert("good")
    operator_id = officer_env.register(cert, roles=("officer", "auditor"), jurisdiction="052")
    response = officer_env.login(cert)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["operator"] == {"id": operator_id, "name": "Test Officer",
                                "roles": ["auditor", "officer"], "jurisdiction": "052"}
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == operator_id and claims["kind"] == "operator"
    assert claims["jur"] == "052" and claims["roles"] == ["auditor", "officer"]
    assert claims["cnf"] == {"x5t#S256": x5t_s256(cert.public_bytes(Encoding.DER))}
    with officer_env.server.client(body["access_token"]) as client:
        read = client.get("/v1/persons/052000000001", params={"purpose": "login test"})
    assert read.status_code == 404, read.text  # authenticated and authorised; no such PIN
    event = _last_event(service_db, operator_id)
    assert event["action"] == "person.read"
    login_events = service_db("SELECT outcome FROM audit_event WHERE actor_id = $1 AND "
                              "action = 'auth.login'", operator_id)
    assert [r["outcome"] for r in login_events] == ["success"]


def test_nonce_is_single_use_second_use_nonce_not_found(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    token = officer_env.signed_token(cert, nonce)
    assert officer_env.post_token(nonce, token).status_code == 200
    _problem(officer_env.post_token(nonce, token), "nonce_not_found")


def test_unknown_nonce_nonce_not_found(officer_env: OfficerLoginEnv) -> None:
    nonce = b64(secrets.token_bytes(32))
    _problem(officer_env.post_token(nonce, officer_env.signed_token(officer_env.cert("good"),
                                                                    nonce)), "nonce_not_found")


def test_expired_nonce_nonce_expired(officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    nonce = b64(secrets.token_bytes(32))
    service_db("INSERT INTO auth_nonce (nonce_sha256, expires_at) VALUES ($1, $2)",
               hashlib.sha256(nonce.encode()).hexdigest(),
               datetime.now(UTC) - timedelta(seconds=1))
    _problem(officer_env.post_token(nonce, officer_env.signed_token(officer_env.cert("good"),
                                                                    nonce)), "nonce_expired")


@pytest.mark.parametrize("mutate", [
    lambda t: t | {"format": "web-eid:0.9"},
    lambda t: t | {"algorithm": "HS256"},
    lambda t: t | {"unverifiedCertificate": "not base64!"},
    lambda t: t | {"unverifiedCertificate": b64(b"\x30\x03\x02\x01\x01")},
    lambda t: t | {"signature": 42},
    lambda t: t | {"extra": "field"},
    lambda t: {k: v for k, v in t.items() if k != "signature"},
], ids=["format", "algorithm", "cert-not-base64", "cert-not-x509", "signature-not-string",
        "unknown-field", "missing-signature"])
def test_malformed_token_token_parse(officer_env: OfficerLoginEnv, mutate: Callable) -> None:
    nonce = officer_env.challenge()
    token = mutate(officer_env.signed_token(officer_env.cert("good"), nonce))
    _problem(officer_env.post_token(nonce, token), "token_parse")


@pytest.mark.parametrize(("kind", "code"), [
    ("expired", "cert_expired"),
    ("not_yet_valid", "cert_not_yet_valid"),
    ("wrong_eku", "cert_wrong_purpose"),
    ("no_digital_signature", "cert_wrong_purpose"),
    ("missing_policy", "cert_policy"),
    ("untrusted", "cert_untrusted"),
    ("root_issued", "cert_untrusted"),
])
def test_certificate_refused_with_its_code_and_audited(
        officer_env: OfficerLoginEnv, service_db: Callable, kind: str, code: str) -> None:
    cert = officer_env.cert(kind)  # type: ignore[arg-type]
    operator_id = officer_env.register(cert)  # registered, so the refusal is the certificate's
    _problem(officer_env.login(cert), code)
    event = _last_event(service_db, operator_id)
    assert event["action"] == "auth.login_failed" and event["outcome"] == code


def test_certificate_without_eku_is_accepted(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("no_eku")
    officer_env.register(cert)
    assert officer_env.login(cert).status_code == 200


def test_revoked_certificate_cert_revoked(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("revoked")
    officer_env.register(cert)
    officer_env.publish_crls()
    time.sleep(0.8)  # the CRL cache re-reads its files every 0.2 s
    _problem(officer_env.login(cert), "cert_revoked")


def test_stale_crl_revocation_unavailable(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    officer_env.publish_crls(stale=True)
    try:
        time.sleep(0.8)
        _problem(officer_env.login(cert), "revocation_unavailable")
    finally:
        officer_env.publish_crls()
        time.sleep(0.8)
    assert officer_env.login(cert).status_code == 200


def test_signature_for_another_origin_signature_invalid(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    token = officer_env.signed_token(cert, nonce, origin="https://phishing.example")
    _problem(officer_env.post_token(nonce, token), "signature_invalid")


@pytest.mark.parametrize("mutate", [
    lambda t: t | {"signature": b64(b"\x00" * 64)},
    lambda t: t | {"signature": b64(b"\x01" * 63)},
    lambda t: t | {"algorithm": "ES384"},
    lambda t: t | {"algorithm": "RS256"},
], ids=["zero", "short", "wrong-curve", "rsa-for-ec-key"])
def test_bad_signature_signature_invalid(officer_env: OfficerLoginEnv, mutate: Callable) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    _problem(officer_env.post_token(nonce, mutate(officer_env.signed_token(cert, nonce))),
             "signature_invalid")


def test_unregistered_certificate_operator_unknown_audits_fingerprint(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    cert = officer_env.cert("good", name="Nobody Registered")
    _problem(officer_env.login(cert), "operator_unknown")
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    event = _last_event(service_db, f"sha256:{fingerprint}")
    assert event["action"] == "auth.login_failed" and event["outcome"] == "operator_unknown"
    assert "Nobody Registered" in event["details"]


def _wait_for_401(officer_env: OfficerLoginEnv, token: str, limit: float = 10.0) -> float:
    start = time.monotonic()
    with officer_env.server.client(token) as client:
        while time.monotonic() - start < limit:
            response = client.get("/v1/persons/052000000002", params={"purpose": "probe"})
            if response.status_code == 401:
                return time.monotonic() - start
            assert response.status_code == 404, response.text
            time.sleep(0.1)
    raise AssertionError("token still accepted")


def test_disabled_operator_refused_and_live_token_stops(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    cert = officer_env.cert("good")
    operator_id = officer_env.register(cert)
    response = officer_env.login(cert)
    assert response.status_code == 200, response.text
    service_db("UPDATE operator SET enabled = false WHERE id = $1", operator_id)
    _problem(officer_env.login(cert), "operator_disabled")
    assert _wait_for_401(officer_env, response.json()["access_token"]) < 60


def test_revoking_certificate_stops_live_token(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    response = officer_env.login(cert)
    assert response.status_code == 200, response.text
    officer_env.pki.issuing.revoked.append(cert.serial_number)
    officer_env.publish_crls()
    assert _wait_for_401(officer_env, response.json()["access_token"]) < 60


def test_pkcs11_tool_signature_logs_in(officer_env: OfficerLoginEnv, tmp_path) -> None:
    """An independent client (OpenSC pkcs11-tool, host-side SHA-256 + CKM_ECDSA) is accepted."""
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    signature = sign_with_pkcs11_tool(
        officer_env.officer, signed_data(officer_env.origin, nonce, "ES256"), tmp_path)
    assert len(signature) == 64
    response = officer_env.post_token(
        nonce, auth_token(cert.public_bytes(Encoding.DER), "ES256", signature))
    assert response.status_code == 200, response.text

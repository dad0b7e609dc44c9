"""Officer login with USB-token certificates (contract 3.1): every refusal names its check.

Real parts throughout: a SoftHSM token holding the officer's key (made with pkcs11-tool), a
test PKI made in the test (`tests/support/officer_pki.py`), the service over HTTP with the
session's PostgreSQL, and the audit rows the logins leave.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import SecretStr

from hsm.client import sign_with_token
from idservice.app import create_app
from idservice.auth.challenge import NonceKey, make_nonce
from idservice.auth.operators import x5t_s256
from idservice.auth.webeid import auth_token, signed_data
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.conftest import TOKEN_TTL
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.officer_pki import POLICY_OID, CertKind
from tests.support.officer_server import (
    OfficerLoginEnv,
    b64,
    officer_env_fixture,  # noqa: F401 - the fixture
)
from tests.support.officer_tokens import (
    RsaOfficerToken,
    provision_rsa,
    sign_with_pkcs11_tool,
    write_certificate,
)
from tests.support.server import ServerThread, free_port


def _problem(response, code: str) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


def _last_event(service_db: Callable, actor_id: str) -> dict:
    rows = service_db("SELECT actor_type, action, outcome, details::text AS details "
                      "FROM audit_event "
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


def test_good_es256_login_200_token_bound_to_certificate(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    cert = officer_env.cert("good")
    operator_id = officer_env.register(cert, roles=("officer", "auditor"), jurisdiction="052")
    response = officer_env.login(cert)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == TOKEN_TTL
    assert body["operator"] == {"id": operator_id, "name": "Test Officer",
                                "roles": ["auditor", "officer"], "jurisdiction": "052"}
    assert officer_env.signed_token(cert, "x" * 44)["algorithm"] == "ES256"
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


def test_concurrent_logins_go_through_the_login_groups(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    """Six officers logging in at once: each is answered 200 as itself with its own event, and
    the route's statement went through the worker's login groups (auth/login_group.py)."""
    certs = [officer_env.cert("good") for _ in range(6)]
    ids = [officer_env.register(cert) for cert in certs]
    prepared = []
    for cert in certs:
        nonce = officer_env.challenge()
        prepared.append((nonce, officer_env.signed_token(cert, nonce)))
    logins = officer_env.server.services.officer_login._coalescer
    assert logins is not None
    before = logins.members
    with ThreadPoolExecutor(len(prepared)) as pool:
        responses = list(pool.map(lambda p: officer_env.post_token(*p), prepared))
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert [r.json()["operator"]["id"] for r in responses] == ids
    assert logins.members - before == 6
    events = service_db("SELECT actor_id FROM audit_event WHERE action = 'auth.login' "
                        "AND outcome = 'success' AND actor_id = ANY($1)", ids)
    assert sorted(e["actor_id"] for e in events) == sorted(ids)


def test_replayed_nonce_nonce_not_found(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    token = officer_env.signed_token(cert, nonce)
    assert officer_env.post_token(nonce, token).status_code == 200
    _problem(officer_env.post_token(nonce, token), "nonce_not_found")


def test_used_nonce_with_a_later_check_failing_nonce_not_found(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    """The checks without the database run before the nonce is recorded as used; a refusal by
    one of them still answers the used nonce first (contract order), naming no operator."""
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    assert officer_env.post_token(nonce, officer_env.signed_token(cert, nonce)).status_code == 200
    forged = officer_env.signed_token(cert, nonce, origin="https://phishing.example")
    _problem(officer_env.post_token(nonce, forged), "nonce_not_found")
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    event = _last_event(service_db, f"sha256:{fingerprint}")
    assert (event["action"], event["outcome"]) == ("auth.login_failed", "nonce_not_found")


def test_failure_inside_login_statement_leaves_nonce_unused_and_nothing_written(
        officer_env: OfficerLoginEnv, service_db: Callable, owner_db: Callable,
        owner_ddl: Callable[[str], None]) -> None:
    """Nonce, operator, limit, event: one statement (officer_login()); when its event insert
    fails, the nonce is not used up, no limit is counted, no event or token exists."""
    cert = officer_env.cert("good")
    operator_id = officer_env.register(cert)
    suffix = secrets.token_hex(4)
    owner_db(f"""CREATE FUNCTION fail_login_{suffix}() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.action = 'auth.login' AND NEW.actor_id = '{operator_id}' THEN
                     RAISE EXCEPTION 'injected failure of the login event';
                   END IF;
                   RETURN NEW;
                 END $$""")
    owner_ddl(f"CREATE TRIGGER fail_login_{suffix} BEFORE INSERT ON audit_event FOR EACH ROW "
             f"EXECUTE FUNCTION fail_login_{suffix}()")
    nonce = officer_env.challenge()
    token = officer_env.signed_token(cert, nonce)
    try:
        failed = officer_env.post_token(nonce, token)
    finally:
        owner_ddl(f"DROP TRIGGER fail_login_{suffix} ON audit_event")
        owner_db(f"DROP FUNCTION fail_login_{suffix}()")
    assert failed.status_code == 500, failed.text
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert "access_token" not in failed.text
    digest = hashlib.sha256(nonce.encode()).hexdigest()
    assert service_db("SELECT 1 FROM auth_nonce_used WHERE nonce_sha256 = $1", digest) == []
    assert service_db("SELECT 1 FROM auth_rate_limit WHERE key = $1", operator_id) == []
    assert service_db("SELECT 1 FROM audit_event WHERE actor_id = $1", operator_id) == []
    again = officer_env.post_token(nonce, token)  # the nonce was not used up
    assert again.status_code == 200, again.text
    assert service_db("SELECT action FROM audit_event WHERE actor_id = $1",
                      operator_id)[0]["action"] == "auth.login"


def test_unknown_nonce_nonce_not_found(officer_env: OfficerLoginEnv) -> None:
    nonce = b64(secrets.token_bytes(32))
    _problem(officer_env.post_token(nonce, officer_env.signed_token(officer_env.cert("good"),
                                                                    nonce)), "nonce_not_found")


def _server_nonce_key(service_db: Callable) -> NonceKey:
    """The key every process makes nonces with (auth_secret), to make one that expired."""
    return NonceKey(service_db("SELECT secret FROM auth_secret")[0]["secret"])


def test_expired_nonce_nonce_expired(officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    nonce = make_nonce(_server_nonce_key(service_db), int(time.time()) - 1)
    _problem(officer_env.post_token(nonce, officer_env.signed_token(officer_env.cert("good"),
                                                                    nonce)), "nonce_expired")


def test_nonce_with_forged_expiry_nonce_not_found(officer_env: OfficerLoginEnv) -> None:
    """The expiry is covered by the MAC: moving it later makes the nonce unknown."""
    raw = bytearray(base64.b64decode(officer_env.challenge()))
    raw[0:4] = (int(time.time()) + 86_400).to_bytes(4, "big")
    nonce = b64(bytes(raw))
    _problem(officer_env.post_token(nonce, officer_env.signed_token(officer_env.cert("good"),
                                                                    nonce)), "nonce_not_found")


def test_challenges_store_nothing(officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    """Contract 7: asking for challenges cannot grow the database (stateless nonces)."""
    before = service_db("SELECT count(*) AS n FROM auth_nonce_used")[0]["n"]
    for _ in range(20):
        officer_env.challenge()
    assert service_db("SELECT count(*) AS n FROM auth_nonce_used")[0]["n"] == before


def test_malformed_base64_token_parse(officer_env: OfficerLoginEnv) -> None:
    nonce = officer_env.challenge()
    token = officer_env.signed_token(officer_env.cert("good"), nonce)
    _problem(officer_env.post_token(nonce, token | {"signature": "not base64!"}), "token_parse")


def test_malformed_der_token_parse(officer_env: OfficerLoginEnv) -> None:
    nonce = officer_env.challenge()
    token = officer_env.signed_token(officer_env.cert("good"), nonce)
    der = b"\x30\x03\x02\x01\x01"  # valid DER, not a certificate
    _problem(officer_env.post_token(nonce, token | {"unverifiedCertificate": b64(der)}),
             "token_parse")


def test_malformed_json_body_malformed_request(officer_env: OfficerLoginEnv) -> None:
    """Not JSON at all: contract section 1 (`400 malformed_request`), no nonce consumed."""
    nonce = officer_env.challenge()
    response = httpx.post(f"{officer_env.origin}/v1/auth/token",
                          content=b'{"nonce": "' + nonce.encode() + b'", "auth_token": {',
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_request"
    token = officer_env.signed_token(officer_env.cert("good"), nonce)
    _problem(officer_env.post_token(nonce, token), "operator_unknown")  # nonce still there


def test_malformed_token_json_token_parse(officer_env: OfficerLoginEnv) -> None:
    """Valid JSON whose `auth_token` does not have the web-eid:1.0 shape."""
    nonce = officer_env.challenge()
    token = officer_env.signed_token(officer_env.cert("good"), nonce)
    _problem(officer_env.post_token(nonce, token | {"signature": {"r": 1, "s": 2}}),
             "token_parse")


def test_10kb_token_token_parse(officer_env: OfficerLoginEnv) -> None:
    """Over Web eID's 10,000-character token limit (well under the 64 KiB body cap, so not
    413): refused as a parse error before anything else is looked at."""
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    token = officer_env.signed_token(cert, nonce)  # otherwise a good token
    padded = token | {"appVersion": "1." + "0" * (10 * 1024)}
    response = officer_env.post_token(nonce, padded)
    assert "longer than 10000" in _problem(response, "token_parse")["detail"]


@pytest.mark.parametrize("mutate", [
    lambda t: t | {"format": "web-eid:0.9"},
    lambda t: t | {"algorithm": "HS256"},
    lambda t: t | {"unverifiedCertificate": "not base64!"},
    lambda t: t | {"signature": 42},
    lambda t: t | {"extra": "field"},
    lambda t: {k: v for k, v in t.items() if k != "signature"},
], ids=["format", "algorithm", "cert-not-base64", "signature-not-string", "unknown-field",
        "missing-signature"])
def test_malformed_token_variants_token_parse(officer_env: OfficerLoginEnv,
                                              mutate: Callable) -> None:
    nonce = officer_env.challenge()
    token = mutate(officer_env.signed_token(officer_env.cert("good"), nonce))
    _problem(officer_env.post_token(nonce, token), "token_parse")


def _refused_and_audited(officer_env: OfficerLoginEnv, service_db: Callable, kind: CertKind,
                         code: str) -> None:
    """Refused before the path validated: the event names the certificate, not the operator
    registered for it (contract 7)."""
    cert = officer_env.cert(kind)
    operator_id = officer_env.register(cert)  # registered, so the refusal is the certificate's
    _problem(officer_env.login(cert), code)
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    event = _last_event(service_db, f"sha256:{fingerprint}")
    assert event["action"] == "auth.login_failed" and event["outcome"] == code
    assert event["actor_type"] == "certificate"
    assert not service_db("SELECT 1 FROM audit_event WHERE actor_id = $1", operator_id)


def _copy_of(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Self-signed with one's own key, copying `cert`'s issuer name, serial, subject,
    validity and extensions: every check before the path passes."""
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
               .serial_number(cert.serial_number).public_key(key.public_key())
               .not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc))
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(key, hashes.SHA256())


def test_copy_of_officers_issuer_and_serial_is_audited_as_its_certificate(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    """Contract 7: a failed login names an operator only once the path validated."""
    real = officer_env.cert("good")
    operator_id = officer_env.register(real)
    forged = _copy_of(real, ec.generate_private_key(ec.SECP256R1()))
    assert (forged.issuer, forged.serial_number) == (real.issuer, real.serial_number)
    nonce = officer_env.challenge()
    token = officer_env.signed_token(real, nonce) | {
        "unverifiedCertificate": b64(forged.public_bytes(Encoding.DER))}
    _problem(officer_env.post_token(nonce, token), "cert_untrusted")
    fingerprint = hashlib.sha256(forged.public_bytes(Encoding.DER)).hexdigest()
    rows = service_db("SELECT actor_type, actor_id, outcome FROM audit_event "
                      "WHERE details ->> 'cert_sha256' = $1", fingerprint)
    assert [tuple(r) for r in rows] == [("certificate", f"sha256:{fingerprint}",
                                         "cert_untrusted")]
    assert not service_db("SELECT 1 FROM audit_event WHERE actor_id = $1", operator_id)


def test_revoked_officer_certificate_names_the_operator(officer_env: OfficerLoginEnv,
                                                        service_db: Callable) -> None:
    """The path validated (the CA issued it), so the refusal names whom it belongs to."""
    cert = officer_env.cert("revoked")
    operator_id = officer_env.register(cert)
    officer_env.publish_crls()
    time.sleep(0.8)  # the CRL cache re-reads its files every 0.2 s
    _problem(officer_env.login(cert), "cert_revoked")
    event = _last_event(service_db, operator_id)
    assert (event["actor_type"], event["outcome"]) == ("operator", "cert_revoked")


def test_expired_cert_expired(officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    _refused_and_audited(officer_env, service_db, "expired", "cert_expired")


def test_not_yet_valid_cert_not_yet_valid(officer_env: OfficerLoginEnv,
                                          service_db: Callable) -> None:
    _refused_and_audited(officer_env, service_db, "not_yet_valid", "cert_not_yet_valid")


def test_untrusted_root_cert_untrusted(officer_env: OfficerLoginEnv,
                                       service_db: Callable) -> None:
    _refused_and_audited(officer_env, service_db, "untrusted", "cert_untrusted")


def test_issuing_ca_not_in_allow_list_cert_untrusted(officer_env: OfficerLoginEnv,
                                                     service_db: Callable) -> None:
    """A valid path to the configured root, but issued by a CA not in IDSERVICE_ISSUING_CAS."""
    _refused_and_audited(officer_env, service_db, "root_issued", "cert_untrusted")


def test_key_usage_without_digital_signature_cert_wrong_purpose(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    _refused_and_audited(officer_env, service_db, "no_digital_signature", "cert_wrong_purpose")


def test_eku_without_client_auth_cert_wrong_purpose(officer_env: OfficerLoginEnv,
                                                    service_db: Callable) -> None:
    _refused_and_audited(officer_env, service_db, "wrong_eku", "cert_wrong_purpose")


def test_missing_required_policy_cert_policy(officer_env: OfficerLoginEnv,
                                             service_db: Callable) -> None:
    _refused_and_audited(officer_env, service_db, "missing_policy", "cert_policy")


def test_certificate_without_eku_is_accepted(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("no_eku")
    officer_env.register(cert)
    assert officer_env.login(cert).status_code == 200


def test_revoked_by_crl_cert_revoked(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("revoked")
    officer_env.register(cert)
    officer_env.publish_crls()
    time.sleep(0.8)  # the CRL cache re-reads its files every 0.2 s
    _problem(officer_env.login(cert), "cert_revoked")


def test_replayed_older_crl_keeps_the_officer_revoked(officer_env: OfficerLoginEnv) -> None:
    """Someone on the path to the CRL source replays yesterday's CRL, validly signed and
    within its nextUpdate but from before the revocation: it is refused (lower CRL number,
    older thisUpdate) and the revocation stands (issue 9 item 4)."""
    cert = officer_env.cert("revoked")
    officer_env.register(cert)
    officer_env.publish_crls()
    time.sleep(0.8)  # the CRL cache re-reads its files every 0.2 s
    _problem(officer_env.login(cert), "cert_revoked")
    issuing = officer_env.pki.issuing
    yesterday = dataclasses.replace(issuing, revoked=[]).crl(
        officer_env.pki.now - timedelta(days=1), lifetime=timedelta(days=3))
    (officer_env.pki_dir / "officer.crl").write_bytes(yesterday.public_bytes(Encoding.DER))
    try:
        time.sleep(0.8)
        _problem(officer_env.login(cert), "cert_revoked")
    finally:
        officer_env.publish_crls()


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


def test_signature_over_another_origin_signature_invalid(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    token = officer_env.signed_token(cert, nonce, origin="https://phishing.example")
    _problem(officer_env.post_token(nonce, token), "signature_invalid")


def test_signature_over_another_nonce_signature_invalid(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    signed_for, presented = officer_env.challenge(), officer_env.challenge()
    token = officer_env.signed_token(cert, signed_for)
    _problem(officer_env.post_token(presented, token), "signature_invalid")


def test_algorithm_not_matching_key_signature_invalid(officer_env: OfficerLoginEnv) -> None:
    """ES384 named for a P-256 key (the signature itself is a good ES256 one)."""
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    token = officer_env.signed_token(cert, nonce) | {"algorithm": "ES384"}
    _problem(officer_env.post_token(nonce, token), "signature_invalid")


@pytest.mark.parametrize("mutate", [
    lambda t: t | {"signature": b64(b"\x00" * 64)},
    lambda t: t | {"signature": b64(b"\x01" * 63)},
    lambda t: t | {"algorithm": "RS256"},
    lambda t: t | {"algorithm": "PS256"},
], ids=["zero", "short", "rs256-for-ec-key", "ps256-for-ec-key"])
def test_bad_signature_variants_signature_invalid(officer_env: OfficerLoginEnv,
                                                  mutate: Callable) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    _problem(officer_env.post_token(nonce, mutate(officer_env.signed_token(cert, nonce))),
             "signature_invalid")


def test_unknown_operator_operator_unknown_audits_fingerprint(
        officer_env: OfficerLoginEnv, service_db: Callable) -> None:
    cert = officer_env.cert("good", name="Nobody Registered")
    _problem(officer_env.login(cert), "operator_unknown")
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    event = _last_event(service_db, f"sha256:{fingerprint}")
    assert event["action"] == "auth.login_failed" and event["outcome"] == "operator_unknown"
    assert event["actor_type"] == "certificate"
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


def test_disabled_operator_operator_disabled(officer_env: OfficerLoginEnv,
                                            admin_db: Callable) -> None:
    cert = officer_env.cert("good")
    operator_id = officer_env.register(cert)
    admin_db("UPDATE operator SET enabled = false WHERE id = $1", operator_id)
    _problem(officer_env.login(cert), "operator_disabled")


def test_token_used_after_operator_disabled_unauthenticated(
        officer_env: OfficerLoginEnv, admin_db: Callable) -> None:
    cert = officer_env.cert("good")
    operator_id = officer_env.register(cert)
    response = officer_env.login(cert)
    assert response.status_code == 200, response.text
    admin_db("UPDATE operator SET enabled = false WHERE id = $1", operator_id)
    assert _wait_for_401(officer_env, response.json()["access_token"]) < 60
    with officer_env.server.client(response.json()["access_token"]) as client:
        refused = client.get("/v1/persons/052000000002", params={"purpose": "probe"})
    assert refused.json()["code"] == "unauthenticated"


def test_revoking_certificate_stops_live_token(officer_env: OfficerLoginEnv) -> None:
    cert = officer_env.cert("good")
    officer_env.register(cert)
    response = officer_env.login(cert)
    assert response.status_code == 200, response.text
    officer_env.pki.issuing.revoked.append(cert.serial_number)
    officer_env.publish_crls()
    assert _wait_for_401(officer_env, response.json()["access_token"]) < 60


def test_pkcs11_tool_es256_login_200(officer_env: OfficerLoginEnv, tmp_path) -> None:
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


@pytest.fixture(scope="module")
def rsa_officer(officer_env: OfficerLoginEnv, softhsm_token_factory: Callable,
                tmp_path_factory: pytest.TempPathFactory) -> RsaOfficerToken:
    """A second USB token whose key is RSA-2048, generated on it by pkcs11-tool."""
    workdir = tmp_path_factory.mktemp("officer-rsa")
    officer = provision_rsa(softhsm_token_factory(f"officer-rsa-{secrets.token_hex(3)}"),
                            workdir)
    write_certificate(officer, officer_env.pki.officer_cert(officer.public_key, "rsa holder"),
                      workdir)
    return officer


def test_good_rsa_pss_login_200(officer_env: OfficerLoginEnv,
                                rsa_officer: RsaOfficerToken) -> None:
    """PS256 (RSASSA-PSS, MGF1-SHA256, 32-byte salt) by the token (CKM_SHA256_RSA_PKCS_PSS)."""
    cert = officer_env.pki.officer_cert(rsa_officer.public_key, "RSA officer")
    officer_env.register(cert)
    nonce = officer_env.challenge()
    signed = sign_with_token(
        rsa_officer.token.module_path, rsa_officer.token.token_label,
        rsa_officer.token.user_pin, lambda alg: signed_data(officer_env.origin, nonce, alg),
        algorithm="PS256")
    assert signed.algorithm == "PS256" and len(signed.signature) == 256
    response = officer_env.post_token(
        nonce, auth_token(cert.public_bytes(Encoding.DER), "PS256", signed.signature))
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"x5t#S256": x5t_s256(cert.public_bytes(Encoding.DER))}


@pytest.fixture(scope="module")
def no_crl_env(officer_env: OfficerLoginEnv, settings: Settings, database: DatabaseTarget,
               softhsm_dir: SoftHsmDir, softhsm_token_factory: Callable
               ) -> Iterator[OfficerLoginEnv]:
    """A server on the same PKI whose IDSERVICE_CRLS has the root's CRL only: nothing
    covers officer certificates (which name no OCSP responder)."""
    files = officer_env.pki.write(officer_env.pki_dir)
    service_token = softhsm_token_factory("officer-nocrl-svc")
    port = free_port()
    no_crl_settings = settings.model_copy(update={
        "pkcs11_module": service_token.module_path,
        "pkcs11_token_label": service_token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "officer-nocrl-es256",
        "origin": f"http://127.0.0.1:{port}", "cert_policies": [POLICY_OID],
        **files, "crls": [str(officer_env.pki_dir / "root.crl")]})
    thread = ServerThread(create_app(no_crl_settings, database=database), port).start()
    yield OfficerLoginEnv(thread, officer_env.pki, officer_env.pki_dir, officer_env.officer,
                          database)
    thread.stop()


def test_no_revocation_data_revocation_unavailable(no_crl_env: OfficerLoginEnv) -> None:
    cert = no_crl_env.cert("good")
    no_crl_env.register(cert)
    _problem(no_crl_env.login(cert), "revocation_unavailable")


def test_revoked_after_caching_refused_after_crl_refresh_cert_revoked(
        officer_env: OfficerLoginEnv) -> None:
    """The path validation of the first login is cached; a CRL refresh that lists the
    certificate makes the next login validate again and refuse it."""
    cert = officer_env.cert("good")
    officer_env.register(cert)
    assert officer_env.login(cert).status_code == 200
    assert officer_env.login(cert).status_code == 200  # (served from the cache)
    officer_env.pki.issuing.revoked.append(cert.serial_number)
    officer_env.publish_crls()
    time.sleep(0.8)  # the CRL cache re-reads its files every 0.2 s
    _problem(officer_env.login(cert), "cert_revoked")

"""The pure login checks, one at a time, with software keys (the HTTP tests use SoftHSM)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.auth.checks.base import LoginAttempt
from idservice.auth.checks.certificate import CertificateCheck
from idservice.auth.checks.policies import PolicyCheck
from idservice.auth.checks.purpose import PurposeCheck
from idservice.auth.checks.signature import SignatureCheck
from idservice.auth.checks.token_format import TokenFormatCheck
from idservice.auth.checks.validity import ValidityCheck
from idservice.auth.login_errors import (
    CertExpired,
    CertNotYetValid,
    CertPolicy,
    CertWrongPurpose,
    LoginFailed,
    SignatureInvalid,
    TokenParse,
)
from idservice.auth.webeid import auth_token, signed_data
from tests.support.officer_pki import POLICY_OID, OfficerPki

ORIGIN = "https://id.example.gov.vn"
NONCE = base64.b64encode(b"n" * 32).decode()
NOW = datetime(2026, 3, 1, tzinfo=UTC)
PKI = OfficerPki.build(NOW)


def _sign(key: Any, alg: str) -> bytes:
    data = signed_data(ORIGIN, NONCE, alg)
    hash_alg = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
    if alg.startswith("ES"):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg.startswith("PS"):
        return key.sign(data, padding.PSS(padding.MGF1(hash_alg), hash_alg.digest_size),
                        hash_alg)
    return key.sign(data, padding.PKCS1v15(), hash_alg)


async def _run(checks: list[Any], token: dict[str, Any], now: datetime = NOW) -> LoginAttempt:
    attempt = LoginAttempt(pool=None, nonce=NONCE, raw_token=token, now=now)  # type: ignore[arg-type]
    for check in [TokenFormatCheck(), CertificateCheck(), *checks]:
        await check.run(attempt)
    return attempt


def _token(key: Any, alg: str, cert: x509.Certificate | None = None) -> dict[str, Any]:
    cert = cert or PKI.officer_cert(key.public_key(), "unit")
    return auth_token(cert.public_bytes(Encoding.DER), alg, _sign(key, alg))


KEYS = {"ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "ES512": ec.generate_private_key(ec.SECP521R1()),
        "RSA": rsa.generate_private_key(65537, 2048)}


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "PS256", "PS384", "RS256",
                                 "RS512"])
async def test_each_algorithm_verifies(alg: str) -> None:
    key = KEYS.get(alg, KEYS["RSA"])
    await _run([SignatureCheck(ORIGIN)], _token(key, alg))


@pytest.mark.parametrize(("alg", "signed_as"), [("PS256", "RS256"), ("RS256", "PS256"),
                                                ("ES384", "ES256")])
async def test_algorithm_mismatch_signature_invalid(alg: str, signed_as: str) -> None:
    key = KEYS.get(signed_as, KEYS["RSA"])
    token = _token(key, signed_as) | {"algorithm": alg}
    with pytest.raises(SignatureInvalid) as raised:
        await _run([SignatureCheck(ORIGIN)], token)
    assert raised.value.code == "signature_invalid"


async def test_other_nonce_signature_invalid() -> None:
    token = _token(KEYS["ES256"], "ES256")
    attempt = LoginAttempt(pool=None, nonce=NONCE[:-2] + "A=", raw_token=token, now=NOW)  # type: ignore[arg-type]
    for check in (TokenFormatCheck(), CertificateCheck()):
        await check.run(attempt)
    with pytest.raises(SignatureInvalid):
        await SignatureCheck(ORIGIN).run(attempt)


@pytest.mark.parametrize(("kind", "check", "error"), [
    ("wrong_eku", PurposeCheck(), CertWrongPurpose),
    ("no_digital_signature", PurposeCheck(), CertWrongPurpose),
    ("missing_policy", PolicyCheck(frozenset({POLICY_OID})), CertPolicy),
    ("expired", ValidityCheck(timedelta(seconds=30)), CertExpired),
    ("not_yet_valid", ValidityCheck(timedelta(seconds=30)), CertNotYetValid),
])
async def test_certificate_checks_raise_their_error(kind: str, check: Any,
                                                    error: type[LoginFailed]) -> None:
    key = KEYS["ES256"]
    cert = PKI.officer_cert(key.public_key(), kind, kind)  # type: ignore[arg-type]
    with pytest.raises(error) as raised:
        await _run([check], _token(key, "ES256", cert))
    assert raised.value.status == 401 and raised.value.code == error.code


async def test_skew_is_allowed_at_the_validity_edges() -> None:
    key = KEYS["ES256"]
    cert = PKI.officer_cert(key.public_key(), "edge")
    skew = timedelta(seconds=30)
    await _run([ValidityCheck(skew)], _token(key, "ES256", cert),
               now=cert.not_valid_before_utc - skew)
    with pytest.raises(CertNotYetValid):
        await _run([ValidityCheck(skew)], _token(key, "ES256", cert),
                   now=cert.not_valid_before_utc - skew - timedelta(seconds=1))


async def test_policy_check_off_when_none_configured() -> None:
    key = KEYS["ES256"]
    cert = PKI.officer_cert(key.public_key(), "p", "missing_policy")
    await _run([PolicyCheck(frozenset())], _token(key, "ES256", cert))


@pytest.mark.parametrize("token", [
    {}, {"format": "web-eid:1.0"}, {"format": "web-eid:1.0", "unverifiedCertificate": "",
                                    "algorithm": "ES256", "signature": "AA=="},
])
async def test_incomplete_token_token_parse(token: dict[str, Any]) -> None:
    with pytest.raises(TokenParse):
        await _run([], token)

"""The cache of successful path validations (`auth/validation_cache.py`), on an injected clock:
what it saves, and that it never outlives its TTL, a CRL's nextUpdate, a certificate's notAfter
or the CRL set it was made with. Real pyhanko validations throughout (counted)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator.errors import RevokedError, ValidationError

from idservice.auth.checks import pkix
from idservice.auth.checks.base import LoginAttempt, ValidatorConfig
from idservice.auth.checks.certificate import CertificateCheck
from idservice.auth.checks.pkix import PathValidator
from idservice.auth.checks.revocation import RevocationCheck
from idservice.auth.checks.token_format import TokenFormatCheck
from idservice.auth.checks.trust import TrustCheck
from idservice.auth.login_errors import CertRevoked, CertUntrusted, RevocationUnavailable
from idservice.auth.ocsp import OcspClient
from idservice.auth.validation_cache import ValidationCache
from idservice.auth.webeid import auth_token
from idservice.devpki import officer_certificate, pki_name
from tests.support.officer_pki import OfficerPki

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)
KEY = ec.generate_private_key(ec.SECP256R1())


@dataclass
class Crls:
    """A CRL source like `CrlCache`: a list of DER CRLs and a version bumped on change."""

    pki: OfficerPki
    lifetime: timedelta = timedelta(days=1)
    der: list[bytes] = field(default_factory=list)
    version: int = 0

    def publish(self) -> None:
        self.der = [self.pki.issuing.crl(NOW, lifetime=self.lifetime).public_bytes(Encoding.DER),
                    self.pki.root.crl(NOW).public_bytes(Encoding.DER)]
        self.version += 1

    def crls(self) -> list[bytes]:
        return self.der


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """The moments at which pyhanko really validated."""
    seen: list[datetime] = []
    real = pkix.validate_path

    async def counting(config: ValidatorConfig, cert: Any, moment: datetime,
                       **kwargs: Any) -> Any:
        seen.append(moment)
        return await real(config, cert, moment, **kwargs)

    monkeypatch.setattr(pkix, "validate_path", counting)
    yield seen


def _setup(lifetime: timedelta = timedelta(days=1)) -> tuple[OfficerPki, Crls, PathValidator]:
    pki = OfficerPki.build(NOW)
    crls = Crls(pki, lifetime)
    crls.publish()
    config = ValidatorConfig(
        origin="https://id.example.gov.vn",
        trust_anchors=(asn1_x509.Certificate.load(pki.root.cert.public_bytes(Encoding.DER)),),
        issuing_cas=(asn1_x509.Certificate.load(pki.issuing.cert.public_bytes(Encoding.DER)),),
        allowed_issuer_sha256=None, required_policies=frozenset(),
        clock_skew=timedelta(seconds=30))
    return pki, crls, PathValidator(config, crls, ValidationCache(TTL))


def _asn1(cert: Any) -> tuple[asn1_x509.Certificate, str]:
    der = cert.public_bytes(Encoding.DER)
    return asn1_x509.Certificate.load(der), hashlib.sha256(der).hexdigest()


async def test_second_validation_within_ttl_is_a_hit(validations: list[datetime]) -> None:
    pki, _, paths = _setup()
    cert, sha = _asn1(pki.officer_cert(KEY.public_key(), "cached"))
    first = await paths.crl_checked(cert, sha, NOW)
    second = await paths.crl_checked(cert, sha, NOW + timedelta(seconds=59))
    assert [c.dump() for c in first] == [c.dump() for c in second]
    assert validations == [NOW]


async def test_cache_does_not_outlive_its_ttl(validations: list[datetime]) -> None:
    pki, _, paths = _setup()
    cert, sha = _asn1(pki.officer_cert(KEY.public_key(), "ttl"))
    await paths.crl_checked(cert, sha, NOW)
    await paths.crl_checked(cert, sha, NOW + TTL)  # the TTL is exclusive: validated again
    assert validations == [NOW, NOW + TTL]


async def test_clock_going_back_misses(validations: list[datetime]) -> None:
    pki, _, paths = _setup()
    cert, sha = _asn1(pki.officer_cert(KEY.public_key(), "back"))
    await paths.crl_checked(cert, sha, NOW)
    await paths.crl_checked(cert, sha, NOW - timedelta(seconds=1))
    assert len(validations) == 2


async def test_cache_does_not_outlive_the_crl_next_update(validations: list[datetime]) -> None:
    pki, _, paths = _setup(lifetime=timedelta(seconds=20))  # nextUpdate = NOW + 20 s
    cert, sha = _asn1(pki.officer_cert(KEY.public_key(), "crl bound"))
    await paths.crl_checked(cert, sha, NOW)
    await paths.crl_checked(cert, sha, NOW + timedelta(seconds=19))
    assert len(validations) == 1
    await paths.crl_checked(cert, sha, NOW + timedelta(seconds=21))  # past nextUpdate: again
    assert len(validations) == 2  # (still fresh within the 30 s clock skew)
    with pytest.raises(ValidationError):  # past nextUpdate + skew: no fresh CRL
        await paths.crl_checked(cert, sha, NOW + timedelta(seconds=51))
    assert len(validations) == 3


async def test_cache_does_not_outlive_the_certificate(validations: list[datetime]) -> None:
    pki, _, paths = _setup()
    short = officer_certificate(pki.issuing, KEY.public_key(), pki_name("short-lived"),
                                not_before=NOW - timedelta(days=1),
                                not_after=NOW + timedelta(seconds=10))
    cert, sha = _asn1(short)
    await paths.crl_checked(cert, sha, NOW)
    await paths.crl_checked(cert, sha, NOW + timedelta(seconds=11))
    assert len(validations) == 2


async def test_revoked_after_caching_refused_after_crl_refresh(
        validations: list[datetime]) -> None:
    pki, crls, paths = _setup()
    officer = pki.officer_cert(KEY.public_key(), "revoked later")
    cert, sha = _asn1(officer)
    await paths.crl_checked(cert, sha, NOW)
    pki.issuing.revoked.append(officer.serial_number)
    await paths.crl_checked(cert, sha, NOW + timedelta(seconds=1))  # CRL set not refreshed yet
    crls.publish()  # the refresh brings a new CRL set: the cached result is unreachable
    with pytest.raises(RevokedError):
        await paths.crl_checked(cert, sha, NOW + timedelta(seconds=2))
    with pytest.raises(RevokedError):  # failures are not cached
        await paths.crl_checked(cert, sha, NOW + timedelta(seconds=3))
    assert len(validations) == 3


async def test_trust_only_results_survive_a_crl_refresh(validations: list[datetime]) -> None:
    pki, crls, paths = _setup()
    cert, sha = _asn1(pki.officer_cert(KEY.public_key(), "trust"))
    await paths.trusted(cert, sha, NOW)
    crls.publish()
    await paths.trusted(cert, sha, NOW + timedelta(seconds=1))
    assert len(validations) == 1


async def _login_checks(paths: PathValidator, cert: Any, now: datetime) -> LoginAttempt:
    """Token format -> certificate -> trust -> revocation, as the validator orders them."""
    token = auth_token(cert.public_bytes(Encoding.DER), "ES256", b"\x00" * 64)
    attempt = LoginAttempt(pool=None, nonce="n", raw_token=token, now=now)  # type: ignore[arg-type]
    ocsp = OcspClient(timeout=1, skew=timedelta(seconds=30), max_age=timedelta(seconds=120))
    for check in (TokenFormatCheck(), CertificateCheck(), TrustCheck(paths),
                  RevocationCheck(paths, ocsp)):
        await check.run(attempt)
    return attempt


async def test_one_validation_per_login_and_codes_in_contract_order(
        validations: list[datetime]) -> None:
    pki, crls, paths = _setup(lifetime=timedelta(seconds=20))
    good = pki.officer_cert(KEY.public_key(), "order")
    await _login_checks(paths, good, NOW)
    assert len(validations) == 1  # path and CRLs in one validation
    await _login_checks(paths, good, NOW + timedelta(seconds=5))
    assert len(validations) == 1  # cached
    with pytest.raises(RevocationUnavailable):  # stale CRL: the path alone is fine
        await _login_checks(paths, good, NOW + timedelta(seconds=60))
    untrusted = pki.officer_cert(KEY.public_key(), "untrusted", "untrusted")
    with pytest.raises(CertUntrusted):  # untrusted and no fresh CRL: the trust code first
        await _login_checks(paths, untrusted, NOW + timedelta(seconds=60))
    revoked = pki.officer_cert(KEY.public_key(), "revoked", "revoked")
    crls.publish()
    with pytest.raises(CertRevoked):
        await _login_checks(paths, revoked, NOW)

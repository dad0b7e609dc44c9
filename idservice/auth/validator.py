"""Officer login validation (contract 3.1), built once from settings and run as an ordered list
of checks, Web eID style: each check is one module under `auth/checks/` raising one error type.

Order: nonce (consumed first) -> token format -> certificate decodes -> purpose (keyUsage, EKU)
-> policies -> validity now -> path to a trust anchor + issuing-CA allow-list -> revocation ->
signature -> operator mapped and enabled. The configuration is frozen when the validator is
built, so a bad trust-anchor file stops start-up instead of failing logins later.

`validate` runs every check that needs no database: the nonce's MAC and expiry, then format
to signature. Whether the nonce was already used and which operator the certificate maps to
are decided in the login's one statement (`officer_login()`, migrations/0040, called by
`auth/officer_login.py`) when all of them passed; when one of them refuses, the nonce is
recorded as used first (a used nonce is the answer then, as check 1 would have said).

Path validation runs once per login (path and CRLs together, in the trust check); a successful
result is reused for the same certificate a short while (`auth/validation_cache.py`,
`IDSERVICE_VALIDATION_CACHE_SECONDS`). Everything else runs on every login.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.auth.challenge import NonceKey
from idservice.auth.checks.base import LoginAttempt, LoginCheck, ValidatorConfig
from idservice.auth.checks.certificate import CertificateCheck
from idservice.auth.checks.nonce import NonceCheck
from idservice.auth.checks.pkix import CrlSource, PathValidator
from idservice.auth.checks.policies import PolicyCheck
from idservice.auth.checks.purpose import PurposeCheck
from idservice.auth.checks.revocation import RevocationCheck
from idservice.auth.checks.signature import SignatureCheck
from idservice.auth.checks.token_format import TokenFormatCheck
from idservice.auth.checks.trust import TrustCheck
from idservice.auth.checks.validity import ValidityCheck
from idservice.auth.login_errors import LoginFailed
from idservice.auth.ocsp import OcspClient
from idservice.auth.validation_cache import ValidationCache
from idservice.clock import Clock
from idservice.logging import get_logger
from idservice.settings import Settings

__all__ = ["LoginValidator", "OfficerPkiFiles", "load_certificates"]

_log = get_logger(__name__)


def load_certificates(paths: Sequence[str]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            certs.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read PEM certificates from {path}: {exc}") from exc
    return certs


class OfficerPkiFiles:
    """The trust anchors and issuing CAs named by the settings, read once."""

    def __init__(self, settings: Settings) -> None:
        self.trust_anchors = load_certificates(settings.trust_anchors)
        self.issuing_cas = load_certificates(settings.issuing_cas)

    @property
    def all_cas(self) -> list[x509.Certificate]:
        return [*self.trust_anchors, *self.issuing_cas]


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


class LoginValidator:
    def __init__(self, nonce: NonceCheck, checks: Sequence[LoginCheck], clock: Clock,
                 trust: TrustCheck | None = None,
                 revocation: RevocationCheck | None = None) -> None:
        self.nonce = nonce
        self.checks = tuple(checks)
        self._clock = clock
        # The trust and revocation checks, also used outside logins (auth/live_certs.py).
        self.trust = trust
        self.revocation = revocation

    @classmethod
    def from_settings(cls, settings: Settings, pki: OfficerPkiFiles, crls: CrlSource,
                      clock: Clock, nonce_key: NonceKey) -> LoginValidator:
        config = ValidatorConfig(
            origin=settings.origin,
            trust_anchors=tuple(_asn1(c) for c in pki.trust_anchors),
            issuing_cas=tuple(_asn1(c) for c in pki.issuing_cas),
            allowed_issuer_sha256=frozenset(
                hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest()
                for c in pki.issuing_cas) or None,
            required_policies=frozenset(settings.cert_policies),
            clock_skew=timedelta(seconds=settings.clock_skew_seconds),
        )
        if not config.trust_anchors:
            _log.warning("officer_login_without_trust_anchors",
                         hint="set IDSERVICE_TRUST_ANCHORS; every officer login is refused")
        if settings.revocation == "ocsp-then-crl":
            _log.warning("revocation_policy_ocsp_then_crl",
                         hint="a fresh CRL is used when OCSP gives no usable answer")
        ocsp = OcspClient(timeout=settings.ocsp_timeout_seconds, skew=config.clock_skew,
                          max_age=timedelta(seconds=settings.ocsp_max_age_seconds))
        paths = PathValidator(config, crls, ValidationCache(
            timedelta(seconds=settings.validation_cache_seconds)))
        trust = TrustCheck(paths)
        revocation = RevocationCheck(paths, ocsp, policy=settings.revocation)
        return cls(NonceCheck(nonce_key, clock), [
            TokenFormatCheck(),
            CertificateCheck(),
            PurposeCheck(),
            PolicyCheck(config.required_policies),
            ValidityCheck(config.clock_skew),
            trust,
            revocation,
            SignatureCheck(config.origin),
        ], clock, trust, revocation)

    def attempt(self, pool: asyncpg.Pool, nonce: str,
                raw_token: Mapping[str, Any]) -> LoginAttempt:
        return LoginAttempt(pool=pool, nonce=nonce, raw_token=raw_token, now=self._clock.now())

    async def validate(self, attempt: LoginAttempt) -> LoginAttempt:
        """Run the checks that need no database in order; the first failure raises its
        `LoginFailed` subtype, after the nonce was recorded as used (`consume_nonce`)."""
        await self.nonce.run(attempt)  # nothing to record for a nonce that is not ours
        try:
            for check in self.checks:
                await check.run(attempt)
        except LoginFailed:
            await self.consume_nonce(attempt)
            raise
        return attempt

    async def consume_nonce(self, attempt: LoginAttempt) -> None:
        """Record the nonce as used; if it already was, that is the refusal, and nothing
        after check 1 counts as checked (`LoginAttempt.forget`)."""
        try:
            await self.nonce.consume(attempt)
        except LoginFailed:
            attempt.forget()
            raise

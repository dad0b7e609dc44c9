"""What the checks share: the validator's frozen configuration and the attempt being checked."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from idservice.auth.challenge import VerifiedNonce

__all__ = ["CrlOutcome", "LoginAttempt", "LoginCheck", "MappedOperator", "ParsedToken",
           "ValidatorConfig"]


@dataclass(frozen=True)
class ValidatorConfig:
    origin: str
    trust_anchors: tuple[asn1_x509.Certificate, ...]
    issuing_cas: tuple[asn1_x509.Certificate, ...]
    allowed_issuer_sha256: frozenset[str] | None  # None: every CA under the anchors
    required_policies: frozenset[str]
    clock_skew: timedelta


@dataclass(frozen=True)
class ParsedToken:
    algorithm: str
    certificate_der: bytes
    signature: bytes
    app_version: str | None


@dataclass(frozen=True)
class MappedOperator:
    id: str
    name: str
    roles: list[str]
    jurisdiction: str


@dataclass(frozen=True)
class CrlOutcome:
    """The CRL part of the trust check's single validation, for the revocation check to
    report in its turn: `error` None means fresh CRLs say not revoked."""

    error: Exception | None


@dataclass
class LoginAttempt:
    """The state one login accumulates as it passes the checks, in order."""

    pool: asyncpg.Pool  # for the nonce's refusal only: the checks need no database
    nonce: str
    raw_token: Mapping[str, Any]
    now: datetime
    verified_nonce: VerifiedNonce | None = None  # MAC and expiry checked
    token: ParsedToken | None = None
    certificate: x509.Certificate | None = None
    asn1_certificate: asn1_x509.Certificate | None = None
    path: Sequence[asn1_x509.Certificate] = field(default_factory=tuple)
    crl_outcome: CrlOutcome | None = None  # set by the trust check for CRL-checked certificates
    operator: MappedOperator | None = None

    def forget(self) -> None:
        """Back to "only the nonce was looked at": a refusal for a used nonce names whom the
        token claims, as check 1's refusal did (`officer_login._failure_actor`)."""
        self.token = None
        self.certificate = None
        self.asn1_certificate = None
        self.path = ()
        self.crl_outcome = None
        self.operator = None

    @property
    def parsed(self) -> ParsedToken:
        if self.token is None:
            raise RuntimeError("token format check has not run")
        return self.token

    @property
    def cert(self) -> x509.Certificate:
        if self.certificate is None:
            raise RuntimeError("certificate check has not run")
        return self.certificate

    @property
    def cert_sha256(self) -> str:
        return hashlib.sha256(self.parsed.certificate_der).hexdigest()

    @property
    def asn1_cert(self) -> asn1_x509.Certificate:
        if self.asn1_certificate is None:
            raise RuntimeError("certificate check has not run")
        return self.asn1_certificate


class LoginCheck(Protocol):
    name: str

    async def run(self, attempt: LoginAttempt) -> None:
        """Raise the check's `LoginFailed` subtype, or return to let the next check run."""
        ...


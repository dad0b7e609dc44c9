"""Officer login, as one service (contract 3.1): the route only parses the body and answers.

`challenge` hands out a nonce. `login` runs the validator's checks in the contract's order, and
then, in this order: on failure, one `auth.login_failed` event naming the operator only when the
certificate's path validated (otherwise the certificate), written in its own transaction before
the refusal leaves; on success, an access token
bound to the certificate (`cnf.x5t#S256`), one `auth.login` event and the certificate's entry in
the live-certificate list (its OCSP status is re-checked while the token lives), in one
transaction. Both endpoints are rate limited per source address before any other work, a
verified operator per operator, and failures whose signature did not verify are recorded up
to the per-source cap (`auth/rate_limit.py`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from cryptography import x509

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.challenge import Challenge, NonceKey
from idservice.auth.checks.base import LoginAttempt
from idservice.auth.live_certs import track_live_certificate
from idservice.auth.login_errors import LoginFailed, OperatorDisabled, OperatorUnknown
from idservice.auth.operators import certificate_identity, x5t_s256
from idservice.auth.principal import Actor
from idservice.auth.rate_limit import AuthLimits
from idservice.auth.tokens import AccessTokenIssuer, IssuedToken
from idservice.auth.validator import LoginValidator
from idservice.clock import Clock
from idservice.db.types import Conn
from idservice.queries import officers as q

__all__ = ["OfficerLogin", "OfficerSession"]

_METHOD = "web-eid"
# Refusals after the signature verified: the attempt proved the certificate's key.
_AFTER_SIGNATURE = (OperatorUnknown, OperatorDisabled)
_MAX_CERT_CHARS = 16 * 1024


@dataclass(frozen=True)
class OfficerSession:
    """What a successful login hands back: the access token and who it is for."""

    token: IssuedToken
    operator_id: str
    name: str
    roles: frozenset[str]
    jurisdiction: str


class OfficerLogin:
    """Officer login's service: built once at start-up, called by the routes (`api/` and the
    web pages' login script goes through the same `POST /v1/auth/token`)."""

    def __init__(self, pool: asyncpg.Pool, validator: LoginValidator,
                 issuer: AccessTokenIssuer, clock: Clock, limits: AuthLimits,
                 nonce_key: NonceKey) -> None:
        self._pool = pool
        self._validator = validator
        self._issuer = issuer
        self._clock = clock
        self._limits = limits
        self._nonce_key = nonce_key

    async def challenge(self, rctx: RequestContext) -> Challenge:
        """A stateless nonce (`auth/challenge.py`): nothing is stored."""
        await self._limits.admit(rctx)
        return self._nonce_key.challenge(self._clock)

    async def check_rate(self, rctx: RequestContext) -> None:
        """Counted before the body is even read (contract 7: before any other work)."""
        await self._limits.admit(rctx)

    async def login(self, rctx: RequestContext, nonce: str,
                    auth_token: Mapping[str, Any]) -> OfficerSession:
        """Validate a signed web-eid:1.0 token; raises the check's `LoginFailed` when refused."""
        async with self._pool.acquire() as conn:
            attempt = self._validator.attempt(conn, nonce, auth_token)
            try:
                await self._validator.validate(attempt)
            except LoginFailed as error:
                actor, details = await _failure_actor(conn, attempt)
                await self._limits.record_failure(
                    conn, dataclasses.replace(rctx, actor=actor), AuditEvent(
                        "auth.login_failed", error.code,
                        details={"method": _METHOD, "reason": error.detail, **details}),
                    verified=isinstance(error, _AFTER_SIGNATURE))
                raise
            operator = attempt.operator
            assert operator is not None
            await self._limits.check_identity(rctx, "operator", operator.id)
            cert_der = attempt.parsed.certificate_der
            issued = await self._issuer.issue(
                kind="operator", subject=operator.id, roles=operator.roles,
                jurisdiction=operator.jurisdiction,
                extra={"cnf": {"x5t#S256": x5t_s256(cert_der)}})
            async with conn.transaction():
                await record(conn, dataclasses.replace(rctx, actor=Actor("operator", operator.id)),
                             [AuditEvent("auth.login", "success", details={
                                 "method": _METHOD, "jti": issued.claims["jti"],
                                 "cert_sha256": attempt.cert_sha256})])
                await track_live_certificate(
                    conn, attempt.cert, cert_der, attempt.cert_sha256,
                    datetime.fromtimestamp(issued.claims["exp"], UTC))
        return OfficerSession(issued, operator.id, operator.name, frozenset(operator.roles),
                              operator.jurisdiction)


def _claimed_certificate(raw: Mapping[str, Any]) -> x509.Certificate | None:
    """The certificate a refused token carried, if it decodes: names the failed attempt."""
    value = raw.get("unverifiedCertificate")
    if not isinstance(value, str) or len(value) > _MAX_CERT_CHARS:
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


async def _failure_actor(conn: Conn, attempt: LoginAttempt) -> tuple[Actor, dict[str, Any]]:
    """Whom a refused login names (contract 7): the operator only once the certificate's path
    to our CAs validated (anyone can copy an officer's issuer and serial into a certificate of
    their own); before that, the certificate itself."""
    cert = attempt.certificate or _claimed_certificate(attempt.raw_token)
    if cert is None:
        return Actor("anonymous", "unknown"), {}
    identity = certificate_identity(cert)
    details = {"cert_sha256": identity.sha256, "subject": cert.subject.rfc4514_string()}
    if attempt.operator is not None:
        return Actor("operator", attempt.operator.id), details
    if attempt.path:  # validated: this certificate is one our CA issued
        row = await conn.fetchrow(q.FIND_OPERATOR, identity.sha256, identity.issuer,
                                  identity.serial)
        if row is not None:  # the operator this (possibly stolen or revoked) certificate names
            return Actor("operator", row["id"]), details
    return Actor("certificate", f"sha256:{identity.sha256}"), details

"""Officer login, as one service (contract 3.1): the route only parses the body and answers.

`challenge` hands out a nonce. `login` runs the validator's checks that need no database in the
contract's order (nonce MAC and expiry, format ... signature), then one statement,
`officer_login()` (migrations/0040), one transaction: the nonce recorded as used, the operator
mapped by certificate and enabled, the per-operator limit counted, the `auth.login` event
(naming the token's `jti`) and, for a certificate with an OCSP responder, its entry in the
live-certificate list. Only then is the access token (`cnf.x5t#S256`) signed in the HSM; if
that fails, an `auth.login_failed` event (`unavailable`) says the token was never handed out.

On refusal: one `auth.login_failed` event naming the operator only when the certificate's path
validated (otherwise the certificate), in its own transaction before the refusal leaves, the
nonce used up in any case. Both endpoints are rate limited per source address before any
other work, a verified operator per operator, and failures whose signature did not verify are
recorded up to the per-source cap (`auth/rate_limit.py`).
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
from idservice.audit.recorder import event_columns, record
from idservice.auth.challenge import NONCE_USED, Challenge, NonceKey
from idservice.auth.checks.base import LoginAttempt, MappedOperator
from idservice.auth.login_errors import (
    LoginFailed,
    NonceNotFound,
    OperatorDisabled,
    OperatorUnknown,
)
from idservice.auth.login_group import LoginArgs, LoginCoalescer, login_alone
from idservice.auth.ocsp import ocsp_url
from idservice.auth.operators import certificate_identity, x5t_s256
from idservice.auth.principal import Actor
from idservice.auth.rate_limit import AuthLimits, source_key
from idservice.auth.tokens import AccessTokenIssuer, IssuedToken, TokenStamp
from idservice.auth.validator import LoginValidator
from idservice.clock import Clock
from idservice.db.types import Conn
from idservice.logging import get_logger
from idservice.queries import officers as q

__all__ = ["OfficerLogin", "OfficerSession"]

_log = get_logger(__name__)

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
                 nonce_key: NonceKey, coalescer: LoginCoalescer | None = None) -> None:
        self._pool = pool
        self._coalescer = coalescer
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
        stamp = self._issuer.stamp()
        # No connection is held meanwhile: the checks need none, and the login's statement may
        # wait for its group (auth/login_group.py), which takes a connection of its own.
        attempt = self._validator.attempt(self._pool, nonce, auth_token)
        try:
            await self._validator.validate(attempt)
            operator = await self._commit(rctx, attempt, stamp)
        except LoginFailed as error:
            async with self._pool.acquire() as conn:
                actor, details = await _failure_actor(conn, attempt)
                await self._limits.record_failure(
                    conn, dataclasses.replace(rctx, actor=actor), AuditEvent(
                        "auth.login_failed", error.code,
                        details={"method": _METHOD, "reason": error.detail, **details}),
                    verified=isinstance(error, _AFTER_SIGNATURE))
            raise
        try:
            issued = await self._issuer.issue(
                kind="operator", subject=operator.id, roles=operator.roles,
                jurisdiction=operator.jurisdiction,
                extra={"cnf": {"x5t#S256": x5t_s256(attempt.parsed.certificate_der)}},
                stamp=stamp)
        except Exception:
            await self._token_not_handed_out(rctx, operator, attempt, stamp)
            raise
        return OfficerSession(issued, operator.id, operator.name, frozenset(operator.roles),
                              operator.jurisdiction)

    async def _commit(self, rctx: RequestContext, attempt: LoginAttempt,
                      stamp: TokenStamp) -> MappedOperator:
        """The login's one statement (`officer_login()`): nonce used, operator mapped and
        enabled, per-operator limit, `auth.login` event, live certificate; all or nothing.
        With a coalescer, in one statement with the other logins of this worker waiting at
        the same moment (the same outcome)."""
        assert attempt.verified_nonce is not None
        cert = attempt.cert
        identity = certificate_identity(cert)
        columns = event_columns(dataclasses.replace(rctx, actor=Actor("operator", "")), [
            AuditEvent("auth.login", "success", details={
                "method": _METHOD, "jti": stamp.jti, "cert_sha256": identity.sha256})])
        live = ocsp_url(cert) is not None  # OCSP may revoke it while the token lives
        args: LoginArgs = (
            attempt.verified_nonce.sha256, attempt.verified_nonce.expires,
            identity.sha256, identity.issuer, identity.serial, self._limits.identity_limit,
            source_key(rctx.source_ip), columns.request_id, columns.source_ip,
            columns.details[0], attempt.parsed.certificate_der if live else None,
            datetime.fromtimestamp(stamp.exp, UTC))
        row = await (self._coalescer.submit(args) if self._coalescer is not None
                     else login_alone(self._pool, args))
        outcome = row["outcome"]
        if outcome == "nonce_used":
            attempt.forget()
            raise NonceNotFound(NONCE_USED)
        if outcome == "operator_unknown":
            raise OperatorUnknown("no operator is registered for this certificate")
        if outcome == "operator_disabled":
            raise OperatorDisabled(f"operator {row['id']} is disabled")
        if outcome == "rate_limited":
            raise self._limits.identity_refusal(int(row["retry_after"]))
        attempt.operator = MappedOperator(id=row["id"], name=row["name"],
                                          roles=list(row["roles"]),
                                          jurisdiction=row["jurisdiction"])
        return attempt.operator

    async def _token_not_handed_out(self, rctx: RequestContext, operator: MappedOperator,
                                    attempt: LoginAttempt, stamp: TokenStamp) -> None:
        """The `auth.login` event is written before the HSM signs: when signing fails, say in
        the log that this `jti` was never handed out (best effort: the HSM is the failure)."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await record(conn, dataclasses.replace(rctx, actor=Actor("operator", operator.id)),
                             [AuditEvent("auth.login_failed", "unavailable", details={
                                 "method": _METHOD, "jti": stamp.jti,
                                 "cert_sha256": attempt.cert_sha256,
                                 "reason": "the access token could not be signed; "
                                           "none was handed out"})])
        except Exception as exc:  # the caller gets the signing failure (503) anyway
            _log.error("login_unavailable_event_failed", error=type(exc).__name__,
                       jti=stamp.jti)


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

"""Machine-client login (contract 3.2): a verified `private_key_jwt` assertion becomes an
access token, and every attempt is one audit event (`auth.login` / `auth.login_failed`).

The route (`api/auth.py`) parses the OAuth form and answers RFC 6749 bodies; this is the rest.
"""

from __future__ import annotations

import dataclasses

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.client_pki import ClientPki
from idservice.auth.clients import ClientAuthError, claimed_client_id, verify_client_assertion
from idservice.auth.principal import Actor
from idservice.auth.rate_limit import AuthLimits
from idservice.auth.tokens import AccessTokenIssuer, IssuedToken
from idservice.clock import Clock

__all__ = ["ClientLogin"]

_METHOD = "private_key_jwt"


class ClientLogin:
    def __init__(self, pool: asyncpg.Pool, issuer: AccessTokenIssuer, clock: Clock, *,
                 audience: str, max_lifetime: int, limits: AuthLimits,
                 pki: ClientPki | None = None) -> None:
        self._pool = pool
        self._pki = pki
        self._issuer = issuer
        self._clock = clock
        self._audience = audience
        self._max_lifetime = max_lifetime
        self._limits = limits

    async def login(self, rctx: RequestContext, assertion: str,
                    client_id: str | None) -> IssuedToken:
        """Raises `ClientAuthError` (already audited) when the assertion is refused, and
        `RateLimited` when the verified client is over its limit. The route has counted the
        request against its source already (`AuthLimits.admit`)."""
        actor = Actor("client", (client_id or claimed_client_id(assertion) or "unknown")[:64])
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                client = await verify_client_assertion(
                    conn, assertion=assertion, client_id=client_id, audience=self._audience,
                    clock=self._clock, max_lifetime=self._max_lifetime)
                await self._limits.check_identity(rctx, "client", client.id)
                if self._pki is not None:
                    await self._pki.check(client.cert_pem, self._clock.now())
                issued = await self._issuer.issue(
                    kind="client", subject=client.id, roles=client.roles,
                    jurisdiction=client.jurisdiction,
                    extra={"scope": " ".join(sorted(client.roles))},
                    not_after=client.cert_not_after)
                await record(conn, dataclasses.replace(rctx, actor=Actor("client", client.id)), [
                    AuditEvent("auth.login", "success",
                               details={"method": _METHOD, "jti": issued.claims["jti"]})])
        except ClientAuthError as error:
            async with self._pool.acquire() as conn:
                await self._limits.record_failure(
                    conn, dataclasses.replace(rctx, actor=actor),
                    AuditEvent("auth.login_failed", error.error,
                               details={"method": _METHOD, "reason": error.description}),
                    verified=error.verified)
            raise
        return issued

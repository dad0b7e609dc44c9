"""The life of a presented access token: accepted (signature, claims, not revoked) or revoked
by its holder's logout.

One place for both, because the JSON API (Bearer header) and the web pages (session cookie)
carry the same token and must accept and end it identically (contract 3.3).
"""

from __future__ import annotations

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Principal
from idservice.auth.token_revocation import RevocationState
from idservice.auth.tokens import AccessTokenVerifier

__all__ = ["authenticate", "revoke_token"]


def authenticate(verifier: AccessTokenVerifier, revocation: RevocationState,
                 token: str) -> Principal:
    """The principal of a presented access token; raises `Unauthenticated` otherwise."""
    principal = verifier.verify(token)
    revocation.check(principal)
    return principal


async def revoke_token(pool: asyncpg.Pool, revocation: RevocationState, principal: Principal,
                       rctx: RequestContext) -> None:
    """Logout: revoke the caller's own token, audited in the same transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await revocation.revoke(principal, conn)
        await record(conn, rctx, [AuditEvent("auth.logout", "success",
                                             details={"jti": principal.token_id})])

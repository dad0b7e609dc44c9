"""Which live tokens must stop working: logged-out tokens and disabled clients or operators.

Every service process polls the database (every `interval` seconds, default 5) instead of asking
it on every request, so a revocation or a disabled subject takes effect everywhere within one
interval - well inside the contract's 60 s - and request handling costs no extra round trip.
A logout in this process takes effect here at once.

Polls follow commit order, not insert order (migrations/0017): each poll reads, in one
snapshot, the revocations of transactions at or above the previous snapshot's xmin, so a
logout that commits after a later one is still seen by the next poll.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from idservice.auth.principal import Principal
from idservice.background import PeriodicTask
from idservice.db.types import Conn
from idservice.errors import Unauthenticated
from idservice.queries import auth as q

__all__ = ["RevocationState"]



class RevocationState:
    def __init__(self, pool: asyncpg.Pool, interval: float = 5.0) -> None:
        self._pool = pool
        self._interval = interval
        self._revoked: dict[str, float] = {}  # jti -> expiry (epoch seconds)
        self._disabled: frozenset[tuple[str, str]] = frozenset()
        self._revoked_certs: frozenset[str] = frozenset()  # x5t#S256 of revoked certificates
        self._revoked_clients: frozenset[str] = frozenset()  # ids: certificate revoked by a CRL
        self._horizon = "0"  # xid8: the xmin of the previous poll's snapshot
        self._rounds = 0
        self._loop = PeriodicTask("revocation-poller", interval, self._poll, sleep_first=True)
        self.last_refresh: datetime | None = None

    def check(self, principal: Principal) -> None:
        if principal.token_id in self._revoked:
            raise Unauthenticated("access token revoked")
        if (principal.kind, principal.id) in self._disabled:
            raise Unauthenticated(f"{principal.kind} disabled")
        if principal.kind == "client" and principal.id in self._revoked_clients:
            raise Unauthenticated("client certificate revoked")
        if principal.cert_thumbprint is not None and \
                principal.cert_thumbprint in self._revoked_certs:
            raise Unauthenticated("certificate revoked")

    def set_revoked_certificates(self, thumbprints: frozenset[str]) -> None:
        """Thumbprints (`cnf.x5t#S256`) of operator certificates revoked by a CRL."""
        self._revoked_certs = thumbprints

    def set_revoked_clients(self, client_ids: frozenset[str]) -> None:
        """Clients whose certificate a client CA's CRL lists (`auth/client_pki.py`)."""
        self._revoked_clients = client_ids

    async def revoke(self, principal: Principal, conn: Conn) -> None:
        """Record the revocation in the caller's transaction (so it is audited with it)."""
        expires = datetime.fromtimestamp(principal.expires_at, UTC)
        await conn.execute(q.REVOKE_TOKEN, principal.token_id, expires)
        self._revoked[principal.token_id] = float(principal.expires_at)

    async def refresh(self) -> None:
        async with self._pool.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                horizon: str = await conn.fetchval(q.REVOCATION_HORIZON)
                rows = await conn.fetch(q.REVOKED_SINCE, self._horizon)
            disabled = await conn.fetch(q.DISABLED_SUBJECTS)
        for row in rows:
            self._revoked[row["jti"]] = row["expires_at"].timestamp()
        self._horizon = horizon
        now = datetime.now(UTC).timestamp()
        for jti in [j for j, exp in self._revoked.items() if exp < now - 3600]:
            del self._revoked[jti]
        self._disabled = frozenset((r["kind"], r["id"]) for r in disabled)
        self.last_refresh = datetime.now(UTC)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _poll(self) -> None:
        await self.refresh()
        self._rounds += 1
        if self._rounds % max(1, int(600 / self._interval)) == 0:  # about every 10 minutes
            await self._pool.execute(q.PURGE_REVOKED)
            await self._pool.execute(q.PURGE_JTIS)
            await self._pool.execute(q.PURGE_RATE_LIMIT)

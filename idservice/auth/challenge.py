"""Login challenges (contract 3.1 step 1; Web eID's nonce): 32 random bytes, base64 (44 chars),
stored server-side for 5 minutes, single use.

Only the nonce's SHA-256 is stored. `consume` deletes it with `DELETE ... RETURNING` in its own
statement (autocommit), before anything else about the login is checked, so a nonce can never
be used twice, not even by two concurrent requests, and a refused login still burns it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from idservice.auth.login_errors import NonceExpired, NonceNotFound
from idservice.clock import Clock
from idservice.db.types import Conn
from idservice.queries import officers as q

__all__ = ["NONCE_TTL_SECONDS", "Challenge", "consume_nonce", "new_challenge"]

NONCE_TTL_SECONDS = 300
_NONCE_BYTES = 32
_NONCE_CHARS = 44


@dataclass(frozen=True)
class Challenge:
    nonce: str
    expires_in: int


def _key(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()


async def new_challenge(conn: Conn, clock: Clock) -> Challenge:
    nonce = base64.b64encode(secrets.token_bytes(_NONCE_BYTES)).decode("ascii")
    now = clock.now()
    await conn.execute(q.PURGE_NONCES, now)
    await conn.execute(q.INSERT_NONCE, _key(nonce), now + timedelta(seconds=NONCE_TTL_SECONDS))
    return Challenge(nonce, NONCE_TTL_SECONDS)


async def consume_nonce(conn: Conn, nonce: str, clock: Clock) -> None:
    """Delete the nonce; raise if it was not there or has expired. Commits on its own."""
    if conn.is_in_transaction():
        raise RuntimeError("a nonce is consumed outside any transaction, so it stays consumed")
    if len(nonce) != _NONCE_CHARS:
        raise NonceNotFound("nonce must be the 44-character string from /v1/auth/challenge")
    expires_at = await conn.fetchval(q.CONSUME_NONCE, _key(nonce))
    if expires_at is None:
        raise NonceNotFound("unknown or already used nonce")
    if expires_at <= clock.now():
        raise NonceExpired("nonce expired; ask for a new challenge")

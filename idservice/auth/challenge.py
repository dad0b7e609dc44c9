"""Login challenges (contract 3.1 step 1; Web eID's nonce): 32 bytes, base64 (44 characters),
valid 5 minutes, single use.

Stateless, so that asking for challenges stores nothing (contract 7: nothing an anonymous
caller sends may grow storage without bound): the 32 bytes are the expiry (4 bytes, Unix
seconds), 12 random bytes and the first 16 bytes of HMAC-SHA-256 over both, keyed with a
server secret every process shares (`auth_secret`, created by the first one). A nonce is
authentic only with a valid MAC, and expired once its own expiry has passed (so a late attempt
always hears `nonce_expired`). Single use: an authentic, unexpired nonce is inserted into
`auth_nonce_used` (by SHA-256, `INSERT ... ON CONFLICT DO NOTHING RETURNING`, autocommit)
before anything else about the login is checked; a second use, even a concurrent one, finds
it there. Those rows are bounded by the logins attempted (rate limited per source) and
deleted after their expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from idservice.auth.login_errors import NonceExpired, NonceNotFound
from idservice.clock import Clock
from idservice.db.types import Conn
from idservice.queries import officers as q

__all__ = ["NONCE_TTL_SECONDS", "NONCE_USED", "Challenge", "NonceKey", "VerifiedNonce",
           "consume_nonce", "make_nonce", "verify_nonce"]

NONCE_TTL_SECONDS = 300
_NONCE_CHARS = 44
_RANDOM_BYTES = 12
_MAC_BYTES = 16
_SECRET_NAME = "challenge-nonce-hmac"
_DOMAIN = b"idservice challenge nonce v1\x00"


@dataclass(frozen=True)
class Challenge:
    nonce: str
    expires_in: int


class NonceKey:
    """The shared HMAC key of the nonces (read once per process)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the nonce secret must have at least 32 bytes")
        self._secret = secret

    @classmethod
    async def load(cls, pool: asyncpg.Pool) -> NonceKey:
        await pool.execute(q.ENSURE_SECRET, _SECRET_NAME, secrets.token_bytes(32))
        secret: bytes = await pool.fetchval(q.GET_SECRET, _SECRET_NAME)
        return cls(secret)

    def mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, _DOMAIN + body, hashlib.sha256).digest()[:_MAC_BYTES]

    def challenge(self, clock: Clock) -> Challenge:
        expires = int(clock.now().timestamp()) + NONCE_TTL_SECONDS
        return Challenge(make_nonce(self, expires), NONCE_TTL_SECONDS)


def make_nonce(key: NonceKey, expires: int) -> str:
    """A nonce valid until `expires` (Unix seconds)."""
    body = expires.to_bytes(4, "big") + secrets.token_bytes(_RANDOM_BYTES)
    return base64.b64encode(body + key.mac(body)).decode("ascii")


@dataclass(frozen=True)
class VerifiedNonce:
    """A nonce whose MAC and expiry verified: what `auth_nonce_used` keeps of it."""

    sha256: str
    expires: datetime


def verify_nonce(key: NonceKey, nonce: str, clock: Clock) -> VerifiedNonce:
    """Raise unless `nonce` is ours and unexpired (no database: whether it was used is
    `consume_nonce`'s, or officer_login()'s in the login's one statement)."""
    if len(nonce) != _NONCE_CHARS:
        raise NonceNotFound("nonce must be the 44-character string from /v1/auth/challenge")
    try:
        raw = base64.b64decode(nonce, validate=True)
    except (binascii.Error, ValueError):
        raise NonceNotFound("unknown nonce; ask /v1/auth/challenge for one") from None
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) != 32 or not hmac.compare_digest(mac, key.mac(body)):
        raise NonceNotFound("unknown nonce; ask /v1/auth/challenge for one")
    expires = datetime.fromtimestamp(int.from_bytes(body[:4], "big"), UTC)
    if expires <= clock.now():
        raise NonceExpired("nonce expired; ask for a new challenge")
    return VerifiedNonce(hashlib.sha256(nonce.encode("ascii")).hexdigest(), expires)


NONCE_USED = "nonce already used; ask for a new challenge"


async def consume_nonce(conn: Conn, verified: VerifiedNonce) -> None:
    """Record a verified nonce as used (committed); raise if it already was."""
    if conn.is_in_transaction():
        raise RuntimeError("a nonce is consumed outside any transaction, so it stays consumed")
    if await conn.fetchval(q.USE_NONCE, verified.sha256, verified.expires) is None:
        raise NonceNotFound(NONCE_USED)

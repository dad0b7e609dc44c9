"""Rate limits of the authentication endpoints, shared by every service process.

A fixed one-minute window per (scope, key) counted in PostgreSQL (`auth_rate_limit`), so N
processes (or hosts) on one database enforce one limit: `POST /v1/auth/client-token` per
claimed client id, `POST /v1/auth/challenge` and `POST /v1/auth/token` per source IP.
`IDSERVICE_AUTH_RATE_LIMIT` requests per minute (0 = off); over it -> 429 `rate_limited` with
`Retry-After` (the seconds left in the window).
"""

from __future__ import annotations

from typing import Literal

import asyncpg

from idservice.errors import RateLimited
from idservice.queries import auth as q

__all__ = ["Scope", "check_rate_limit"]

Scope = Literal["client-token", "challenge", "token"]


async def check_rate_limit(pool: asyncpg.Pool, limit: int, scope: Scope, key: str) -> None:
    """Count one request; raise `RateLimited` when it is over `limit` in this minute."""
    if limit <= 0:
        return
    row = await pool.fetchrow(q.HIT_RATE_LIMIT, scope, key[:128] or "unknown")
    assert row is not None
    if row["n"] > limit:
        raise RateLimited(f"more than {limit} requests per minute; retry later",
                          retry_after=int(row["retry_after"]))

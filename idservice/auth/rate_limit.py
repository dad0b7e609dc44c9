"""Limits of the authentication endpoints, shared by every service process (contract 7).

Counted in PostgreSQL in fixed one-minute windows (UTC calendar minutes), so N processes or
hosts on one database enforce one limit:

- per source address (IPv6: its /64), over `POST /v1/auth/challenge`, `/v1/auth/token` and
  `/v1/auth/client-token` together: `IDSERVICE_AUTH_SOURCE_RATE_LIMIT` requests per minute
  (default 120), checked before any other work; over it, 429 `rate_limited` + `Retry-After`;
- per verified identity (client id, operator id), counting only requests whose signature
  verified, so naming a client's id does not lock it out: `IDSERVICE_AUTH_RATE_LIMIT` (600);
- per caller of `POST /v1/pins/verify` (a PIN oracle given name and birth date):
  `IDSERVICE_VERIFY_RATE_LIMIT` (120).

Failed logins whose identity did not verify get their own audit event only up to
`IDSERVICE_AUTH_FAILURE_EVENTS_PER_MINUTE` (30) per source and minute. Everything beyond
(unrecorded failures and 429s) is counted, and after the minute one `auth.rate_limited` event
per source carries the count (`details.count`), written by `RateLimitReporter` within seconds
after the minute ends, exactly once whatever the number of processes (claimed rows, SKIP
LOCKED, `reported` set in the event's transaction). So an anonymous caller adds at most
cap + 1 events per address and minute to the append-only log, whatever it sends.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC
from typing import Literal

import asyncpg

from idservice.audit.entry import format_at
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Actor
from idservice.background import PeriodicTask
from idservice.db.types import Conn
from idservice.errors import RateLimited
from idservice.logging import get_logger
from idservice.queries import auth as q
from idservice.queries import officers as officer_q

__all__ = ["AuthLimits", "IdentityScope", "RateLimitReporter", "limit_refusal", "source_key"]

_log = get_logger(__name__)

IdentityScope = Literal["client", "operator"]
_UNKNOWN = "unknown"


def source_key(address: str | None) -> str:
    """What the per-source limits count: an IPv4 address, an IPv6 address's /64 (one host
    can use its whole /64), an IPv4-mapped IPv6 address as IPv4."""
    if not address:
        return _UNKNOWN
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AuthLimits:
    """The limits and the failure cap, as the routes and login services use them."""

    def __init__(self, pool: asyncpg.Pool, *, source_limit: int, identity_limit: int,
                 failure_events: int, verify_limit: int) -> None:
        self._pool = pool
        self._source_limit = source_limit
        self._identity_limit = identity_limit
        self._failure_events = failure_events
        self._verify_limit = verify_limit

    @property
    def identity_limit(self) -> int:
        """Requests a minute per verified identity (0: no limit); officer_login() counts it."""
        return self._identity_limit

    def identity_refusal(self, retry_after: int) -> RateLimited:
        """The 429 of a verified identity over its limit (counted by officer_login())."""
        return limit_refusal(self._identity_limit, "logins", retry_after)

    async def admit(self, rctx: RequestContext) -> None:
        """Count one authentication request of its source; raise `RateLimited` over the limit.
        The first thing each of the three endpoints does."""
        if self._source_limit <= 0:
            return
        row = await self._pool.fetchrow(q.ADMIT_SOURCE, source_key(rctx.source_ip),
                                        self._source_limit)
        assert row is not None
        if row["requests"] > self._source_limit:
            raise RateLimited(
                f"more than {self._source_limit} authentication requests a minute from this "
                "address; wait for the time in Retry-After", retry_after=int(row["retry_after"]))

    async def check_identity(self, rctx: RequestContext, scope: IdentityScope,
                             identity: str) -> None:
        """Count one request whose signature verified as `identity`."""
        await self._hit(rctx, scope, identity, self._identity_limit, "logins")

    @property
    def verify_limit(self) -> int:
        """PIN verifications a minute per caller (0: no limit), counted by `persons.verify`
        in the statement that reads the record."""
        return self._verify_limit

    async def _hit(self, rctx: RequestContext, scope: str, key: str, limit: int,
                   what: str) -> None:
        if limit <= 0:
            return
        row = await self._pool.fetchrow(q.HIT_RATE_LIMIT, scope, key[:128])
        assert row is not None
        if row["n"] > limit:
            await self._pool.execute(q.COUNT_LIMITED, source_key(rctx.source_ip))
            raise limit_refusal(limit, what, int(row["retry_after"]))

    async def record_failure(self, conn: Conn, rctx: RequestContext, event: AuditEvent, *,
                             verified: bool) -> None:
        """Write a failed login's event in its own transaction on `conn`. Unless the identity
        verified, only the first `IDSERVICE_AUTH_FAILURE_EVENTS_PER_MINUTE` of the source's
        minute are written; the others are counted for its `auth.rate_limited` event."""
        async with conn.transaction():
            if not verified:
                recorded = await conn.fetchval(q.COUNT_FAILURE, source_key(rctx.source_ip),
                                               self._failure_events)
                if not recorded:
                    return
            await record(conn, rctx, [event])


def limit_refusal(limit: int, what: str, retry_after: int) -> RateLimited:
    """The 429 of a caller over its limit: what to do next is in Retry-After."""
    return RateLimited(f"more than {limit} {what} a minute; wait for the time in Retry-After",
                       retry_after=retry_after)


class RateLimitReporter:
    """Writes the `auth.rate_limited` event of each source and minute that had any, `grace`
    seconds after the minute ends (requests still in flight at its end count too), and
    purges old windows and used nonces. Runs in every process; each window is reported once.
    """

    def __init__(self, pool: asyncpg.Pool, *, interval: float = 10.0, grace: float = 3.0,
                 batch: int = 500) -> None:
        self._pool = pool
        self._grace = grace
        self._batch = batch
        self._loop = PeriodicTask("auth-rate-reporter", interval, self.run_once,
                                  sleep_first=True)

    async def run_once(self) -> int:
        """Report the due windows; returns how many events were written."""
        written = 0
        async with self._pool.acquire() as conn:
            await conn.execute(q.CLOSE_QUIET_WINDOWS, self._grace)
            while True:
                async with conn.transaction():
                    rows = await conn.fetch(q.CLAIM_DUE_WINDOWS, self._grace, self._batch)
                    for row in rows:
                        await self._report(conn, row)
                    written += len(rows)
                if len(rows) < self._batch:
                    break
            await conn.execute(q.PURGE_SOURCE_WINDOWS)
            await conn.execute(officer_q.PURGE_USED_NONCES)
        if written:
            _log.info("auth_rate_limited_reported", windows=written)
        return written

    async def _report(self, conn: Conn, row: asyncpg.Record) -> None:
        source: str = row["source"]
        count = int(row["limited"]) + int(row["unrecorded"])
        rctx = RequestContext(Actor("anonymous", source), None, source)
        await record(conn, rctx, [AuditEvent("auth.rate_limited", "counted", details={
            "count": count, "minute": format_at(row["window_start"].astimezone(UTC)),
            "requests": int(row["requests"]), "limited": int(row["limited"]),
            "failures": int(row["failures"]), "unrecorded_failures": int(row["unrecorded"])})])
        await conn.execute(q.MARK_REPORTED, source, row["window_start"])

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


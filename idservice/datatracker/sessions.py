"""The citizen's page sessions (`/citizen/usage`, issue 14 item 5; docs/datatracker.md).

1. The portal, server to server, with its access token and the citizen's `X-Road-UserId`
   (and `userCode` for a parent), asks `POST /datatracker/v2/pageLink`: the caller rules are
   checked and recorded (`service.page_subject`), and it gets a link carrying a random
   256-bit single-use ticket, alive for `IDSERVICE_CITIZEN_LINK_SECONDS` (120 s).
2. The citizen's browser opens the link: the ticket is swapped, once, for a random session
   secret in an HttpOnly cookie (Path=/citizen) and the browser is sent on to the page
   without the ticket in its address.
3. Each page view looks the session up by the cookie and acts *as the portal* (its client
   id, roles, token id and expiry, kept with the session): the same service functions as the
   API, the same caller rules, each view audited. A revoked portal token or a disabled portal
   ends the page session too, and it never outlives the portal's token nor
   `IDSERVICE_CITIZEN_SESSION_SECONDS` (900 s).

Nothing in a URL or a cookie names a PIN or can be derived from one; only SHA-256 of the
ticket and of the session secret are stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from idservice.auth.principal import Principal
from idservice.errors import Unauthenticated
from idservice.persons.context import PersonsContext
from idservice.queries import datatracker as q

__all__ = ["CitizenSession", "PageLink", "load", "open_link", "redeem"]

_SECRET_BYTES = 32
_MAX_SECRET_LENGTH = 64  # base64url of 32 bytes is 43 characters


@dataclass(frozen=True, slots=True)
class PageLink:
    ticket: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class CitizenSession:
    portal: Principal
    requester: str
    subject: str
    expires_at: datetime


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii", "replace")).digest()


async def open_link(ctx: PersonsContext, portal: Principal, *, requester: str, subject: str,
                    link_seconds: int, session_seconds: int) -> PageLink:
    """A single-use ticket for the page of `subject` seen by `requester` (the caller rules
    were checked by `service.page_subject`)."""
    now = ctx.clock.now()
    token_end = datetime.fromtimestamp(portal.expires_at, UTC)
    expires_at = min(now + timedelta(seconds=session_seconds), token_end)
    ticket_end = min(now + timedelta(seconds=link_seconds), expires_at)
    ticket = secrets.token_urlsafe(_SECRET_BYTES)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(q.PURGE_SESSIONS, now)
        await conn.execute(q.OPEN_SESSION, _digest(ticket), ticket_end, expires_at, portal.id,
                           sorted(portal.roles), portal.jurisdiction, portal.token_id,
                           portal.expires_at, requester, subject)
    return PageLink(ticket, max(0, int((ticket_end - now).total_seconds())))


def _session(row: asyncpg.Record) -> CitizenSession:
    portal = Principal(kind="client", id=row["portal_id"], roles=frozenset(row["portal_roles"]),
                       jurisdiction=row["portal_jurisdiction"], token_id=row["portal_token_id"],
                       expires_at=int(row["portal_token_exp"]))
    return CitizenSession(portal, row["requester_pin"], row["subject_pin"], row["expires_at"])


async def redeem(ctx: PersonsContext, ticket: str) -> tuple[str, CitizenSession]:
    """Swap a live ticket for a new session secret; `Unauthenticated` if the ticket is
    unknown, used or expired."""
    if not ticket or len(ticket) > _MAX_SECRET_LENGTH:
        raise Unauthenticated("this link is not valid")
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    row = await ctx.pool.fetchrow(q.REDEEM_TICKET, _digest(ticket), _digest(secret),
                                  ctx.clock.now())
    if row is None:
        raise Unauthenticated("this link was used already or has expired")
    return secret, _session(row)


async def load(ctx: PersonsContext, secret: str | None) -> CitizenSession:
    """The live session of a cookie; `Unauthenticated` otherwise."""
    if not secret or len(secret) > _MAX_SECRET_LENGTH:
        raise Unauthenticated("no page session")
    row = await ctx.pool.fetchrow(q.GET_SESSION, _digest(secret), ctx.clock.now())
    if row is None:
        raise Unauthenticated("the page session has ended")
    return _session(row)

"""The Data Tracker's service functions (contract section 11): findUsage, usagePeriod,
heartbeat and the inclusion proof of a usage. The API (`api/datatracker.py`) and the citizen's
page (`web/citizen.py`) are thin adapters over these.

Every report, whether it answers or refuses, is itself an audit event `citizen.report` (actor:
the portal; `pin`: the subject; `details`: the requester, the relation, what was asked, how
many usages), written in the report's transaction; `citizen.report` is not a usage kind, so
the report never lists itself. A report reads the count and the page in one statement (one
snapshot), so `totalUsages` and `usages` agree.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from idservice.audit import entry, treestore
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize
from idservice.auth.principal import Principal
from idservice.datatracker.rules import Relation, SubjectRecord, relation
from idservice.datatracker.usage import action_outcomes, render_usage, visible_on
from idservice.db.types import Conn
from idservice.errors import Forbidden, MalformedRequest, NotFound, ProblemError
from idservice.persons.context import PersonsContext
from idservice.queries import audit as audit_q
from idservice.queries import datatracker as q

__all__ = [
    "MAX_LIMIT",
    "REPORT_ACTION",
    "Period",
    "ProofNotReady",
    "find_usage",
    "heartbeat",
    "page_subject",
    "proof",
    "usage_period",
]

REPORT_ACTION = "citizen.report"
MAX_LIMIT = 1000  # the spec's default, and the most one page returns
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


class ProofNotReady(ProblemError):
    """Extension: the usage is in the log but no signed checkpoint covers it yet (the
    integrator signs one within seconds); 503 with Retry-After."""

    status, code, title = 503, "proof_not_ready", "Not yet in a signed checkpoint"
    retry_after = 10


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise MalformedRequest("periodStart must not be after periodEnd", field="periodStart")

    def bounds(self) -> tuple[datetime, datetime]:
        return self.start or _EARLIEST, self.end or _LATEST

    def describe(self) -> dict[str, str]:
        return {name: entry.format_at(value) for name, value in
                (("periodStart", self.start), ("periodEnd", self.end)) if value is not None}


def _province_names(ctx: PersonsContext) -> dict[str, str]:
    return {p.pin_code: p.name for p in ctx.provinces.all()}


async def _relation(conn: Conn, requester: str, subject: str, today: date) -> Relation:
    row = None if requester == subject else await conn.fetchrow(q.SUBJECT, subject)
    record_ = None if row is None else SubjectRecord(row["date_of_birth"], row["mother_pin"],
                                                     row["father_pin"])
    return relation(requester, subject, record_, today)


async def _refused(ctx: PersonsContext, rctx: RequestContext, subject: str, requester: str,
                   what: str) -> None:
    """A refused report is recorded too, in its own transaction (the report's was rolled
    back): an auditor sees who tried to read whose report."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record(conn, rctx, [AuditEvent(REPORT_ACTION, "forbidden", pin=subject,
                                             details={"what": what, "requester": requester})])


async def find_usage(ctx: PersonsContext, principal: Principal, rctx: RequestContext, *,
                     requester: str, subject: str, period: Period, offset: int, limit: int,
                     channel: str = "api") -> dict[str, Any]:
    """`{"totalUsages", "usages"}` for `subject`, asked by the citizen `requester`."""
    authorize(principal, Action.DATATRACKER)
    if not 0 <= offset < 2**31 or not 1 <= limit <= MAX_LIMIT:
        raise MalformedRequest(f"offset must be >= 0 and limit 1 .. {MAX_LIMIT}")
    today = ctx.clock.today()
    actions, pairs = action_outcomes()
    start, end = period.bounds()
    args = (subject, start, end, visible_on(today), actions, pairs)
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            rel = await _relation(conn, requester, subject, today)
            found = await conn.fetch(q.REPORT, *args, offset, limit)
            total = int(found[0]["total"])
            rows = [r for r in found if r["index"] is not None]
            await record(conn, rctx, [AuditEvent(REPORT_ACTION, "ok", pin=subject, details={
                "what": "usages", "channel": channel, "requester": requester,
                "relation": rel.value, **period.describe(), "offset": offset, "limit": limit,
                "total": total, "count": len(rows)})])
    except Forbidden:
        await _refused(ctx, rctx, subject, requester, "usages")
        raise
    names = _province_names(ctx)
    return {"totalUsages": total, "usages": [render_usage(r, names) for r in rows]}


async def page_subject(ctx: PersonsContext, principal: Principal, rctx: RequestContext, *,
                       requester: str, subject: str) -> Relation:
    """Check (and record) that a portal may open the citizen's page about `subject`."""
    authorize(principal, Action.DATATRACKER)
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            rel = await _relation(conn, requester, subject, ctx.clock.today())
            await record(conn, rctx, [AuditEvent(REPORT_ACTION, "ok", pin=subject, details={
                "what": "page_link", "requester": requester, "relation": rel.value})])
    except Forbidden:
        await _refused(ctx, rctx, subject, requester, "page_link")
        raise
    return rel


async def proof(ctx: PersonsContext, principal: Principal, rctx: RequestContext, *,
                requester: str, index: int, subject: str | None = None,
                channel: str = "api") -> dict[str, Any]:
    """The inclusion proof of usage `index` against the latest signed checkpoint, with the
    event itself (the leaf, without which a proof proves nothing about the usage).

    `subject` given: the caller rules are checked for it first (403), and the event must be a
    usage of it shown today (else 404). Omitted: the subject is the event's PIN, when the event
    is a usage shown today (else 404), and the caller rules are checked for it (403)."""
    authorize(principal, Action.DATATRACKER)
    today = ctx.clock.today()
    actions, pairs = action_outcomes()
    about = subject
    try:
        async with ctx.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            if subject is not None:
                await _relation(conn, requester, subject, today)
            row = await conn.fetchrow(q.USAGE_EVENT, index, visible_on(today), actions, pairs)
            if row is None or (subject is not None and row["pin"] != subject):
                raise NotFound("no usage of this record has this audit index")
            about = str(row["pin"])
            rel = await _relation(conn, requester, about, today)
            last = await conn.fetchrow(audit_q.LAST_CHECKPOINT)
            if last is None or int(last["tree_size"]) <= index:
                raise ProofNotReady("this usage is not in a signed checkpoint yet; ask again "
                                    "in a few seconds")
            size = int(last["tree_size"])
            hashes = await treestore.inclusion(conn, index, size)
            await record(conn, rctx, [AuditEvent(REPORT_ACTION, "ok", pin=about, details={
                "what": "proof", "channel": channel, "requester": requester,
                "relation": rel.value, "index": index, "tree_size": size})])
    except Forbidden:
        if about is not None:
            await _refused(ctx, rctx, about, requester, "proof")
        raise
    return {"leaf_index": index, "tree_size": size,
            "hashes": [base64.b64encode(h).decode() for h in hashes],
            "checkpoint": last["note"], "event": entry.render_row(row)}


async def usage_period(ctx: PersonsContext, principal: Principal) -> dict[str, Any]:
    """The log keeps every event from its first one on, and never ends (`periodEnd` absent)."""
    authorize(principal, Action.DATATRACKER)
    first = await ctx.pool.fetchval(q.FIRST_EVENT_AT)
    return {"periodStart": entry.format_at(first or ctx.clock.now())}


async def heartbeat(ctx: PersonsContext, principal: Principal) -> dict[str, Any]:
    """`OK` when the database answers; `FAIL` (still 200, as the spec has it) otherwise."""
    authorize(principal, Action.DATATRACKER)
    try:
        await ctx.pool.fetchval(q.PING)
    except Exception as exc:  # any failure to reach the database is the answer itself
        return {"status": "FAIL", "message": f"database unavailable ({type(exc).__name__})"}
    return {"status": "OK", "message": "Data Tracker usage API is ready"}

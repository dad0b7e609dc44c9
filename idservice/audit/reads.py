"""What auditors read: events, checkpoints, proofs (contract section 5). Each read is itself an
`audit.read` event, written in the transaction of the read (an export records its event and
commits it before the first row is sent).

An auditor whose jurisdiction is a province sees, in lists, by index and in exports, only the
events of PINs of that province and the events without a PIN (contract 7; `auth/policy.py`);
asking for another province's PIN or event is `403`. Checkpoints and proofs reveal no record
and stay available to every auditor."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from idservice.audit import entry, treestore
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import (
    Action,
    authorize,
    covers,
    event_pin_prefix,
    require_jurisdiction,
)
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import Forbidden, InvalidField, NotFound
from idservice.pin.format import is_well_formed, parse_pin
from idservice.queries import audit as q

__all__ = ["COUNT_CAP", "MAX_LIMIT", "EventFilter", "browse", "checkpoint", "checkpoint_keys",
           "checkpoint_status", "checkpoints",
           "consistency_proof", "export", "get_event", "inclusion_proof", "parse_filter",
           "search"]

MAX_LIMIT = 1000
COUNT_CAP = 10_000  # `browse` counts matching events up to this many
_LAST = 2**63 - 1  # keyset start of newest-first browsing: after every index
_ACTOR_TYPES = ("operator", "client", "anonymous", "certificate", "admin")
_FIRST = -1  # keyset start: before index 0


@dataclass(frozen=True)
class EventFilter:
    pin: str | None = None
    actor_type: str | None = None
    actor_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def args(self) -> tuple[Any, ...]:
        return (self.pin, self.actor_type, self.actor_id, self.action, self.since, self.until)

    def describe(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in asdict(self).items() if v is not None}

    @property
    def empty(self) -> bool:
        """No filter: the reads walk the log's index instead of joining the view (`_older`)."""
        return all(v is None for v in self.args())


def _time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField("must be an RFC 3339 date-time", field=field) from None
    if parsed.tzinfo is None:
        raise InvalidField("must be an RFC 3339 date-time with a time zone", field=field)
    return parsed


def parse_filter(pin: str | None = None, actor: str | None = None, action: str | None = None,
                 since: str | None = None, until: str | None = None) -> EventFilter:
    if pin is not None and not is_well_formed(pin):
        raise InvalidField("must be a well-formed PIN: 12 ASCII digits", field="pin")
    for field, value in (("actor", actor), ("action", action)):
        if value is not None and not value.isprintable():
            raise InvalidField("must not contain control or invisible characters", field=field)
    actor_type = actor_id = None
    if actor is not None:
        kind, sep, ident = actor.partition(":")
        if sep and kind in _ACTOR_TYPES:
            actor_type, actor_id = kind, ident
        else:
            actor_id = actor
        if not actor_id:
            raise InvalidField("must be ID or TYPE:ID", field="actor")
    return EventFilter(pin, actor_type, actor_id, action, _time(since, "since"),
                       _time(until, "until"))


def _cursor(after: str | None) -> int:
    if after is None:
        return _FIRST
    if not (after.isascii() and after.isdigit()) or len(after) > 18:
        raise InvalidField("not a cursor this service returned", field="after")
    return int(after)


async def _audit(conn: Conn, rctx: RequestContext, what: str, outcome: str = "ok",
                 pin: str | None = None, **details: Any) -> None:
    await record(conn, rctx, [AuditEvent("audit.read", outcome, pin=pin,
                                         details={"what": what, **details})])


# The three reads of a list of events. Without a filter they walk the log's index
# (queries/audit.py ENTRIES_*: the view's plan read every audit_event partition for one page);
# with one, the view's plan starts from the filtered column's index or the time range's months.

async def _older(conn: Conn, flt: EventFilter, before: int, limit: int,
                 prefix: str | None) -> list[asyncpg.Record]:
    """Up to `limit` matching events with index < `before`, newest first."""
    if flt.empty:
        return list(await conn.fetch(q.ENTRIES_OLDER, before, limit, prefix))
    return list(await conn.fetch(q.BROWSE_OLDER, *flt.args(), before, limit, prefix))


async def _newer(conn: Conn, flt: EventFilter, after: int, limit: int,
                 prefix: str | None) -> list[asyncpg.Record]:
    """Up to `limit` matching events with index > `after`, oldest first."""
    if flt.empty:
        return list(await conn.fetch(q.ENTRIES_NEWER, after, limit, prefix))
    return list(await conn.fetch(q.SEARCH, *flt.args(), after, limit, prefix))


async def _count(conn: Conn, flt: EventFilter, cap: int, prefix: str | None) -> int:
    """How many events match, counted up to `cap`."""
    if flt.empty:
        return int(await conn.fetchval(q.ENTRIES_COUNT, cap, prefix))
    return int(await conn.fetchval(q.BROWSE_COUNT, *flt.args(), cap, prefix))


def _visible_prefix(principal: Principal, flt: EventFilter) -> str | None:
    """The caller's PIN prefix (None: all); its own `pin` filter must be within it."""
    prefix = event_pin_prefix(principal)
    if prefix is not None and flt.pin is not None:
        require_jurisdiction(principal, Action.AUDIT_EVENTS, pin=flt.pin, field="pin")
    return prefix


async def search(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                 flt: EventFilter, limit: int, after: str | None) -> dict[str, Any]:
    authorize(principal, Action.AUDIT_EVENTS)
    prefix = _visible_prefix(principal, flt)
    start = _cursor(after)
    async with pool.acquire() as conn, conn.transaction():
        rows = await _newer(conn, flt, start, limit, prefix)
        await _audit(conn, rctx, "events", pin=flt.pin, filters=flt.describe(), count=len(rows))
    events = [entry.render_row(r) for r in rows]
    more = len(events) == limit
    return {"events": events, "next": str(events[-1]["index"]) if more and events else None}


async def browse(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                 flt: EventFilter, limit: int, *, before: str | None = None,
                 after: str | None = None) -> dict[str, Any]:
    """Newest first, for people (the auditor UI): a page of events older than `before` (or the
    newest ones), or the page newer than `after` (going back), with cursors both ways and the
    number of matching events (`total`, counted up to `COUNT_CAP`; `total_capped` when more).
    One `audit.read` event, like `search`."""
    authorize(principal, Action.AUDIT_EVENTS)
    if before is not None and after is not None:
        raise InvalidField("give either before or after", field="after")
    prefix = _visible_prefix(principal, flt)
    async with pool.acquire() as conn, conn.transaction():
        if after is None:
            start = _LAST if before is None else _cursor(before)
            rows = await _older(conn, flt, start, limit + 1, prefix)
            more_older = len(rows) > limit
            rows = rows[:limit]
            more_newer = bool(rows) and bool(
                await _newer(conn, flt, int(rows[0]["index"]), 1, prefix))
        else:
            rows = await _newer(conn, flt, _cursor(after), limit + 1, prefix)
            more_newer = len(rows) > limit
            rows = rows[:limit][::-1]
            more_older = bool(rows) and bool(
                await _older(conn, flt, int(rows[-1]["index"]), 1, prefix))
        total = await _count(conn, flt, COUNT_CAP + 1, prefix)
        await _audit(conn, rctx, "events", pin=flt.pin, filters=flt.describe(), count=len(rows))
    events = [entry.render_row(r) for r in rows]
    return {"events": events,
            "older": str(events[-1]["index"]) if more_older else None,
            "newer": str(events[0]["index"]) if more_newer else None,
            "total": min(total, COUNT_CAP), "total_capped": total > COUNT_CAP}


async def get_event(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                    index: int) -> dict[str, Any]:
    authorize(principal, Action.AUDIT_EVENTS)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.ENTRY, index)
        visible = row is None or row["pin"] is None \
            or covers(principal, Action.AUDIT_EVENTS, parse_pin(row["pin"]).province_code)
        outcome = "not_found" if row is None else "ok" if visible else "forbidden"
        await _audit(conn, rctx, "event", outcome, index=index)
    if row is None:
        raise NotFound(f"no sequenced audit event {index}")
    if not visible:
        raise Forbidden(f"jurisdiction {principal.jurisdiction} does not cover the PIN of "
                        f"event {index}")
    return entry.render_row(row)


async def export(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                 flt: EventFilter, fmt: str) -> AsyncIterator[dict[str, Any]]:
    """Record the export, then return an iterator over every matching event (one snapshot)."""
    authorize(principal, Action.AUDIT_EVENTS)
    prefix = _visible_prefix(principal, flt)
    async with pool.acquire() as conn, conn.transaction():
        await _audit(conn, rctx, "export", pin=flt.pin, filters=flt.describe(), format=fmt)
    return _export_rows(pool, flt, prefix)


async def _export_rows(pool: asyncpg.Pool, flt: EventFilter, prefix: str | None,
                       page: int = MAX_LIMIT) -> AsyncIterator[dict[str, Any]]:
    async with pool.acquire() as conn, \
            conn.transaction(isolation="repeatable_read", readonly=True):
        start = _FIRST
        while True:
            rows = await _newer(conn, flt, start, page, prefix)
            for row in rows:
                yield entry.render_row(row)
            if len(rows) < page:
                return
            start = int(rows[-1]["index"])


async def checkpoint(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext) -> str:
    authorize(principal, Action.AUDIT_TREE)
    async with pool.acquire() as conn, conn.transaction():
        notes = await conn.fetch(q.LAST_CHECKPOINT)
        await _audit(conn, rctx, "checkpoint", "ok" if notes else "not_found")
    if not notes:
        raise NotFound("no checkpoint has been signed yet")
    note: str = notes[0]["note"]
    return note


async def checkpoint_status(pool: asyncpg.Pool, principal: Principal,
                            rctx: RequestContext) -> dict[str, Any]:
    """The latest checkpoint (note and signing time) and the newest recorded verification
    (`audit.verify` event, or None): the auditor UI's status page, one `audit.read` event."""
    authorize(principal, Action.AUDIT_EVENTS)
    async with pool.acquire() as conn, conn.transaction():
        last = await conn.fetchrow(q.LAST_CHECKPOINT)
        verification = await conn.fetchrow(q.LAST_VERIFICATION)
        await _audit(conn, rctx, "checkpoint_status", "ok" if last else "not_found")
    return {"note": last["note"] if last else None,
            "created_at": last["created_at"] if last else None,
            "verification": entry.render_row(verification) if verification else None}


async def checkpoints(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                      since: int, limit: int) -> list[str]:
    authorize(principal, Action.AUDIT_TREE)
    async with pool.acquire() as conn, conn.transaction():
        notes = await treestore.checkpoints(conn, since, limit)
        await _audit(conn, rctx, "checkpoints", since=since, count=len(notes))
    return notes


async def checkpoint_keys(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                          key_ids: list[str]) -> None:
    """Record that an auditor listed the checkpoint keys (the keys are in memory: no SQL)."""
    authorize(principal, Action.AUDIT_TREE)
    async with pool.acquire() as conn, conn.transaction():
        await _audit(conn, rctx, "checkpoint_keys", key_ids=key_ids)


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


async def inclusion_proof(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                          index: int, tree_size: int | None) -> dict[str, Any]:
    authorize(principal, Action.AUDIT_TREE)
    async with pool.acquire() as conn, conn.transaction():
        if tree_size is None:
            last = await conn.fetchrow(q.LAST_CHECKPOINT)
            tree_size = int(last["tree_size"]) if last else 0
        size = await treestore.integrated_size(conn)
        if not 0 < tree_size <= size:
            raise InvalidField(f"must be 1 .. {size} (the integrated tree size)",
                               field="tree_size")
        if not 0 <= index < tree_size:
            raise InvalidField(f"must be 0 .. {tree_size - 1}", field="index")
        hashes = await treestore.inclusion(conn, index, tree_size)
        await _audit(conn, rctx, "inclusion_proof", index=index, tree_size=tree_size)
    return {"leaf_index": index, "tree_size": tree_size, "hashes": _b64(hashes)}


async def consistency_proof(pool: asyncpg.Pool, principal: Principal, rctx: RequestContext,
                            first: int, second: int) -> dict[str, Any]:
    authorize(principal, Action.AUDIT_TREE)
    async with pool.acquire() as conn, conn.transaction():
        size = await treestore.integrated_size(conn)
        if not 0 <= second <= size:
            raise InvalidField(f"must be 0 .. {size} (the integrated tree size)", field="second")
        if not 0 <= first <= second:
            raise InvalidField("must be 0 .. second", field="first")
        hashes = await treestore.consistency(conn, first, second)
        await _audit(conn, rctx, "consistency_proof", first=first, second=second)
    return {"first": first, "second": second, "hashes": _b64(hashes)}

"""Writes audit events inside the caller's transaction, through the database's one writer.

Fail closed: the insert runs on the same connection and transaction as the access it records,
so if it fails the access is rolled back with it and never reaches the caller.

One source: every event reaches `audit_event` through the SQL function `audit_write_each()`
(migrations/0072; `audit_write()`, 0013, is it for the events of one request), with its columns
prepared by `event_columns` - here for `record`, and for the issuance statement `issue_pins()`,
which writes its group's events itself (`persons/issuance.issue`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from idservice.audit.events import (
    MAX_CALLER_TEXT,
    AuditEvent,
    RequestContext,
    cap_text,
    check_details,
)
from idservice.db.types import Conn
from idservice.queries import audit as q

__all__ = ["EventColumns", "event_columns", "record"]


@dataclass(frozen=True, slots=True)
class EventColumns:
    """The arguments of `audit_write()` for some events of one request."""

    actor_type: str
    actor_id: str
    request_id: str | None
    source_ip: str | None
    actions: list[str]
    pins: list[str | None]
    purposes: list[str | None]
    outcomes: list[str]
    details: list[str]  # JSON text of each event's details

    def args(self) -> tuple[Any, ...]:
        """In the parameter order of `queries.audit.WRITE_EVENTS`."""
        return (self.actor_type, self.actor_id, self.request_id, self.source_ip, self.actions,
                self.pins, self.purposes, self.outcomes, self.details)


def event_columns(ctx: RequestContext, events: Sequence[AuditEvent]) -> EventColumns:
    """Check and serialise events for `audit_write()`: details that could not be hashed into
    the log are refused (`events.check_details`), caller-chosen text beyond 4 KiB per event
    is cut (`events.cap_text`; contract 7)."""
    budget = MAX_CALLER_TEXT - sum(_size(text) for text in (ctx.actor.id, ctx.request_id,
                                                             ctx.source_ip))
    purposes: list[str | None] = []
    details: list[str] = []
    for event in events:
        check_details(event.details)
        purpose = event.purpose
        text = json.dumps(event.details, ensure_ascii=False, sort_keys=True)
        # The JSON text (quotes, escapes) is never shorter than the strings it holds: only an
        # event that may be over its budget is walked.
        if _size(text) + _size(purpose) > budget:
            purpose, capped = cap_text(purpose, event.details, budget)
            text = json.dumps(capped, ensure_ascii=False, sort_keys=True)
        purposes.append(purpose)
        details.append(text)
    return EventColumns(
        ctx.actor.type, ctx.actor.id, ctx.request_id, ctx.source_ip,
        [e.action for e in events], [e.pin for e in events], purposes,
        [e.outcome for e in events], details,
    )


def _size(text: str | None) -> int:
    if text is None:
        return 0
    return len(text) if text.isascii() else len(text.encode())


async def record(
    conn: Conn, ctx: RequestContext, events: Sequence[AuditEvent]
) -> None:
    if not events:
        return
    if not conn.is_in_transaction():
        raise RuntimeError("audit events must be written in the access's transaction")
    await conn.execute(q.WRITE_EVENTS, *event_columns(ctx, events).args())

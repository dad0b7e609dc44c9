"""Writes audit events inside the caller's transaction.

Fail closed: the insert runs on the same connection and transaction as the access it records,
so if it fails the access is rolled back with it and never reaches the caller.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from idservice.audit.events import AuditEvent, RequestContext, check_details
from idservice.db.types import Conn
from idservice.queries import audit as q

__all__ = ["record"]


async def record(
    conn: Conn, ctx: RequestContext, events: Sequence[AuditEvent]
) -> None:
    if not events:
        return
    if not conn.is_in_transaction():
        raise RuntimeError("audit events must be written in the access's transaction")
    for event in events:
        check_details(event.details)
    await conn.execute(
        q.INSERT_EVENTS,
        ctx.actor.type,
        ctx.actor.id,
        ctx.request_id,
        ctx.source_ip,
        [e.action for e in events],
        [e.pin for e in events],
        [e.purpose for e in events],
        [e.outcome for e in events],
        [json.dumps(e.details, ensure_ascii=False, sort_keys=True) for e in events],
    )

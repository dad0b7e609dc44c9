"""Writing events to the transactional outbox (contract 9), inside the caller's transaction.

The service functions that change a record call `enqueue` on the connection of the change's
own transaction: the event commits with the change or not at all. liveBirth is the one event
written by the database itself (the trigger on `registration`, migrations/0044), because every
issuance path, including the one-statement `issue_pin()`, registers exactly one row there.
"""

from __future__ import annotations

from collections.abc import Sequence

from idservice.db.types import Conn
from idservice.notify.events import NotifyEvent
from idservice.queries import notify as q

__all__ = ["enqueue"]


async def enqueue(conn: Conn, events: Sequence[NotifyEvent]) -> None:
    """Add `events`, in this order, to the outbox of the caller's transaction."""
    if not events:
        return
    await conn.execute(q.ENQUEUE, [str(e.topic) for e in events], [e.uin for e in events],
                       [e.uin1 for e in events], [e.uin2 for e in events],
                       [e.previous_uin for e in events])

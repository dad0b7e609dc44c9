"""Refusals that touch a record are audited (contract 7): outcome `refused`, `details.code`.

A refusal that comes after the request named a record - a PIN to read or correct (jurisdiction,
unknown PIN, cancelled PIN, a change the record does not allow, nothing to change), or a
registration key that exists with other content - writes one event. When the refused access
ran in a transaction, that transaction is rolled back with everything it did, so the event is
written in a transaction of its own (`refusals_recorded`); the response waits for it, so a
refusal that cannot be audited is answered 503 like any access that cannot be audited.
Input refused before any record is consulted (a malformed PIN or body, a missing purpose, a
province outside the registrar's jurisdiction on issuance) touches no record and writes
nothing, as in contract v1; a batch still writes one event per line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.errors import ProblemError

__all__ = ["HasPool", "record_refusal", "refusal", "refusals_recorded"]


class HasPool(Protocol):
    """A service's context: `PersonsContext`, `notify.subscriptions.NotifyContext`."""

    @property
    def pool(self) -> asyncpg.Pool: ...


def refusal(action: str, problem: ProblemError, *, pin: str | None = None,
            purpose: str | None = None, **details: Any) -> AuditEvent:
    """The event of a refused access: its code, and the field at fault where there is one."""
    facts = {**details, "code": problem.code}
    if problem.field is not None:
        facts["field"] = problem.field
    return AuditEvent(action, "refused", pin=pin, purpose=purpose, details=facts)


async def record_refusal(ctx: HasPool, rctx: RequestContext, event: AuditEvent) -> None:
    """Write a refusal's event in a transaction of its own."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record(conn, rctx, [event])


@asynccontextmanager
async def refusals_recorded(
    ctx: HasPool, rctx: RequestContext, action: str, *, pin: str | None = None,
    purpose: str | None = None, **details: Any,
) -> AsyncIterator[None]:
    """Audit any 4xx problem raised inside the block (after its transaction rolled back), then
    let it through; 5xx problems are not refusals and pass unrecorded."""
    try:
        yield
    except ProblemError as problem:
        if problem.status < 500:
            await record_refusal(ctx, rctx, refusal(action, problem, pin=pin, purpose=purpose,
                                                    **details))
        raise

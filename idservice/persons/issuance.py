"""Issuing PINs for birth registrations: single requests and NDJSON batches.

Idempotency key: (registration.authority, registration.number). The same key and body gives
the same PIN again; the same key with other content is a conflict. A transaction-level advisory
lock on the key serialises concurrent retries of one registration, and the PIN itself is claimed
by inserting the person row (primary key), so a PIN is never issued twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import (
    PinSpaceExhaustedError,
    ProblemError,
    RegistrationConflict,
    Unavailable,
)
from idservice.persons.bucket_store import PgBucketStore
from idservice.persons.context import PersonsContext
from idservice.persons.models import IssueRequest
from idservice.persons.names import fold_name
from idservice.persons.rules import check_issue
from idservice.persons.views import body_digest, load_record, rfc3339
from idservice.pin.allocator import AllocationContention, PinSpaceExhausted, allocate
from idservice.pin.format import bucket_prefix
from idservice.queries import persons as q

__all__ = [
    "BatchLine",
    "IssueOutcome",
    "LineResult",
    "PreparedIssue",
    "issue",
    "issue_chunk",
    "issue_in_transaction",
    "prepare",
]


@dataclass(frozen=True)
class IssueOutcome:
    pin: str
    status: str
    issued_at: datetime
    registration: dict[str, Any]
    created: bool

    def body(self) -> dict[str, Any]:
        return {
            "pin": self.pin,
            "status": self.status,
            "issued_at": rfc3339(self.issued_at),
            "registration": self.registration,
        }


@dataclass(frozen=True)
class PreparedIssue:
    req: IssueRequest
    record: dict[str, Any]
    digest: bytes


def prepare(ctx: PersonsContext, principal: Principal, req: IssueRequest) -> PreparedIssue:
    """Checks that need no database: jurisdiction and the cross-field rules."""
    principal.require_jurisdiction(req.registration.province_code,
                                   field="registration.province_code")
    check_issue(req, ctx.provinces, ctx.clock.today())
    record = req.model_dump(mode="json")
    return PreparedIssue(req, record, body_digest(record))


def _person_columns(p: PreparedIssue) -> list[Any]:
    reg, child = p.req.registration, p.req.child
    return [
        reg.authority, reg.number, reg.registered_on, reg.province_code, child.full_name,
        fold_name(child.full_name), [fold_name(n) for n in child.other_names], child.sex,
        child.date_of_birth, _json(p.record),
    ]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


async def issue_in_transaction(
    conn: Conn, ctx: PersonsContext, p: PreparedIssue
) -> tuple[IssueOutcome | ProblemError, AuditEvent]:
    """Issue (or replay) one registration inside the caller's transaction.

    Returns the outcome or the problem to report, and the audit event to write for it.
    """
    reg = p.req.registration
    await conn.execute(q.LOCK_REGISTRATION, reg.authority, reg.number)
    existing = await conn.fetchrow(q.FIND_REGISTRATION, reg.authority, reg.number)
    if existing is not None:
        pin = existing["pin"]
        if bytes(existing["body_sha256"]) != p.digest:
            return (
                RegistrationConflict(
                    "this registration key was used with different content",
                    field="registration",
                ),
                AuditEvent("pin.issue", "registration_conflict", pin=pin,
                           details={"registration": _key(p)}),
            )
        outcome = IssueOutcome(pin, existing["status"], existing["issued_at"],
                               load_record(existing["record"])["registration"], created=False)
        return outcome, AuditEvent("pin.issue", "replayed", pin=pin,
                                   details={"registration": _key(p)})

    prefix = bucket_prefix(reg.province_code, p.req.child.date_of_birth.year, p.req.child.sex)
    store = PgBucketStore(conn, prefix, _person_columns(p), ctx.allocator)
    try:
        await allocate(store, ctx.rng, ctx.allocator, bucket=prefix)
    except PinSpaceExhausted:
        return (
            PinSpaceExhaustedError(f"all numbers of bucket {prefix} are used"),
            AuditEvent("pin.issue", "pin_space_exhausted", details={"registration": _key(p),
                                                                     "bucket": prefix}),
        )
    except AllocationContention as exc:
        raise Unavailable("too much contention for free numbers; retry") from exc
    claimed = store.claimed
    assert claimed is not None
    pin = claimed["pin"]
    await conn.execute(q.INSERT_REGISTRATION, reg.authority, reg.number, p.digest, pin)
    outcome = IssueOutcome(pin, "active", claimed["issued_at"], p.record["registration"], True)
    return outcome, AuditEvent("pin.issue", "issued", pin=pin, details={"registration": _key(p)})


def _key(p: PreparedIssue) -> dict[str, str]:
    return {"authority": p.req.registration.authority, "number": p.req.registration.number}


async def issue(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, req: IssueRequest
) -> IssueOutcome:
    principal.require_role("registrar")
    p = prepare(ctx, principal, req)
    async with ctx.pool.acquire() as conn, conn.transaction():
        result, event = await issue_in_transaction(conn, ctx, p)
        await record(conn, rctx, [event])
    if isinstance(result, ProblemError):
        raise result
    return result


# One line of a batch: its number and either a prepared request or the problem found in it.
BatchLine = tuple[int, "PreparedIssue | ProblemError"]
LineResult = tuple[int, "IssueOutcome | ProblemError"]

_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def issue_chunk(
    ctx: PersonsContext, rctx: RequestContext, lines: Sequence[BatchLine]
) -> list[LineResult]:
    """Issue a chunk of batch lines in one transaction, one audit event per line.

    Rejected lines (bad input) are recorded too, so the log has exactly one event per line.
    A deadlock between concurrent batches retries the chunk: every line is idempotent.
    """
    for attempt in range(3):
        try:
            return await _issue_chunk_once(ctx, rctx, lines)
        except _RETRYABLE:
            if attempt == 2:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _issue_chunk_once(
    ctx: PersonsContext, rctx: RequestContext, lines: Sequence[BatchLine]
) -> list[LineResult]:
    results: list[LineResult] = []
    events: list[AuditEvent] = []
    async with ctx.pool.acquire() as conn, conn.transaction():
        for line, item in lines:
            if isinstance(item, ProblemError):
                results.append((line, item))
                events.append(AuditEvent("pin.issue", "rejected",
                                         details={"line": line, "code": item.code}))
                continue
            result, event = await issue_in_transaction(conn, ctx, item)
            results.append((line, result))
            events.append(AuditEvent(event.action, event.outcome, pin=event.pin,
                                     details={**event.details, "line": line}))
        await record(conn, rctx, events)
    return results

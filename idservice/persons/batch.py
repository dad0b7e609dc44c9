"""Batch issuance: a chunk of lines in one transaction with a handful of statements.

Per line, the single-request path costs four round trips; here a chunk costs about six in all:
lock all registration keys (sorted, so concurrent batches cannot deadlock), look them all up,
check every line's random candidates at once, insert the new persons, bump the block counts and
insert the registrations. Allocation stays uniform: each line takes the first free one of its
own iid uniform candidates (skipping numbers taken earlier in the chunk), as a sequence of
single allocations would. Lines whose candidates are all taken, or that lose a race, fall back
to the single-line allocator (exact k-th-free method), so a full bucket still ends in
`pin_space_exhausted` exactly as for single requests.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.db.types import Conn
from idservice.errors import ProblemError
from idservice.persons.context import PersonsContext
from idservice.persons.issuance import (
    IssueOutcome,
    PreparedIssue,
    allocate_person,
    existing_outcome,
    issued_outcome,
    person_columns,
)
from idservice.persons.views import load_record
from idservice.pin.format import bucket_prefix
from idservice.queries import persons as q

__all__ = ["BatchLine", "LineResult", "issue_chunk", "issue_many"]

Result = tuple[IssueOutcome | ProblemError, AuditEvent]
_CSPRNG = secrets.SystemRandom()
_CANDIDATES = 4


def _key(p: PreparedIssue) -> tuple[str, str]:
    return p.req.registration.authority, p.req.registration.number


def _prefix(p: PreparedIssue) -> str:
    child = p.req.child
    return bucket_prefix(p.req.registration.province_code, child.date_of_birth.year, child.sex)


async def issue_many(
    conn: Conn, ctx: PersonsContext, items: Sequence[PreparedIssue]
) -> list[Result]:
    """Issue or replay every item inside the caller's transaction; results in input order."""
    results: list[Result | None] = [None] * len(items)
    first_of: dict[tuple[str, str], int] = {}
    repeats: list[tuple[int, int]] = []
    for i, p in enumerate(items):
        j = first_of.setdefault(_key(p), i)
        if j != i:
            repeats.append((i, j))
    unique = sorted(first_of.values())
    authorities = [items[i].req.registration.authority for i in unique]
    numbers = [items[i].req.registration.number for i in unique]
    await conn.execute(q.LOCK_REGISTRATIONS, authorities, numbers)
    known = {(r["authority"], r["number"]): r
             for r in await conn.fetch(q.FIND_REGISTRATIONS, authorities, numbers)}

    new: list[int] = []
    for i in unique:
        row = known.get(_key(items[i]))
        if row is None:
            new.append(i)
        else:
            results[i] = existing_outcome(items[i], row["pin"], bytes(row["body_sha256"]),
                                          row["status"], row["issued_at"],
                                          load_record(row["registration"]))

    claims = await _claim_new(conn, ctx, items, new)
    issued = [i for i in new if not isinstance(claims[i], ProblemError)]
    if issued:
        await conn.execute(
            q.INSERT_REGISTRATIONS,
            [items[i].req.registration.authority for i in issued],
            [items[i].req.registration.number for i in issued],
            [items[i].digest for i in issued],
            [claims[i][0] for i in issued],  # type: ignore[index]
        )
    for i in new:
        results[i] = issued_outcome(items[i], claims[i])

    for i, j in repeats:  # a key repeated inside the chunk: compare with its first line
        first = results[j]
        assert first is not None
        outcome = first[0]
        if isinstance(outcome, IssueOutcome):
            results[i] = existing_outcome(items[i], outcome.pin, items[j].digest, outcome.status,
                                          outcome.issued_at, outcome.registration)
        else:
            results[i] = first
    return [r for r in results if r is not None]


async def _claim_new(
    conn: Conn, ctx: PersonsContext, items: Sequence[PreparedIssue], new: list[int]
) -> dict[int, tuple[str, datetime] | ProblemError]:
    rng = ctx.rng or _CSPRNG
    space = ctx.allocator.space
    candidates = {i: [f"{_prefix(items[i])}{rng.randrange(space):06d}"
                      for _ in range(_CANDIDATES)] for i in new}
    everything = [c for cs in candidates.values() for c in cs]
    taken = {r[0] for r in await conn.fetch(q.TAKEN_PINS, everything)} if everything else set()
    chosen: dict[int, str] = {}
    fallback: list[int] = []
    for i in new:
        pin = next((c for c in candidates[i] if c not in taken), None)
        if pin is None:
            fallback.append(i)
        else:
            chosen[i] = pin
            taken.add(pin)

    claims: dict[int, tuple[str, datetime] | ProblemError] = {}
    if chosen:
        order = list(chosen)
        columns = [person_columns(items[i]) for i in order]
        rows = await conn.fetch(
            q.INSERT_PERSONS,
            [chosen[i] for i in order],
            *[[c[k] for c in columns] for k in range(6)],
            [json.dumps(c[6], ensure_ascii=False) for c in columns],
            [c[7] for c in columns], [c[8] for c in columns], [c[9] for c in columns],
        )
        inserted = {r["pin"]: r["issued_at"] for r in rows}
        blocks: Counter[tuple[str, int]] = Counter()
        for i in order:
            pin = chosen[i]
            if pin in inserted:
                claims[i] = (pin, inserted[pin])
                blocks[(pin[:6], int(pin[6:]) // ctx.allocator.block_size)] += 1
            else:
                fallback.append(i)  # lost a race for that number
        if blocks:
            keys = sorted(blocks)
            await conn.execute(q.BUMP_BLOCKS, [k[0] for k in keys], [k[1] for k in keys],
                               [blocks[k] for k in keys])
    for i in sorted(fallback):
        claims[i] = await allocate_person(conn, ctx, items[i])
    return claims


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
    prepared = [(line, item) for line, item in lines if not isinstance(item, ProblemError)]
    async with ctx.pool.acquire() as conn, conn.transaction():
        issued = iter(await issue_many(conn, ctx, [item for _, item in prepared]))
        results: list[LineResult] = []
        events: list[AuditEvent] = []
        for line, item in lines:
            if isinstance(item, ProblemError):
                results.append((line, item))
                events.append(AuditEvent("pin.issue", "rejected",
                                         details={"line": line, "code": item.code}))
                continue
            result, event = next(issued)
            results.append((line, result))
            events.append(AuditEvent(event.action, event.outcome, pin=event.pin,
                                     details={**event.details, "line": line}))
        await record(conn, rctx, events)
    return results

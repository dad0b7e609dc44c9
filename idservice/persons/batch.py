"""Batch issuance: a chunk of lines in one transaction with a handful of statements.

Per line, the single-request path costs four round trips; here a chunk costs about five in all:
lock and look up all registration keys in one statement (sorted locks, so concurrent batches
cannot deadlock), claim numbers for all new persons at once (`allocation.claim_pins`: one
lookup of the random candidates, one insert that also counts the blocks) and insert the
registrations. A full bucket ends in `pin_space_exhausted` for its line exactly as for single
requests. The duplicate check (contract 9) is one statement for the chunk
(`issuance.duplicates_in_transaction`, its locks and look-up together), and
two lines of one chunk for the same child under different keys meet too: the later one is
checked against the earlier one (`persons.duplicates.earlier_matches`, the rule of the SQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.db.types import Conn
from idservice.errors import ProblemError
from idservice.persons.allocation import Claim, claim_pins
from idservice.persons.context import PersonsContext
from idservice.persons.duplicates import earlier_matches
from idservice.persons.issuance import (
    DuplicateFound,
    IssueOutcome,
    PreparedIssue,
    duplicates_in_transaction,
    existing_outcome,
    issued_outcome,
    override_event,
)
from idservice.persons.refusals import refusal
from idservice.persons.rows import RegistrationKey, key_arrays
from idservice.persons.views import load_record
from idservice.queries import persons as q

__all__ = ["BatchLine", "Claimer", "LineResult", "claim_new", "issue_chunk", "issue_many",
           "run_chunk"]

Result = tuple[IssueOutcome | ProblemError, list[AuditEvent]]

# How the new registrations of a chunk get their numbers, in item order: drawn by the allocator
# (`claim_new`), or, for an office's offline issuances, the reserved PINs they carry
# (`persons/offline.py`). Everything else about issuing is the same for both.
Claimer = Callable[[Conn, PersonsContext, Sequence[PreparedIssue]],
                   Awaitable[Sequence[Claim | ProblemError]]]


async def claim_new(conn: Conn, ctx: PersonsContext, items: Sequence[PreparedIssue]
                    ) -> Sequence[Claim | ProblemError]:
    return await claim_pins(conn, ctx, [p.row for p in items])


async def issue_many(
    conn: Conn, ctx: PersonsContext, items: Sequence[PreparedIssue],
    claimer: Claimer = claim_new,
) -> list[Result]:
    """Issue or replay every item inside the caller's transaction; results in input order."""
    results: list[Result | None] = [None] * len(items)
    key_of = [p.row.registration_key for p in items]  # built once: a line uses it four times
    first_of: dict[RegistrationKey, int] = {}
    repeats: list[tuple[int, int]] = []
    for i, key in enumerate(key_of):
        j = first_of.setdefault(key, i)
        if j != i:
            repeats.append((i, j))
    unique = sorted(first_of.values())
    keys = key_arrays([key_of[i] for i in unique])
    known = {RegistrationKey(r["province_code"], r["authority"], r["number"]): r
             for r in await conn.fetch(q.FIND_REGISTRATIONS_LOCKED, *keys)}

    new: list[int] = []
    for i in unique:
        row = known.get(key_of[i])
        if row is None:
            new.append(i)
        else:
            result, event = existing_outcome(items[i], row["pin"], bytes(row["body_sha256"]),
                                             row["status"], row["issued_at"],
                                             load_record(row["registration"]))
            results[i] = result, [event]

    found = dict(zip(new, await duplicates_in_transaction(conn, [items[i].row for i in new]),
                     strict=True))
    # line -> earlier new lines of this chunk it matches
    earlier = {i: [new[k] for k in ks] for i, ks in zip(
        new, earlier_matches([items[i].row for i in new]), strict=True)}
    refused = {i for i in new if (found[i] or earlier[i]) and items[i].override_reason is None}
    to_claim = [i for i in new if i not in refused]
    claims: dict[int, Claim | ProblemError | DuplicateFound] = dict(zip(
        to_claim, await claimer(conn, ctx, [items[i] for i in to_claim]), strict=True))
    issued = {i: c for i, c in claims.items() if isinstance(c, Claim)}
    if issued:
        await conn.execute(q.INSERT_REGISTRATIONS,
                           *key_arrays([key_of[i] for i in issued]),
                           [items[i].digest for i in issued], [c.pin for c in issued.values()])
    for i in new:
        candidates = found[i] + sorted(c.pin for j in earlier[i]
                                       if isinstance(c := claims.get(j), Claim))
        if i in refused:
            claims[i] = DuplicateFound(candidates)
        result, events = issued_outcome(items[i], claims[i])
        if i in issued and candidates:
            events.append(override_event(items[i], issued[i].pin, candidates))
        results[i] = result, events

    for i, j in repeats:  # a key repeated inside the chunk: compare with its first line
        first = results[j]
        assert first is not None
        outcome = first[0]
        if isinstance(outcome, IssueOutcome):
            result, event = existing_outcome(items[i], outcome.pin, items[j].digest,
                                             outcome.status, outcome.issued_at,
                                             outcome.registration)
            results[i] = result, [event]
        else:
            results[i] = first
    return [r for r in results if r is not None]


# One line of a batch: its number and either a prepared request or the problem found in it.
BatchLine = tuple[int, "PreparedIssue | ProblemError"]
LineResult = tuple[int, "IssueOutcome | ProblemError"]

T = TypeVar("T")
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


async def issue_chunk(
    ctx: PersonsContext, rctx: RequestContext, lines: Sequence[BatchLine]
) -> list[LineResult]:
    """Issue a chunk of batch lines in one transaction, one audit event per line.

    Rejected lines (bad input) are recorded too, so the log has exactly one event per line.
    A deadlock between concurrent batches retries the chunk: every line is idempotent.
    """
    return await run_chunk(lambda: _issue_chunk_once(ctx, rctx, lines))


async def run_chunk(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run one chunk's transaction, again after a deadlock or serialization failure between
    concurrent chunks (every line is idempotent, so running it again is safe)."""
    for tries in range(3):
        try:
            return await attempt()
        except _RETRYABLE:
            if tries == 2:
                raise
            await asyncio.sleep(0.05 * (tries + 1))
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
                events.append(refusal("pin.issue", item, line=line))
                continue
            result, written = next(issued)
            results.append((line, result))
            events.extend(AuditEvent(event.action, event.outcome, pin=event.pin,
                                     details={**event.details, "line": line})
                          for event in written)
        await record(conn, rctx, events)
    return results

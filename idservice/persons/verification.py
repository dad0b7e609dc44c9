"""PIN verification against the register (contract 4, `POST /v1/pins/verify`): the caller's
count, the record's name and birth date, the `pin.verify` event committed before the answer
leaves (a verification that cannot be audited is not answered).

`verify_alone` is one verification: two statements, no explicit transaction (the count commits
on its own, then the event). `VerifyCoalescer` answers the same for the verifications one
worker has waiting at the same moment (issue 16 goal 4; db/group_commit.py): one statement
counts and reads for the whole group (each caller's count rises by its members in the group,
member by member in arrival order, so each member sees the count it would have seen alone in
that order), then one statement writes every answered member's event, in one transaction.
Names are compared here, not in SQL: `names.same_name` (constant time over the normalised
bytes) stays the one comparison of verification.

A group whose events cannot be written (a PostgreSQL error other than the database being
gone) is run again member by member; their counts were already committed, so those members
count twice in the caller's minute: a limit reached a little early, never a verification
answered without its event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import event_columns
from idservice.db.group_commit import GroupCommit
from idservice.persons.names import same_name
from idservice.queries import persons as q
from idservice.queries.audit import WRITE_EVENT_EACH, WRITE_EVENTS

__all__ = ["Verification", "Verified", "VerifyCoalescer", "verify_alone"]


@dataclass(frozen=True, slots=True)
class Verification:
    pin: str  # well-formed (checked by the caller)
    full_name: str
    date_of_birth: date
    counter: str  # the caller's key in the per-minute count
    limit: int  # verifications a minute per caller; 0: not counted
    rctx: RequestContext


@dataclass(frozen=True, slots=True)
class Verified:
    match: bool
    retry_after: int | None = None  # set: over the limit, nothing verified nor recorded


def _judge(v: Verification, row: asyncpg.Record) -> Verified:
    """The refusal when `v` is over its limit, else the match (its event still to be
    written)."""
    if v.limit > 0 and row["n"] > v.limit:
        return Verified(False, retry_after=int(row["retry_after"]))
    return Verified(row["full_name"] is not None
                    and same_name(row["full_name"], v.full_name)
                    and row["date_of_birth"] == v.date_of_birth)


def _event(v: Verification, answer: Verified) -> AuditEvent:
    return AuditEvent("pin.verify", "match" if answer.match else "no_match", pin=v.pin)


async def verify_alone(pool: asyncpg.Pool, v: Verification) -> Verified:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(q.VERIFY_COUNTED, v.pin, v.counter, v.limit)
        assert row is not None
        answer = _judge(v, row)
        if answer.retry_after is None:
            await conn.execute(WRITE_EVENTS, *event_columns(v.rctx, [_event(v, answer)]).args())
    return answer


class VerifyCoalescer(GroupCommit[Verification, Verified]):
    """One per worker: `submit(v)` answers what `verify_alone(pool, v)` would."""

    def __init__(self, pool: asyncpg.Pool, *, max_group: int = 32, in_flight: int = 2) -> None:
        super().__init__(max_group=max_group, in_flight=in_flight)
        self._pool = pool

    async def run_alone(self, member: Verification) -> Verified:
        return await verify_alone(self._pool, member)

    async def run_group(self, members: list[Verification]) -> list[Verified]:
        answers: dict[int, Verified] = {}
        async with self._pool.acquire() as conn:
            # One count-and-read statement per limit: one worker has one setting, so one.
            for limit in sorted({v.limit for v in members}):
                part = [(i, v) for i, v in enumerate(members) if v.limit == limit]
                rows = await conn.fetch(q.VERIFY_COUNTED_EACH, [v.pin for _, v in part],
                                        [v.counter for _, v in part], limit)
                by_position = {int(row["i"]): row for row in rows}
                for position, (i, v) in enumerate(part, start=1):
                    answers[i] = _judge(v, by_position[position])
            ordered = [answers[i] for i in range(len(members))]
            recorded = [(v, a) for v, a in zip(members, ordered, strict=True)
                        if a.retry_after is None]
            if recorded:
                await conn.execute(WRITE_EVENT_EACH, *_event_columns(recorded))
        return ordered


def _event_columns(recorded: list[tuple[Verification, Verified]]) -> list[list[Any]]:
    """One `pin.verify` event per member -> WRITE_EVENT_EACH's arrays (one element each)."""
    columns: list[list[Any]] = [[] for _ in range(9)]
    for v, answer in recorded:
        (actor_type, actor_id, request_id, source_ip, actions, pins, purposes, outcomes,
         details) = event_columns(v.rctx, [_event(v, answer)]).args()
        for column, value in zip(columns, (actor_type, actor_id, request_id, source_ip,
                                           actions[0], pins[0], purposes[0], outcomes[0],
                                           details[0]), strict=True):
            column.append(value)
    return columns

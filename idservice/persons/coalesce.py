"""Group commit for single issuances (issue 16 goal 1; db/group_commit.py has the mechanism and
its guarantees): the `issue_pin()` calls that one worker has waiting at the same moment go to
the database as one statement, `issue_pins()` (migration 0059), in one transaction.

issue_pin()'s outcomes (issued, replayed, conflict, duplicate, needs_exact) are per member; the
members run one after the other inside the statement, so two members with one registration key
behave as two requests in a row (migration 0059). The group's registrations and events are
written once, at its end (migration 0072). A request with an external idempotency key
(an OSIA transactionId) joins the same groups (migration 0060): its member claims the key
inside the group's statement, as `issue_pin_claimed()` would alone, with the same outcomes
('external_key_held' included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from idservice.db.group_commit import GroupCommit
from idservice.queries import persons as q

__all__ = ["IssueCoalescer", "issue_alone"]

Args = tuple[Any, ...]  # the parameters of queries.persons.ISSUE_PIN, in order
# An external idempotency key claimed with the issuance (issuance.ExternalKey: source, scope,
# external id), as ISSUE_PIN_CLAIMED takes it after the ISSUE_PIN arguments.
Key = tuple[str, str, str]
_Member = tuple[Args, Key | None]


class IssueCoalescer(GroupCommit[_Member, asyncpg.Record]):
    """One per worker (event loop): `issue(args)` answers what `ISSUE_PIN` with `args` would,
    `issue(args, key)` what `ISSUE_PIN_CLAIMED` would (migration 0060: keyed and unkeyed
    members share a group)."""

    def __init__(self, pool: asyncpg.Pool, *, max_group: int = 32, in_flight: int = 2) -> None:
        super().__init__(max_group=max_group, in_flight=in_flight)
        self._pool = pool

    async def issue(self, args: Args, key: Key | None = None) -> asyncpg.Record:
        return await self.submit((args, key))

    async def run_group(self, members: list[_Member]) -> list[asyncpg.Record]:
        rows = await self._pool.fetch(q.ISSUE_PINS, *_columns(members))
        by_position = {row["i"]: row for row in rows}
        return [by_position[i] for i in range(1, len(members) + 1)]

    async def run_alone(self, member: _Member) -> asyncpg.Record:
        return await issue_alone(self._pool, *member)


async def issue_alone(pool: asyncpg.Pool, args: Args, key: Key | None = None) -> asyncpg.Record:
    """One issuance on its own: `ISSUE_PIN`, or `ISSUE_PIN_CLAIMED` with a key (the path
    without a coalescer, and a group of one)."""
    query = (q.ISSUE_PIN, *args) if key is None else (q.ISSUE_PIN_CLAIMED, *args, *key)
    row = await pool.fetchrow(*query)
    if row is None:
        raise RuntimeError("issue_pin() returned no row")
    return row


def _columns(group: Sequence[_Member]) -> tuple[Any, ...]:
    """ISSUE_PIN's arguments and the key of each member -> ISSUE_PINS's arrays (one element
    per member; a member without a key has NULL source, scope and external id)."""
    (rows, digests, prefixes, candidates, block_sizes, actor_types, actor_ids, request_ids,
     source_ips, details, overrides) = zip(*(args for args, _ in group), strict=True)
    keys = [key or (None, None, None) for _, key in group]
    tries = len(candidates[0])
    if any(len(c) != tries for c in candidates) or len(set(block_sizes)) != 1:
        raise ValueError("one group, one allocator: same candidate count and block size")
    return (list(rows), list(digests), list(prefixes), [s for c in candidates for s in c],
            tries, block_sizes[0], list(actor_types), list(actor_ids), list(request_ids),
            list(source_ips), list(details), list(overrides), [k[0] for k in keys],
            [k[1] for k in keys], [k[2] for k in keys])

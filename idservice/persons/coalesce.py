"""Group commit for single issuances (issue 16 goal 1): the `issue_pin()` calls that one worker
has waiting at the same moment go to the database as one statement, `issue_pins()` (migration
0059), in one transaction: one round trip and one WAL flush for the group instead of one each.

No timer: while fewer than `in_flight` groups are running, a group starts at the end of the
event loop's current turn (`call_soon`) with the requests that arrived in that turn (alone when
the worker is idle: no added latency); the requests that arrive while the groups run wait and
leave together, up to `max_group` in one statement, as soon as a group ends. The busier the
worker, the larger the groups.

What a group answers is exactly what each request would have got alone:
- issue_pin()'s outcomes (issued, replayed, conflict, duplicate, needs_exact) are per member;
  the members run one after the other inside the statement, so two members with one
  registration key behave as two requests in a row (migration 0059);
- an error reported by PostgreSQL rolled the whole group back: nothing of it was committed, so
  every member is run again on its own (`issue_pin()`, today's single path), and only the
  member that fails alone gets the error (one bad request never refuses the others; a deadlock
  between two groups is resolved the same way);
- a lost connection (server killed, shut down, network): the group's commit is unknown, and
  every member gets that error, answered 503 like any database outage; a member that did
  commit is replayed (200, the same PIN) when its client retries. Never a 201 for a row that
  was not committed: a member is answered only from the rows of a statement that succeeded.

A request with an external idempotency key (an OSIA transactionId) joins the same groups
(migration 0060): its member claims the key inside the group's statement, as
`issue_pin_claimed()` would alone, with the same outcomes ('external_key_held' included).

The group's statement runs in a task of its own, so a client that disconnects cannot cancel
the statement of the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from idservice.logging import get_logger
from idservice.queries import persons as q

__all__ = ["IssueCoalescer"]

_log = get_logger(__name__)

# PostgreSQL errors after which running the members again would fail the same way, or worse
# (more connections): the database is not there, or not writable. Everything else PostgreSQL
# reports for the group statement (a member's own error, a deadlock, a timeout) is retried
# member by member.
_UNAVAILABLE: tuple[type[asyncpg.PostgresError], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
)

Args = tuple[Any, ...]  # the parameters of queries.persons.ISSUE_PIN, in order
# An external idempotency key claimed with the issuance (issuance.ExternalKey: source, scope,
# external id), as ISSUE_PIN_CLAIMED takes it after the ISSUE_PIN arguments.
Key = tuple[str, str, str]
_Waiter = tuple[Args, Key | None, "asyncio.Future[asyncpg.Record]"]


class IssueCoalescer:
    """One per worker (event loop): `issue(args)` answers what `ISSUE_PIN` with `args` would,
    `issue(args, key)` what `ISSUE_PIN_CLAIMED` would (migration 0060: keyed and unkeyed
    members share a group)."""

    def __init__(self, pool: asyncpg.Pool, *, max_group: int = 32, in_flight: int = 2) -> None:
        if max_group < 1 or in_flight < 1:
            raise ValueError("max_group and in_flight must be >= 1")
        self._pool = pool
        self._max_group = max_group
        self._in_flight = in_flight
        self._queue: list[_Waiter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_pending = False
        # For tests and the bench: statements sent (groups of one included), requests sent in
        # them, requests run again alone after their group's statement failed.
        self.groups = 0
        self.members = 0
        self.retried = 0

    async def issue(self, args: Args, key: Key | None = None) -> asyncpg.Record:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[asyncpg.Record] = loop.create_future()
        self._queue.append((args, key, future))
        if not self._start_pending:
            self._start_pending = True
            loop.call_soon(self._start_groups)
        return await future

    async def close(self) -> None:
        """Wait for the running groups (their requests are still waiting for them)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_groups(self) -> None:
        self._start_pending = False
        while self._queue and len(self._tasks) < self._in_flight:
            group, self._queue = (self._queue[:self._max_group],
                                  self._queue[self._max_group:])
            task = asyncio.create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._start_groups()

    async def _run(self, group: list[_Waiter]) -> None:
        self.groups += 1
        self.members += len(group)
        try:
            if len(group) == 1:
                [(args, key, future)] = group
                _answer(future, await self._pool.fetchrow(*_alone_query(args, key)))
                return
            try:
                rows = await self._pool.fetch(q.ISSUE_PINS, *_columns(group))
            except asyncpg.PostgresError as exc:
                if isinstance(exc, _UNAVAILABLE):
                    raise
                _log.warning("issue_group_retried_alone", size=len(group),
                             error=type(exc).__name__, sqlstate=exc.sqlstate)
                self.retried += len(group)
                await asyncio.gather(*(self._alone(args, key, future)
                                       for args, key, future in group))
                return
            by_position = {row["i"]: row for row in rows}
            for i, (_, _, future) in enumerate(group, start=1):
                _answer(future, by_position[i])
        except BaseException as exc:  # the group's commit is unknown: every member gets it
            for _, _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _alone(self, args: Args, key: Key | None,
                     future: asyncio.Future[asyncpg.Record]) -> None:
        try:
            _answer(future, await self._pool.fetchrow(*_alone_query(args, key)))
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)


def _answer(future: asyncio.Future[asyncpg.Record], row: asyncpg.Record | None) -> None:
    if not future.done():  # done: its request was cancelled (client gone)
        if row is None:
            future.set_exception(RuntimeError("issue_pin() returned no row"))
        else:
            future.set_result(row)


def _alone_query(args: Args, key: Key | None) -> tuple[Any, ...]:
    """The statement and arguments of one member on its own (today's single path)."""
    return (q.ISSUE_PIN, *args) if key is None else (q.ISSUE_PIN_CLAIMED, *args, *key)


def _columns(group: Sequence[_Waiter]) -> tuple[Any, ...]:
    """ISSUE_PIN's arguments and the key of each member -> ISSUE_PINS's arrays (one element
    per member; a member without a key has NULL source, scope and external id)."""
    (rows, digests, prefixes, candidates, block_sizes, actor_types, actor_ids, request_ids,
     source_ips, details, overrides) = zip(*(args for args, _, _ in group), strict=True)
    keys = [key or (None, None, None) for _, key, _ in group]
    tries = len(candidates[0])
    if any(len(c) != tries for c in candidates) or len(set(block_sizes)) != 1:
        raise ValueError("one group, one allocator: same candidate count and block size")
    return (list(rows), list(digests), list(prefixes), [s for c in candidates for s in c],
            tries, block_sizes[0], list(actor_types), list(actor_ids), list(request_ids),
            list(source_ips), list(details), list(overrides), [k[0] for k in keys],
            [k[1] for k in keys], [k[2] for k in keys])

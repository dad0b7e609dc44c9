"""Group commit in the application (issue 16): the requests of one worker waiting for the same
kind of statement at the same moment go to the database together, in one transaction: one
round trip and one WAL flush for the group instead of one each. Issuance
(persons/coalesce.py), PIN verification (persons/verification.py) and officer login
(auth/login_group.py) are its users; this module is the mechanism only, what a group runs is
theirs.

No timer: while fewer than `in_flight` groups are running, a group starts at the end of the
event loop's current turn (`call_soon`) with the requests that arrived in that turn (alone when
the worker is idle: no added latency); the requests that arrive while the groups run wait and
leave together, up to `max_group` at once, as soon as a group ends. The busier the worker, the
larger the groups.

What a group answers is exactly what each request would have got alone:
- a group of one runs `run_alone`, the single path;
- an error reported by PostgreSQL for the group rolled its transaction back: nothing of it was
  committed, so every member is run again on its own (`run_alone`), and only the member that
  fails alone gets the error (one bad request never refuses the others; a deadlock between two
  groups is resolved the same way);
- the database gone (lost connection, shut down, not writable): the group's commit is unknown,
  and every member gets that error, answered 503 like any database outage. Never an answer
  from a statement that did not succeed.

The group runs in a task of its own, so a client that disconnects cannot cancel the statement
of the others.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

import asyncpg

from idservice.logging import get_logger

__all__ = ["UNAVAILABLE", "GroupCommit"]

_log = get_logger(__name__)

# PostgreSQL errors after which running the members again would fail the same way, or worse
# (more connections): the database is not there, or not writable. Everything else PostgreSQL
# reports for a group (a member's own error, a deadlock, a timeout) is retried member by member.
UNAVAILABLE: tuple[type[asyncpg.PostgresError], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
)

M = TypeVar("M")  # what one request hands to the group
R = TypeVar("R")  # what it gets back


class GroupCommit(ABC, Generic[M, R]):
    """One per worker (event loop) and kind of statement: `submit(member)` answers what
    `run_alone(member)` would."""

    def __init__(self, *, max_group: int = 32, in_flight: int = 2) -> None:
        if max_group < 1 or in_flight < 1:
            raise ValueError("max_group and in_flight must be >= 1")
        self._max_group = max_group
        self._in_flight = in_flight
        self._queue: list[tuple[M, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_pending = False
        # For tests and the bench: groups run (groups of one included), members sent in
        # them, members run again alone after their group failed.
        self.groups = 0
        self.members = 0
        self.retried = 0

    @abstractmethod
    async def run_group(self, members: list[M]) -> list[R]:
        """The answers of two or more members, in their order, from one transaction."""

    @abstractmethod
    async def run_alone(self, member: M) -> R:
        """One member on its own: the single path."""

    async def submit(self, member: M) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((member, future))
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

    async def _run(self, group: list[tuple[M, asyncio.Future[R]]]) -> None:
        self.groups += 1
        self.members += len(group)
        try:
            if len(group) == 1:
                [(member, future)] = group
                _answer(future, await self.run_alone(member))
                return
            try:
                answers = await self.run_group([member for member, _ in group])
            except asyncpg.PostgresError as exc:
                if isinstance(exc, UNAVAILABLE):
                    raise
                _log.warning("group_retried_alone", kind=type(self).__name__, size=len(group),
                             error=type(exc).__name__, sqlstate=exc.sqlstate)
                self.retried += len(group)
                await asyncio.gather(*(self._alone(member, future)
                                       for member, future in group))
                return
            if len(answers) != len(group):
                raise RuntimeError(f"a group of {len(group)} got {len(answers)} answers")
            for (_, future), answer in zip(group, answers, strict=True):
                _answer(future, answer)
        except BaseException as exc:  # the group's commit is unknown: every member gets it
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _alone(self, member: M, future: asyncio.Future[R]) -> None:
        try:
            _answer(future, await self.run_alone(member))
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)


def _answer(future: asyncio.Future[R], answer: R) -> None:
    if not future.done():  # done: its request was cancelled (client gone)
        future.set_result(answer)

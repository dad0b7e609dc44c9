"""Officer logins in groups (issue 16 goal 3; db/group_commit.py has the mechanism and its
guarantees): the `officer_login()` statements one worker has waiting at the same moment go to
the database as one statement (`OFFICER_LOGIN_EACH`), one transaction and one commit.

Each member's outcome is what its statement alone would have answered: officer_login() runs
for the members one after the other inside the statement, so of two logins with one nonce the
first to run succeeds and the other gets `nonce_used`, and a per-operator limit counts the
members one by one.
The members run in the order of their certificate's fingerprint (arrival order among one
certificate's), so two groups lock the rows of one operator (its rate-limit window, its live
certificate) in one order and cannot deadlock on them.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from idservice.db.group_commit import GroupCommit
from idservice.queries import officers as q

__all__ = ["LoginArgs", "LoginCoalescer", "login_alone"]

LoginArgs = tuple[Any, ...]  # the twelve parameters of queries.officers.OFFICER_LOGIN, in order
_CERT_SHA256 = 2  # the position of p_cert_sha256 among them


async def login_alone(pool: asyncpg.Pool, args: LoginArgs) -> asyncpg.Record:
    """One login's statement on its own (no coalescer, and a group of one)."""
    row = await pool.fetchrow(q.OFFICER_LOGIN, *args)
    if row is None:
        raise RuntimeError("officer_login() returned no row")
    return row


class LoginCoalescer(GroupCommit[LoginArgs, asyncpg.Record]):
    """One per worker (event loop): `submit(args)` answers what `login_alone(pool, args)`
    would."""

    def __init__(self, pool: asyncpg.Pool, *, max_group: int = 32, in_flight: int = 2) -> None:
        super().__init__(max_group=max_group, in_flight=in_flight)
        self._pool = pool

    async def run_alone(self, member: LoginArgs) -> asyncpg.Record:
        return await login_alone(self._pool, member)

    async def run_group(self, members: list[LoginArgs]) -> list[asyncpg.Record]:
        order = sorted(range(len(members)), key=lambda i: (members[i][_CERT_SHA256], i))
        columns = [list(column) for column in zip(*(members[i] for i in order), strict=True)]
        rows = await self._pool.fetch(q.OFFICER_LOGIN_EACH, *columns, order)
        by_member = {int(row["i"]): row for row in rows}
        return [by_member[i] for i in range(len(members))]

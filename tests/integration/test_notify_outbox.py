"""The outbox table's own rules (migration 0067): every topic the service has, and only those,
can be written; `seq` is unique once given; and writing an event takes no lock on its topic's
row (the foreign key's FOR KEY SHARE, taken by every birth on the one 'liveBirth' row, is gone).

Each test runs in a transaction that is rolled back. Shown to fail: before 0067, the lock test
(the topic row's xmax was the writing transaction's id: `825 != 825`) and the other two (the
foreign key refused the unknown topic, the old unique constraint refused the second `seq`);
with 'changeOfGender' left out of the CHECK, the topic test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from idservice.notify.events import Topic
from idservice.runtime import DatabaseTarget
from tests.support.rolled_back import rolled_back

T = TypeVar("T")
WRITE = "INSERT INTO notify_event (topic, uin) VALUES ($1, '052000000001') RETURNING id"


def _in_rolled_back_transaction(database: DatabaseTarget,
                                body: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    assert database.owner_url is not None
    return asyncio.run(rolled_back(database.owner_url, body))


def test_every_topic_and_only_the_topics_can_be_written(database: DatabaseTarget) -> None:
    async def body(conn: asyncpg.Connection) -> tuple[set[str], set[str], str | None]:
        topics = {r["name"] for r in await conn.fetch("SELECT name FROM notify_topic")}
        written = set()
        for name in sorted(topics):
            async with conn.transaction():  # a savepoint per topic
                await conn.fetchval(WRITE, name)
                written.add(name)
        refused = None
        try:
            async with conn.transaction():
                await conn.fetchval(WRITE, "marriage")
        except asyncpg.CheckViolationError as exc:
            refused = exc.constraint_name
        return topics, written, refused

    topics, written, refused = _in_rolled_back_transaction(database, body)
    assert topics == {t.value for t in Topic}  # the three lists of topics agree
    assert written == topics
    assert refused == "notify_event_topic_check"


def test_seq_is_unique_once_given(database: DatabaseTarget) -> None:
    async def body(conn: asyncpg.Connection) -> str | None:
        ids = [await conn.fetchval(WRITE, "liveBirth") for _ in range(3)]  # NULL seq: allowed
        await conn.execute("UPDATE notify_event SET seq = -1 WHERE id = $1", ids[0])
        try:
            async with conn.transaction():
                await conn.execute("UPDATE notify_event SET seq = -1 WHERE id = $1", ids[1])
        except asyncpg.UniqueViolationError as exc:
            return exc.constraint_name
        return None

    assert _in_rolled_back_transaction(database, body) == "notify_event_seq"


def test_writing_an_event_locks_no_topic_row(database: DatabaseTarget) -> None:
    async def body(conn: asyncpg.Connection) -> tuple[int, int]:
        await conn.fetchval(WRITE, "liveBirth")
        xmax = await conn.fetchval(
            "SELECT xmax::text::bigint FROM notify_topic WHERE name = 'liveBirth'")
        xid = await conn.fetchval("SELECT pg_current_xact_id()::text::bigint")
        return xmax, xid

    xmax, xid = _in_rolled_back_transaction(database, body)
    assert xmax != xid  # the foreign key's check left the writer's id on the row: a lock

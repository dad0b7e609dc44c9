"""The outbox table's own rules (migration 0067): every topic the service has, and only those,
can be written; `seq` is unique once given; and writing an event takes no lock on its topic's
row (the foreign key's FOR KEY SHARE, taken by every birth on the one 'liveBirth' row, is gone).

Each test runs in a transaction that is rolled back. Shown to fail: before 0067, the lock test
(the topic row's xmax was the writing transaction's id: `825 != 825`) and the other two (the
foreign key refused the unknown topic, the old unique constraint refused the second `seq`);
with 'changeOfGender' left out of the CHECK, the topic test.

The sequencing test (the rule of 0044/0063 that migration 0069's one-UPDATE numbering keeps)
runs in a database of its own. Shown to fail with 0069 numbering by id difference instead of
rank (`{5: 5} != {5: 4}`: the gap), and with the horizon's stop left out (`4 == 0`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from idservice.notify.events import Topic
from idservice.queries import notify as qn
from idservice.runtime import DatabaseTarget
from tests.support.horizon import wait_for_older_transactions
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


SEQUENCE_ROUND = "SELECT notify_sequence_batch($1)"
SEQS = "SELECT id, seq FROM notify_event WHERE id = ANY($1::bigint[]) ORDER BY id"


def test_sequencing_numbers_in_id_order_after_every_earlier_transaction(
        own_database: DatabaseTarget) -> None:
    """The rule of migrations 0044/0063, kept by 0069's one-UPDATE sequencing: rows are numbered
    in `id` order, one after the other from the last number given, never past a row whose
    transaction may still commit (an event of an open transaction holds back the events
    committed after it), at most `max_rows` per call. The ids have a gap (a rolled-back write)
    so a rank is not confused with an id difference."""
    assert own_database.owner_url is not None
    url = own_database.owner_url

    async def main() -> None:
        owner, open_tx, other = [await asyncpg.connect(url) for _ in range(3)]
        try:
            last = await owner.fetchval("SELECT last FROM notify_sequence")
            tx = open_tx.transaction()
            await tx.start()
            early = await open_tx.fetchval(WRITE, "liveBirth")
            between = await other.fetchval(WRITE, "liveBirth")
            later = [await other.fetchval(WRITE, "liveBirth")]
            gap = other.transaction()
            await gap.start()
            await other.fetchval(WRITE, "liveBirth")
            await gap.rollback()
            later += [await other.fetchval(WRITE, "liveBirth") for _ in range(2)]
            assert await owner.fetchval(SEQUENCE_ROUND, 1000) == 0  # held back by `early`
            assert {r["seq"] for r in await owner.fetch(SEQS, [between, *later])} == {None}
            await tx.commit()
            await wait_for_older_transactions(owner)
            assert await owner.fetchval(SEQUENCE_ROUND, 2) == 2  # at most max_rows
            assert await owner.fetchval(SEQUENCE_ROUND, 1000) == 3
            ids = [early, between, *later]
            assert ids == sorted(ids) and later[1] - later[0] == 2  # the gap
            numbered = {r["id"]: r["seq"] for r in await owner.fetch(SEQS, ids)}
            assert numbered == {i: last + rank for rank, i in enumerate(ids, start=1)}
            assert await owner.fetchval("SELECT last FROM notify_sequence") == last + 5
        finally:
            for conn in (owner, open_tx, other):
                await conn.close()

    asyncio.run(main())


SUBSCRIBE = """
INSERT INTO notify_subscription (client_id, jurisdiction, topic, protocol, address, countdown,
                                 max_retries, active, cursor, next_at)
VALUES ('test-due', '052', 'liveBirth', 'http', 'https://due.example.gov.vn/' || $1, 1, 3, true,
        $2, clock_timestamp() - interval '1 minute')
RETURNING id::text
"""
EVENTS = """
INSERT INTO notify_event (topic, uin) SELECT 'liveBirth', lpad(g::text, 12, '0')
  FROM generate_series(1, $1::int) AS g
"""
OUTBOX_SEQ_SCANS = "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'notify_event'"


def test_the_due_subscriptions_probe_the_outbox_by_its_index(
        own_database: DatabaseTarget) -> None:
    """The delivery worker's two due-checks (`DUE_SUBSCRIPTION_IDS`, `DUE_SUBSCRIPTIONS`) on a
    connection held to generic plans (what the plan cache picks by itself), with a few thousand
    events in the outbox: a subscription with events after its cursor is due, one at the end
    is not, and the outbox is never read by a sequential scan. Shown to fail before migration
    0071: the join's plan was a hash semi join over a sequential scan of the outbox, one per
    call (20 counted here)."""
    assert own_database.owner_url is not None
    owner_url = own_database.owner_url

    async def main() -> tuple[list[str], list[str], int, str, str]:
        owner = await asyncpg.connect(owner_url)
        service = await asyncpg.connect(own_database.service_url, server_settings={
            "plan_cache_mode": "force_generic_plan"})
        try:
            await owner.execute(EVENTS, 3000)
            await wait_for_older_transactions(owner)
            assert await owner.fetchval("SELECT notify_sequence_batch(20000)") == 3000
            last = await owner.fetchval("SELECT last FROM notify_sequence")
            behind = await owner.fetchval(SUBSCRIBE, "behind", last - 10)
            caught_up = await owner.fetchval(SUBSCRIBE, "caught-up", last)
            await owner.execute("ANALYZE notify_event")

            async def seq_scans() -> int:
                await service.execute("SELECT pg_stat_force_next_flush()")
                await owner.execute("SELECT pg_stat_clear_snapshot()")
                return int(await owner.fetchval(OUTBOX_SEQ_SCANS))

            before = await seq_scans()
            for _ in range(10):
                due = [r["id"] for r in await service.fetch(qn.DUE_SUBSCRIPTION_IDS, 10)]
                again = [r["id"] for r in await service.fetch(
                    qn.DUE_SUBSCRIPTIONS, [behind, caught_up])]
            scans = await seq_scans() - before
            return due, again, scans, behind, caught_up
        finally:
            await service.close()
            await owner.close()

    due, again, scans, behind, caught_up = asyncio.run(main())
    assert due == [behind] and again == [behind], (due, again, caught_up)
    assert scans == 0

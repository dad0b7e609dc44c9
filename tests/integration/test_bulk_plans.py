"""The background work on the audit log and the notification outbox keeps its speed after a bulk
load.

What bench/scale.py met (2026-12-07): the integrator's batch statement, planned at the
service's start while the log was nearly empty, kept a plan made for that size (the plan cache
chooses the generic plan after five cheap executions); after 100,000 persons were loaded by SQL
it took 5-16 s per batch of 5,000 leaves (a sequential scan of the event partition per leaf).
Reproducing it found the same in the sequencer: the contiguity trigger's parameterless
`max(index)` (always its generic plan) scanned the log once per row.

Here, in a database of its own: the tables are vacuumed while small (their statistics then say
"a page or so"), autovacuum is kept off them (its ANALYZE would invalidate the plans and hide
the fault), the workers' connection is held to generic plans (`plan_cache_mode =
force_generic_plan` for the session: what the plan cache chooses by itself) and runs a round on
the small log, then 60,000 events arrive by SQL; sequencing them and integrating three batches
of 5,000 must take well under a statement timeout's worth. Shown to fail: with migration 0062
left out (the row trigger's `max(index)`, a sequential scan per row), sequencing hits the 10 s
statement timeout in its second round of 10,000; without `enable_seqscan = off` in
`audit/leaves.PLAN`, the integrator's batches took 0.85, 2.8 and 6.3 s (growing with each).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg

from idservice.audit.integrator import integrate_once
from idservice.audit.sequencer import sequence_once
from idservice.notify.delivery import Deliverer, DeliveryConfig
from idservice.queries.audit import SEQUENCE
from idservice.runtime import DatabaseTarget
from tests.support.horizon import wait_for_older_transactions

ROWS = 60_000
ROUND_LIMIT_S = 2.0  # an integration batch takes ~0.05-0.3 s here

# Autovacuum off for the tables the workers read (every audit_event partition too): its
# ANALYZE would invalidate the cached plans and hide the fault this test is about.
NO_AUTOVACUUM = """
DO $$
DECLARE t regclass;
BEGIN
  FOR t IN SELECT i.inhrelid::regclass FROM pg_inherits i
            WHERE i.inhparent = 'audit_event'::regclass
           UNION ALL SELECT 'audit_log'::regclass UNION ALL SELECT 'notify_event'::regclass
  LOOP
    EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = false)', t);
  END LOOP;
END $$
"""

EVENTS = """
INSERT INTO audit_event (actor_type, actor_id, action, pin, outcome, request_id, source_ip,
                         details)
SELECT 'client', 'bulk-test', 'pin.issue', lpad(g::text, 12, '0'), 'issued', 'r' || g,
       '127.0.0.1', '{}'::jsonb
  FROM generate_series(1, $1::int) AS g
"""

OUTBOX = """
INSERT INTO notify_event (topic, uin) SELECT 'liveBirth', lpad(g::text, 12, '0')
  FROM generate_series(1, $1::int) AS g
"""


@asynccontextmanager
async def _generic_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    """One connection held to generic plans, as the plan cache would choose by itself."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, server_settings={
        "plan_cache_mode": "force_generic_plan", "statement_timeout": "10s"})
    try:
        yield pool
    finally:
        await pool.close()


async def _small_tables(owner_url: str) -> asyncpg.Connection:
    owner = await asyncpg.connect(owner_url)
    await owner.execute(NO_AUTOVACUUM)
    await owner.execute(EVENTS, 20)
    for table in ("audit_event", "audit_log", "notify_event"):  # the outbox empty
        await owner.execute(f"VACUUM ANALYZE {table}")
    await wait_for_older_transactions(owner)
    return owner


def test_sequencing_and_integration_keep_their_speed_after_a_bulk_load(
        own_database: DatabaseTarget) -> None:
    owner_url = own_database.owner_url
    assert owner_url is not None

    async def run() -> list[float]:
        owner = await _small_tables(owner_url)
        try:
            async with _generic_pool(own_database.service_url) as pool:
                await sequence_once(pool)
                assert await integrate_once(pool, wait=True) == 20  # plans made on small tables
                await owner.execute(EVENTS, ROWS)
                await wait_for_older_transactions(owner)
                t0 = time.perf_counter()
                assert await sequence_once(pool) == ROWS
                rounds = [time.perf_counter() - t0]
                for _ in range(3):
                    t0 = time.perf_counter()
                    assert await integrate_once(pool, batch=5000, wait=True) == 5000
                    rounds.append(time.perf_counter() - t0)
                return rounds
        finally:
            await owner.close()

    rounds = asyncio.run(run())
    assert rounds[0] < 3 * ROUND_LIMIT_S, rounds  # sequencing 60,000 (six rounds)
    assert max(rounds[1:]) < ROUND_LIMIT_S, rounds  # integrating three batches of 5,000


class _NoSigner:
    """Housekeeping signs nothing here: no subscriptions, so no confirmations or deliveries."""

    async def sign(self, label: str, data: bytes,
                   alg: Literal["ES256", "PS256", "RS256"]) -> bytes:
        raise AssertionError("nothing is signed in this test")


def test_outbox_sequencing_keeps_its_speed_after_a_bulk_load(
        own_database: DatabaseTarget) -> None:
    """The delivery worker's housekeeping (sequencing the outbox, pruning what nobody awaits)
    with plans made on an empty outbox, then 60,000 births' events: three rounds of 20,000.
    Shown to fail with 0044's sequencing statement (before migration 0063): its plan re-ran the
    numbering subquery for every outbox row and hit the 10 s statement timeout; and, on
    PostgreSQL 15 (Debian's server, the suite's second run in CI), with the pruning DELETE of
    queries/notify.py before migration 0064: the same timeout."""
    owner_url = own_database.owner_url
    assert owner_url is not None
    config = DeliveryConfig(origin="https://id.example.gov.vn", key_label="unused", kid="unused",
                            allow_private=False, timeout=5, batch=100, concurrency=1,
                            interval=1.0, confirm_seconds=3600)

    async def run() -> tuple[list[float], int]:
        owner = await _small_tables(owner_url)
        try:
            async with _generic_pool(own_database.service_url) as pool:
                worker = Deliverer(pool, _NoSigner(), config)
                try:
                    await worker.run_once()  # plans made on the empty outbox
                    await owner.execute(OUTBOX, ROWS)
                    await wait_for_older_transactions(owner)
                    rounds = []
                    for _ in range(3):
                        t0 = time.perf_counter()
                        await worker.run_once()
                        rounds.append(time.perf_counter() - t0)
                finally:
                    await worker.stop()
            left = await owner.fetchval("SELECT count(*) FROM notify_event WHERE seq IS NULL")
            return rounds, int(left)
        finally:
            await owner.close()

    rounds, unsequenced = asyncio.run(run())
    assert unsequenced == 0
    assert max(rounds) < ROUND_LIMIT_S, rounds


def test_sequencing_reads_the_log_by_its_index_only(own_database: DatabaseTarget) -> None:
    """Each sequencing round looks at the end of the log through its primary key, never by
    scanning it: counted by the connection's own statistics (`pg_stat_xact_user_tables`), so the
    check does not depend on timing or on the log's size. Found by bench/scale.py at 10M: the
    contiguity check's `EXISTS (... index > last_new)` of migration 0062 had a generic plan that
    scanned the whole log (388 ms at 10M entries), once per round (42-58 ms per round on
    average, ~half a core). Shown to fail with 0062's trigger function: 3 scans in 3 rounds."""
    owner_url = own_database.owner_url
    assert owner_url is not None

    async def run() -> int:
        owner = await _small_tables(owner_url)
        try:
            async with _generic_pool(own_database.service_url) as pool:
                await sequence_once(pool)  # plans made on the small log
                for _ in range(3):
                    await owner.execute(EVENTS, 100)
                await wait_for_older_transactions(owner)
                async with pool.acquire() as conn, conn.transaction():  # its own counts
                    for _ in range(3):
                        assert await conn.fetchval(SEQUENCE, 100) == 100
                    return int(await conn.fetchval(
                        "SELECT seq_scan FROM pg_stat_xact_user_tables "
                        "WHERE relid = 'audit_log'::regclass"))
        finally:
            await owner.close()

    assert asyncio.run(run()) == 0

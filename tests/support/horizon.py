"""Waiting for the sequencers' horizon in tests that write rows by SQL and sequence them at once.

The audit sequencer (`audit_sequence()`) and the outbox sequencer take only rows whose
transaction is older than the oldest transaction still running, counted over the whole cluster
(`pg_snapshot_xmin(pg_current_snapshot())`): that is what keeps an index from being handed out
past a transaction that may still commit. The test cluster is shared by every database of the
session and by the suite's servers working in the background, so a transaction open for a
moment in another database holds a sequencing round back: it sequences nothing yet, and a test
that expects its rows in that round fails (CI, 2026-12-06: `integrate_once(...) == 20` read 0 in
tests/integration/test_bulk_plans.py). Tests wait for the horizon first; they then measure or
count what the sequencer does, not what another session did.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

NEXT_XID = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
OLDEST_RUNNING = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


async def wait_for_older_transactions(conn: asyncpg.Connection | asyncpg.Pool,
                                      timeout: float = 30.0) -> None:
    """Return once every transaction of the cluster that had begun before this call has ended,
    so rows committed before it are behind the sequencers' horizon. `conn` must not be inside
    a transaction of its own that holds a transaction id."""
    target = int(await conn.fetchval(NEXT_XID))
    deadline = time.monotonic() + timeout
    while int(await conn.fetchval(OLDEST_RUNNING)) < target:
        if time.monotonic() > deadline:
            raise AssertionError(f"a transaction older than xid {target} ran for {timeout} s")
        await asyncio.sleep(0.02)

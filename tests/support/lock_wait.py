"""A second transaction's statement that must wait for a lock the first holds, and then see
what the first committed: the check of the batch's "locks, then the look-up" statements
(migrations 0068, 0070)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from asyncpg.transaction import Transaction

T = TypeVar("T")

WAIT_EVENT = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"


async def waits_then_runs(first: asyncpg.Connection, first_tx: Transaction,
                          second: asyncpg.Connection,
                          statement: Callable[[], Awaitable[T]]) -> tuple[str, T]:
    """Start `statement` on `second` in a transaction of its own while `first_tx` is open;
    assert it is still waiting half a second later; commit `first_tx`; return what `second`
    was waiting on (pg_stat_activity's `wait_event_type`, "Lock" for a lock) and the
    statement's result. `second`'s transaction is rolled back."""
    tx = second.transaction()
    await tx.start()
    try:
        waiting = asyncio.ensure_future(statement())
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the second transaction did not wait for the first's lock"
        state = await first.fetchval(WAIT_EVENT, second.get_server_pid())
        await first_tx.commit()
        return state, await asyncio.wait_for(waiting, 10)
    finally:
        await tx.rollback()

"""Background task that gives committed audit events their gap-free index.

The ordering logic lives in the database (`audit_sequence()`, migrations/0003_audit.sql and 0009) so
that any number of service processes can run this loop: one wins the advisory lock per round,
the others return at once. Sequencing is off the request path; it only lags by `interval`.
"""

from __future__ import annotations

import asyncpg

from idservice.background import PeriodicTask
from idservice.metrics import AUDIT_SEQUENCED
from idservice.queries import audit as q

__all__ = ["Sequencer", "sequence_once"]



async def sequence_once(pool: asyncpg.Pool, max_rows: int = 10_000) -> int:
    """Sequence what is ready now; returns how many events got an index."""
    total = 0
    while True:
        n = await pool.fetchval(q.SEQUENCE, max_rows)
        total += int(n or 0)
        if not n or n < max_rows:
            return total


class Sequencer:
    def __init__(self, pool: asyncpg.Pool, interval: float = 0.2) -> None:
        self._pool = pool
        self._loop = PeriodicTask("audit-sequencer", interval, self.run_once)

    async def run_once(self) -> int:
        sequenced = await sequence_once(self._pool)
        AUDIT_SEQUENCED.inc(sequenced)
        return sequenced

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

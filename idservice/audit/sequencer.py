"""Background task that gives committed audit events their gap-free index.

The ordering logic lives in the database (`audit_sequence()` in migrations/0003_audit.sql) so
that any number of service processes can run this loop: one wins the advisory lock per round,
the others return at once. Sequencing is off the request path; it only lags by `interval`.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from idservice.logging import get_logger
from idservice.queries import audit as q

__all__ = ["Sequencer", "sequence_once"]

_log = get_logger(__name__)


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
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-sequencer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await sequence_once(self._pool)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep sequencing alive through DB restarts
                _log.warning("audit_sequencer_error", error=type(exc).__name__)
            await asyncio.sleep(self._interval)

"""Keeps monthly audit_event partitions created ahead of time.

There is no catch-all partition (migrations/0009): an event whose month has no partition is
refused, and with it the access. So every service process creates the coming months at start
and then hourly; `audit_event_add_partitions()` is idempotent and serialised in the database,
and the horizon is exported as `idservice_audit_partition_horizon_seconds` for alerting.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from idservice.background import PeriodicTask
from idservice.logging import get_logger
from idservice.queries import audit as q

__all__ = ["PartitionKeeper", "add_partitions"]

_log = get_logger(__name__)


async def add_partitions(pool: asyncpg.Pool, months_ahead: int) -> datetime:
    """Create the partitions up to `months_ahead` months after this one; returns the horizon."""
    created = await pool.fetchval(q.ADD_PARTITIONS, months_ahead)
    horizon: datetime = await pool.fetchval(q.PARTITIONED_UNTIL)
    if created:
        _log.info("audit_partitions_created", count=created, until=horizon.isoformat())
    return horizon


class PartitionKeeper:
    def __init__(self, pool: asyncpg.Pool, months_ahead: int = 3,
                 interval: float = 3600.0) -> None:
        self._pool = pool
        self._months_ahead = months_ahead
        self._loop = PeriodicTask("audit-partitions", interval, self.run_once, sleep_first=True)

    async def run_once(self) -> datetime:
        return await add_partitions(self._pool, self._months_ahead)

    async def start(self) -> None:
        """The first round runs before the service answers, so a failure stops the start."""
        await self.run_once()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

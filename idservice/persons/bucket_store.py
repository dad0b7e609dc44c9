"""The allocator's `BucketStore` on PostgreSQL: claiming a number = inserting the person row.

Uniqueness is the primary key of `person` (never deleted, so never reused); the claim and the
block counter update are one statement inside the issuing transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from idservice.db.types import Conn
from idservice.pin.allocator import AllocatorConfig
from idservice.queries import persons as q

__all__ = ["PgBucketStore"]


class PgBucketStore:
    def __init__(
        self,
        conn: Conn,
        prefix: str,
        person_columns: Sequence[Any],
        config: AllocatorConfig,
    ) -> None:
        self._conn = conn
        self._prefix = prefix
        self._columns = person_columns
        self._config = config
        self.claimed: asyncpg.Record | None = None

    async def claim_first_free(self, candidates: Sequence[int]) -> int | None:
        row = await self._conn.fetchrow(
            q.CLAIM, self._prefix, list(candidates), self._config.block_size, *self._columns
        )
        if row is None:
            return None
        self.claimed = row
        return int(row["pin"][6:])

    async def block_used_counts(self) -> Sequence[int]:
        counts = [0] * self._config.blocks
        for block, used in await self._conn.fetch(q.BLOCK_COUNTS, self._prefix):
            if block < len(counts):
                counts[block] = used
        return counts

    async def used_in_block(self, block: int) -> Sequence[int]:
        start = block * self._config.block_size
        rows = await self._conn.fetch(
            q.USED_IN_RANGE, self._prefix, start, start + self._config.block_size - 1
        )
        return [r[0] for r in rows]

    async def claim(self, number: int) -> bool:
        return await self.claim_first_free([number]) is not None

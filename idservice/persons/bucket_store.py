"""The allocator's `BucketStore` on PostgreSQL: claiming a number = inserting the person row.

Uniqueness is the primary key of `person` (never deleted, so never reused); the claim and the
block counter update are one statement (`person_claim()`) inside the issuing transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from idservice.db.types import Conn
from idservice.persons.rows import PersonRow
from idservice.pin.allocator import AllocatorConfig
from idservice.pin.format import make_pin, parse_pin
from idservice.queries import persons as q

__all__ = ["Claim", "PgBucketStore"]


@dataclass(frozen=True, slots=True)
class Claim:
    """A number taken for a person: its PIN and when the row was inserted."""

    pin: str
    issued_at: datetime


class PgBucketStore:
    """The bucket of one person row; `claimed` holds the claim once a number is taken."""

    def __init__(self, conn: Conn, row: PersonRow, config: AllocatorConfig) -> None:
        self._conn = conn
        self._row = row
        self.prefix = row.prefix
        self._config = config
        self.claimed: Claim | None = None

    async def claim_first_free(self, candidates: Sequence[int]) -> int | None:
        row = await self._conn.fetchrow(q.PERSON_CLAIM, self.prefix, list(candidates),
                                        self._config.block_size, self._row.composite())
        if row is None:
            return None
        self.claimed = Claim(row["pin"], row["issued_at"])
        return parse_pin(self.claimed.pin).serial

    async def block_used_counts(self) -> Sequence[int]:
        counts = [0] * self._config.blocks
        for block, used in await self._conn.fetch(q.BLOCK_COUNTS, self.prefix):
            if block < len(counts):
                counts[block] = used
        return counts

    async def used_in_block(self, block: int) -> Sequence[int]:
        start = block * self._config.block_size
        rows = await self._conn.fetch(
            q.PINS_BETWEEN, make_pin(self.prefix, start),
            make_pin(self.prefix, start + self._config.block_size - 1))
        return [parse_pin(r["pin"]).serial for r in rows]

    async def claim(self, number: int) -> bool:
        return await self.claim_first_free([number]) is not None

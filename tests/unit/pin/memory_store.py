"""An in-memory :class:`~idservice.pin.allocator.BucketStore` that counts its calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence


class MemoryStore:
    """Used numbers of one bucket in a set, with per-block counts kept up to date."""

    def __init__(self, space: int = 100, block_size: int = 10, used: Iterable[int] = ()) -> None:
        self.space = space
        self.block_size = block_size
        self.used: set[int] = set()
        self.counts = [0] * (space // block_size)
        self.calls: Counter[str] = Counter()
        for number in used:
            self.take(number)

    @classmethod
    def with_free(cls, space: int, block_size: int, free: Iterable[int]) -> MemoryStore:
        """A store where every number except ``free`` is used (fast for large spaces)."""
        free_set = set(free)
        store = cls(space, block_size)
        store.used = set(range(space)) - free_set
        store.counts = [block_size] * (space // block_size)
        for number in free_set:
            store.counts[number // block_size] -= 1
        return store

    def take(self, number: int) -> None:
        """Mark a number used (as another allocation would); it must be free."""
        assert 0 <= number < self.space and number not in self.used
        self.used.add(number)
        self.counts[number // self.block_size] += 1

    @property
    def free(self) -> list[int]:
        return [n for n in range(self.space) if n not in self.used]

    async def claim_first_free(self, candidates: Sequence[int]) -> int | None:
        self.calls["claim_first_free"] += 1
        for number in candidates:
            if number not in self.used:
                self.take(number)
                return number
        return None

    async def block_used_counts(self) -> Sequence[int]:
        self.calls["block_used_counts"] += 1
        return list(self.counts)

    async def used_in_block(self, block: int) -> Sequence[int]:
        self.calls["used_in_block"] += 1
        start = block * self.block_size
        return [n for n in range(start, start + self.block_size) if n in self.used]

    async def claim(self, number: int) -> bool:
        self.calls["claim"] += 1
        if number in self.used:
            return False
        self.take(number)
        return True

"""Allocation of the six random digits: correctness, exhaustion, bounded work, races."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pytest

from idservice.pin.allocator import (
    AllocationContention,
    AllocatorConfig,
    BucketFull,
    allocate,
    kth_free,
    locate_block,
)

from .memory_store import MemoryStore

TINY = AllocatorConfig(space=100, block_size=10)


async def test_tiny_bucket_allocates_all_100_then_exhausted_on_101st() -> None:
    store = MemoryStore(100, 10)
    rng = random.Random(1)
    numbers = [await allocate(store, rng, TINY, bucket="052325") for _ in range(100)]
    assert sorted(numbers) == list(range(100))  # all distinct, none refused early
    with pytest.raises(BucketFull) as excinfo:
        await allocate(store, rng, TINY, bucket="052325")
    assert excinfo.value.bucket == "052325" and "052325" in str(excinfo.value)


async def test_exact_path_only_allocates_all_100_then_exhausted() -> None:
    store = MemoryStore(100, 10)
    rng = random.Random(2)
    config = AllocatorConfig(space=100, block_size=10, random_tries=0)
    numbers = [await allocate(store, rng, config) for _ in range(100)]
    assert sorted(numbers) == list(range(100))
    assert store.calls["claim"] == 100  # no claim was ever lost
    with pytest.raises(BucketFull) as excinfo:
        await allocate(store, rng, config)
    assert excinfo.value.bucket is None


async def test_full_bucket_exhausted_without_claiming() -> None:
    store = MemoryStore(100, 10, used=range(100))
    with pytest.raises(BucketFull):
        await allocate(store, random.Random(3), TINY)
    assert store.calls["claim"] == 0 and store.calls["block_used_counts"] == 1


@pytest.mark.parametrize("last_free", [0, 37, 99])
async def test_99_of_100_taken_last_free_found_in_bounded_calls(last_free: int) -> None:
    store = MemoryStore.with_free(100, 10, [last_free])
    assert await allocate(store, random.Random(4), TINY) == last_free
    assert store.calls["claim_first_free"] <= 1
    assert store.calls["block_used_counts"] <= 1
    assert store.calls["used_in_block"] <= 1
    assert store.calls["claim"] <= 1


async def test_million_space_at_99_9_percent_full_one_round_per_allocation() -> None:
    free = random.Random(5).sample(range(1_000_000), 1000)
    store = MemoryStore.with_free(1_000_000, 1000, free)
    rng = random.Random(6)
    got: set[int] = set()
    for _ in range(20):
        store.calls.clear()
        got.add(await allocate(store, rng))
        assert store.calls["claim_first_free"] == 1
        assert store.calls["block_used_counts"] <= 1
        assert store.calls["used_in_block"] <= 1
        assert store.calls["claim"] <= 1
    assert len(got) == 20 and got <= set(free)


class RacyStore(MemoryStore):
    """Another allocation takes the number we try to claim, ``losses`` times."""

    def __init__(
        self, space: int = 100, block_size: int = 10, used: Iterable[int] = (), losses: int = 0
    ) -> None:
        super().__init__(space, block_size, used)
        self.losses = losses
        self.stolen: list[int] = []

    async def claim(self, number: int) -> bool:
        if self.losses:
            self.losses -= 1
            self.calls["claim"] += 1
            self.take(number)  # the competitor wins
            self.stolen.append(number)
            return False
        return await super().claim(number)


async def test_claim_lost_once_still_returns_a_free_number() -> None:
    store = RacyStore(100, 10, used=range(0, 100, 2), losses=1)
    config = AllocatorConfig(space=100, block_size=10, random_tries=0)
    number = await allocate(store, random.Random(7), config)
    assert number % 2 == 1 and number not in store.stolen
    assert store.calls["claim"] == 2 and store.calls["block_used_counts"] == 2


async def test_claim_always_lost_raises_allocation_contention() -> None:
    class LosingStore(MemoryStore):
        async def claim(self, number: int) -> bool:
            self.calls["claim"] += 1
            return False

    store = LosingStore(100, 10)
    config = AllocatorConfig(space=100, block_size=10, random_tries=0, max_rounds=3)
    with pytest.raises(AllocationContention) as excinfo:
        await allocate(store, random.Random(8), config, bucket="001000")
    assert (excinfo.value.rounds, excinfo.value.bucket) == (3, "001000")
    assert store.calls["claim"] == 3


async def test_last_number_taken_by_competitor_raises_exhausted_not_contention() -> None:
    store = RacyStore.with_free(100, 10, [42])
    assert isinstance(store, RacyStore)
    store.losses = 1
    with pytest.raises(BucketFull):
        await allocate(store, random.Random(9), AllocatorConfig(100, 10, random_tries=0))
    assert store.stolen == [42]


async def test_block_filled_between_reads_draws_again() -> None:
    class FillingStore(MemoryStore):
        async def used_in_block(self, block: int) -> Sequence[int]:
            if self.calls["used_in_block"] == 0:  # a competitor fills the block meanwhile
                for n in range(block * 10, block * 10 + 10):
                    if n not in self.used:
                        self.take(n)
            return await super().used_in_block(block)

    store = FillingStore(100, 10, used=range(50))
    number = await allocate(store, random.Random(10), AllocatorConfig(100, 10, random_tries=0))
    assert number not in range(50) and store.calls["block_used_counts"] == 2


async def test_default_rng_is_csprng_and_works() -> None:
    store = MemoryStore(100, 10, used=range(99))
    assert await allocate(store, config=TINY) == 99


async def test_store_with_wrong_block_count_refused() -> None:
    class WrongStore(MemoryStore):
        async def block_used_counts(self) -> Sequence[int]:
            return [0] * 3

    with pytest.raises(ValueError, match="block counts"):
        await allocate(WrongStore(100, 10), random.Random(0), AllocatorConfig(100, 10, 0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"space": 0},
        {"space": 100, "block_size": 7},
        {"block_size": 0},
        {"random_tries": -1},
        {"max_rounds": 0},
    ],
)
def test_inconsistent_config_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        AllocatorConfig(**kwargs)


def naive_kth_free(k: int, used: set[int], start: int, end: int) -> int:
    return [n for n in range(start, end) if n not in used][k]


def test_kth_free_matches_naive_reference() -> None:
    rng = random.Random(11)
    for _ in range(500):
        start = rng.randrange(0, 50) * 10
        used = set(rng.sample(range(start, start + 10), rng.randrange(0, 10)))
        for k in range(10 - len(used)):
            assert kth_free(k, sorted(used), start, start + 10) == naive_kth_free(
                k, used, start, start + 10
            )
        with pytest.raises(ValueError):
            kth_free(10 - len(used), sorted(used), start, start + 10)


@pytest.mark.parametrize("used", [[3, 2], [2, 2], [10], [-1]])
def test_kth_free_with_unsorted_or_outside_used_refused(used: list[int]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        kth_free(0, used, 0, 10)


def test_locate_block_matches_naive_reference() -> None:
    rng = random.Random(12)
    for _ in range(200):
        counts = [rng.randrange(0, 11) for _ in range(10)]
        free = [(b, i) for b, c in enumerate(counts) for i in range(10 - c)]
        for k, expected in enumerate(free):
            assert locate_block(k, counts, 10) == expected
        with pytest.raises(ValueError):
            locate_block(len(free), counts, 10)


@pytest.mark.parametrize(("k", "counts"), [(-1, [0]), (0, [11]), (0, [-1])])
def test_locate_block_with_impossible_input_refused(k: int, counts: list[int]) -> None:
    with pytest.raises(ValueError):
        locate_block(k, counts, 10)

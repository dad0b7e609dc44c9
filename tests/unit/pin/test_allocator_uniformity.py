"""Statistical check that allocation is uniform over the free numbers (CONTRACT.md section 2).

A bucket of 100 numbers with a fixed, irregular set of 60 used ones; every draw starts from
that same state. The counts of each free number over many draws go through Pearson's
chi-square test against the uniform distribution. Seeded generators make every run identical;
the threshold is far enough from both sides that a correct allocator passes with margin and
the biased ones below (which prove the check can fail) are rejected with margin.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from scipy.stats import chisquare

from idservice.pin.allocator import AllocatorConfig, BucketStore, allocate

from .memory_store import MemoryStore

SPACE, BLOCK = 100, 10
USED = frozenset(random.Random(2016).sample(range(SPACE), 60))
FREE = sorted(set(range(SPACE)) - USED)
DRAWS = 4000  # 100 expected per free number
ALPHA = 1e-3  # reject uniformity below this p-value

Allocator = Callable[[BucketStore, random.Random], Awaitable[int]]


async def p_value(allocator: Allocator, rng: random.Random) -> tuple[float, Counter[str]]:
    """Chi-square p-value of ``DRAWS`` allocations from the fixed state, and store calls."""
    hits: Counter[int] = Counter()
    calls: Counter[str] = Counter()
    for _ in range(DRAWS):
        store = MemoryStore(SPACE, BLOCK, USED)  # reset the state for every draw
        number = await allocator(store, rng)
        assert number not in USED
        hits[number] += 1
        calls += store.calls
    return float(chisquare([hits[n] for n in FREE]).pvalue), calls


def real(random_tries: int) -> Allocator:
    config = AllocatorConfig(space=SPACE, block_size=BLOCK, random_tries=random_tries)

    async def run(store: BucketStore, rng: random.Random) -> int:
        return await allocate(store, rng, config)

    return run


async def test_random_tries_path_uniform_over_free_numbers() -> None:
    # 0.6**40: a draw practically never falls through to the exact path
    p, calls = await p_value(real(random_tries=40), random.Random(1))
    assert calls["block_used_counts"] == 0
    assert p > ALPHA


async def test_exact_path_uniform_over_free_numbers() -> None:
    p, calls = await p_value(real(random_tries=0), random.Random(2))
    assert calls["claim_first_free"] == 0 and calls["claim"] == DRAWS
    assert p > ALPHA


async def test_mixed_paths_uniform_over_free_numbers() -> None:
    p, calls = await p_value(real(random_tries=2), random.Random(3))  # about 36% fall through
    assert 0 < calls["block_used_counts"] < DRAWS
    assert p > ALPHA


# --- the check can fail: deliberately biased allocators and generators are rejected ---


async def lowest_free(store: BucketStore, rng: random.Random) -> int:
    counts = await store.block_used_counts()
    block = next(b for b, c in enumerate(counts) if c < BLOCK)
    used = set(await store.used_in_block(block))
    number = next(n for n in range(block * BLOCK, (block + 1) * BLOCK) if n not in used)
    assert await store.claim(number)
    return number


async def linear_probe(store: BucketStore, rng: random.Random) -> int:
    """A plausible mistake: random start, then the next free number after it."""
    start = rng.randrange(SPACE)
    number = await store.claim_first_free([(start + i) % SPACE for i in range(SPACE)])
    assert number is not None
    return number


class SkewedRandom(random.Random):
    """A generator mildly biased towards small values (P(draw < n/2) is 0.547, not 0.5)."""

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        assert stop is None and step == 1
        return int(start * self.random() ** 1.15)


@pytest.mark.parametrize("allocator", [lowest_free, linear_probe], ids=["lowest", "probe"])
async def test_biased_allocator_rejected_by_uniformity_check(allocator: Allocator) -> None:
    p, _ = await p_value(allocator, random.Random(4))
    assert p < ALPHA


@pytest.mark.parametrize("random_tries", [0, 40], ids=["exact", "random-tries"])
async def test_skewed_rng_rejected_by_uniformity_check(random_tries: int) -> None:
    p, _ = await p_value(real(random_tries), SkewedRandom(5))
    assert p < ALPHA

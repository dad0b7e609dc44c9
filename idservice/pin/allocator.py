"""Choice of the PIN's six random digits: uniform over the numbers still free in a bucket.

Rule (CONTRACT.md section 2, after Circular 07/2016/TT-BCA): the last six digits are drawn
uniformly at random with a CSPRNG from the numbers still free in the bucket ``PPPGYY``; a
number is never issued twice, and the bucket is exhausted only when all 10^6 are used.
This module is the algorithm only; storage sits behind :class:`BucketStore` (PostgreSQL in
production, in memory in the tests), one store per bucket.

Two steps:

1. *Random tries.* Draw ``random_tries`` candidates iid uniform in ``[0, space)`` and let the
   store atomically claim the first one that is free. Why uniform: for a free number ``x``,
   P(result = x) = sum_i P(candidates 1..i-1 are used) * P(candidate i = x), and the second
   factor is 1/space for every ``x``, so each free number is equally likely; if every try
   hits a used number we fall through to step 2, which is uniform too, and a mixture of
   uniform choices is uniform. One store round trip; it succeeds with probability
   ``1 - used_fraction ** random_tries`` (about 1 until the bucket is nearly full).
2. *Exact choice.* Read the used count of each block of ``block_size`` numbers; ``free =
   space - sum``. If ``free == 0`` raise :class:`BucketFull` (so exhaustion is reported
   exactly when every number is used, never earlier). Otherwise draw ``k`` uniform in
   ``[0, free)``, find the block holding the ``k``-th free number (:func:`locate_block`),
   read that block's used numbers and take the ``k``-th free one inside it
   (:func:`kth_free`): a bijection between ``k`` and the free numbers, hence uniform. Then
   ``claim`` it; if a concurrent allocation took it meanwhile, start step 2 again, at most
   ``max_rounds`` times (then :class:`AllocationContention`).

Why bounded: step 1 is one call; each round of step 2 is three calls and
``O(space / block_size + block_size)`` work (about 2,000 integers for 10^6 numbers in blocks
of 1,000), whatever the fill level. At 99.9% full an allocation costs one batch of random
tries plus one exact round, never the thousands of retries that pure rejection sampling
would need. Extra rounds happen only when another allocation wins a race for the same
number, which is rare and capped.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "AllocationContention",
    "AllocatorConfig",
    "BucketFull",
    "BucketStore",
    "allocate",
    "draw_candidates",
    "kth_free",
    "locate_block",
]

_CSPRNG = secrets.SystemRandom()
_WORD = 2**32


def draw_candidates(rng: random.Random | None, space: int, count: int) -> list[int]:
    """``count`` numbers iid uniform in ``[0, space)``: the candidates of step 1, for one
    allocation or for every row of a batch chunk.

    From the operating system's CSPRNG (``rng`` None or a :class:`random.SystemRandom`) they
    come from one ``os.urandom`` call for all of them: ``SystemRandom.randrange`` reads the
    kernel once per number, and a batch chunk draws 2,000 of them (2.5 ms of its worker's CPU
    against 0.13 ms this way, measured). Each 32-bit word is used only below the largest
    multiple of ``space`` (rejection, :func:`uniform_below`), so every number is exactly as
    likely. Any other generator (a seeded one in tests) is asked number by number, so its
    draws stay reproducible."""
    rng = _CSPRNG if rng is None else rng
    if not isinstance(rng, random.SystemRandom) or not 0 < space <= _WORD:
        return [rng.randrange(space) for _ in range(count)]
    drawn: list[int] = []
    while len(drawn) < count:  # a word is refused with probability < space / 2**32
        drawn += uniform_below(os.urandom(4 * (count - len(drawn))), space)
    return drawn[:count]


def uniform_below(data: bytes, space: int) -> list[int]:
    """The numbers in ``[0, space)`` that the 32-bit words of ``data`` give, uniform when the
    words are: a word at or above the largest multiple of ``space`` below 2**32 is dropped
    (taking it modulo ``space`` would make the low numbers likelier)."""
    limit = _WORD - _WORD % space
    return [w % space for w in memoryview(data).cast("I") if w < limit]


class BucketStore(Protocol):
    """The used numbers of one bucket, numbers ``0..space-1`` in blocks of ``block_size``."""

    async def claim_first_free(self, candidates: Sequence[int]) -> int | None:
        """Atomically claim the first candidate (in order) not taken; None if all are taken."""
        ...

    async def block_used_counts(self) -> Sequence[int]:
        """How many numbers are used in each block; ``space // block_size`` entries."""
        ...

    async def used_in_block(self, block: int) -> Sequence[int]:
        """The used numbers inside one block, sorted ascending."""
        ...

    async def claim(self, number: int) -> bool:
        """Atomically claim one number; False if it is already taken."""
        ...


class BucketFull(Exception):
    """Every number of the bucket is used (answered as contract code ``pin_space_exhausted``:
    ``idservice.errors.PinSpaceExhausted``, which this pure module cannot import)."""

    def __init__(self, bucket: str | None = None) -> None:
        self.bucket = bucket
        where = f"bucket {bucket}" if bucket else "the bucket"
        super().__init__(f"all numbers of {where} are used")


class AllocationContention(Exception):
    """Concurrent allocations kept taking the chosen number; the caller may retry later."""

    def __init__(self, rounds: int, bucket: str | None = None) -> None:
        self.rounds = rounds
        self.bucket = bucket
        where = f" in bucket {bucket}" if bucket else ""
        super().__init__(f"lost the race for a free number {rounds} times{where}")


@dataclass(frozen=True)
class AllocatorConfig:
    """Size of the number space and tuning of the two steps (see the module docstring): the one
    place every allocation path takes its candidate counts from.

    - ``random_tries``: candidates of step 1 for one number claimed by one statement (the
      database's ``issue_pin()`` fast path, and :func:`allocate`'s own step 1). More candidates
      cost nothing but a few index probes inside that one statement.
    - ``chunk_random_tries``: candidates per row when many rows draw together (a batch chunk:
      one lookup of every candidate of every row, then one insert). Each candidate is an extra
      parameter and probe of that lookup, and a row whose candidates are all taken falls back to
      :func:`allocate` anyway, so fewer are drawn (4: the batch path's value since it was
      written, kept when issue 10 moved it here).
    """

    space: int = 1_000_000
    block_size: int = 1000
    random_tries: int = 16
    chunk_random_tries: int = 4
    max_rounds: int = 32

    def __post_init__(self) -> None:
        if self.space < 1 or self.block_size < 1 or self.space % self.block_size:
            raise ValueError("space and block_size must be positive, space a multiple of it")
        if self.random_tries < 0 or self.chunk_random_tries < 0 or self.max_rounds < 1:
            raise ValueError("random_tries and chunk_random_tries must be >= 0, "
                             "max_rounds >= 1")

    @property
    def blocks(self) -> int:
        return self.space // self.block_size


def locate_block(k: int, used_counts: Sequence[int], block_size: int) -> tuple[int, int]:
    """The block holding the ``k``-th (0-based) free number, and ``k``'s rank inside it."""
    if k < 0:
        raise ValueError("k must be >= 0")
    for block, used in enumerate(used_counts):
        if not 0 <= used <= block_size:
            raise ValueError(f"block {block} has an impossible used count {used}")
        free = block_size - used
        if k < free:
            return block, k
        k -= free
    raise ValueError("k is not below the number of free numbers")


def kth_free(k: int, used_sorted: Sequence[int], start: int, end: int) -> int:
    """The ``k``-th (0-based) number of ``[start, end)`` that is not in ``used_sorted``.

    ``used_sorted`` must be strictly increasing and inside ``[start, end)``.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    candidate = start + k
    previous = start - 1
    for used in used_sorted:
        if not previous < used < end:
            raise ValueError("used numbers must be strictly increasing and inside the block")
        previous = used
        if used <= candidate:  # each used number at or below the candidate pushes it up one
            candidate += 1
    if candidate >= end:
        raise ValueError("fewer than k + 1 free numbers in the block")
    return candidate


async def allocate(
    store: BucketStore,
    rng: random.Random | None = None,
    config: AllocatorConfig = AllocatorConfig(),
    *,
    bucket: str | None = None,
) -> int:
    """Claim and return a number drawn uniformly from the free numbers of the store's bucket.

    ``rng`` defaults to the operating system's CSPRNG (:class:`secrets.SystemRandom`); tests
    inject a seeded :class:`random.Random`. ``bucket`` only labels the exceptions.
    Raises :class:`BucketFull` when no number is free and
    :class:`AllocationContention` after ``max_rounds`` lost races.
    """
    rng = _CSPRNG if rng is None else rng
    if config.random_tries:
        candidates = draw_candidates(rng, config.space, config.random_tries)
        number = await store.claim_first_free(candidates)
        if number is not None:
            return number
    for _ in range(config.max_rounds):
        counts = await store.block_used_counts()
        if len(counts) != config.blocks:
            raise ValueError(f"store returned {len(counts)} block counts, not {config.blocks}")
        free = config.space - sum(counts)
        if free <= 0:
            raise BucketFull(bucket)
        block, k_in_block = locate_block(rng.randrange(free), counts, config.block_size)
        used = await store.used_in_block(block)
        if k_in_block >= config.block_size - len(used):
            continue  # the block filled up since the counts were read: draw again
        start = block * config.block_size
        number = kth_free(k_in_block, used, start, start + config.block_size)
        if await store.claim(number):
            return number
    raise AllocationContention(config.max_rounds, bucket)

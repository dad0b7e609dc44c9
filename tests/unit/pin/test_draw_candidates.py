"""The random tries' candidates (`pin.allocator.draw_candidates`): uniform, from one read of
the operating system's CSPRNG for a whole batch chunk, reproducible with a seeded generator."""

from __future__ import annotations

import os
import random
import secrets
import sys
from collections import Counter

import pytest
from scipy.stats import chisquare

from idservice.pin.allocator import draw_candidates, uniform_below

WORD = 2**32


def words(*values: int) -> bytes:
    """32-bit words in the machine's order (as `uniform_below` reads them)."""
    return b"".join(v.to_bytes(4, sys.byteorder) for v in values)


def test_words_at_or_above_the_last_multiple_of_the_space_are_dropped() -> None:
    space = 1_000_000
    limit = WORD - WORD % space  # 4,294,000,000
    assert uniform_below(words(limit - 1, limit, WORD - 1, 5, space + 3), space) == [
        (limit - 1) % space, 5, 3]


@pytest.mark.parametrize("rng", [None, secrets.SystemRandom()])
def test_csprng_candidates_are_uniform(rng: random.Random | None) -> None:
    space, draws = 10, 50_000
    drawn = draw_candidates(rng, space, draws)
    assert len(drawn) == draws and set(drawn) <= set(range(space))
    counts = Counter(drawn)
    assert chisquare([counts[n] for n in range(space)]).pvalue > 1e-6


def test_a_chunk_draws_from_one_kernel_read(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = os.urandom

    def counted(n: int) -> bytes:
        reads.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counted)
    drawn = draw_candidates(None, 1_000_000, 2000)  # a 500-line chunk, 4 tries per line
    assert len(drawn) == 2000 and all(0 <= n < 1_000_000 for n in drawn)
    assert reads[0] == 8000 and len(reads) <= 2  # a second read only if a word was refused


def test_refused_words_are_replaced_until_the_count_is_reached(
        monkeypatch: pytest.MonkeyPatch) -> None:
    space = 1_000_000
    limit = WORD - WORD % space
    answers = [words(7, limit, 8), words(limit + 1), words(9)]
    monkeypatch.setattr(os, "urandom", lambda n: answers.pop(0))
    assert draw_candidates(None, space, 3) == [7, 8, 9]


def test_a_seeded_generator_is_asked_number_by_number() -> None:
    expected = random.Random(42)
    assert draw_candidates(random.Random(42), 1000, 20) == [
        expected.randrange(1000) for _ in range(20)]
    assert draw_candidates(None, 1000, 0) == []

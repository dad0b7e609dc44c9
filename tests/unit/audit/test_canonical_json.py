"""The fast canonical-JSON path must give exactly the bytes of the RFC 8785 library."""

from __future__ import annotations

import random
from typing import Any

import pytest
import rfc8785

from idservice.audit.entry import _json_equals_jcs, canonical_json

TRICKY_STRINGS = ["", "a", "\"quoted\"", "back\\slash", "/slash", "\b\t\n\f\r", "\x00\x01\x1f",
                  "\x7f", "\u2028\u2029", "Nguyễn Văn Đức", "😀 astral", "<script>", "é" * 3,
                  "\ufeff", "\u00a0nbsp"]


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(TRICKY_STRINGS) + rng.choice(TRICKY_STRINGS)
    if kind == 1:
        return rng.choice([0, 1, -1, 42, 2**53 - 1, -(2**53) + 1, 10**15, True, False])
    if kind == 2:
        return None
    if kind == 3:
        return "".join(chr(rng.choice([rng.randrange(0x20), rng.randrange(0x20, 0x800),
                                       rng.randrange(0x800, 0xD800),
                                       rng.randrange(0xE000, 0x110000)]))
                       for _ in range(rng.randrange(6)))
    if kind in (4, 5):
        keys = ["index", "at", "actor", "b", "B", "a_b", "ä", "z" * 3, "😀", "\ue000", "10", "9"]
        return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


@pytest.mark.parametrize("seed", range(5))
def test_fast_path_bytes_equal_rfc8785_library(seed: int) -> None:
    rng = random.Random(seed)
    fast_used = 0
    for _ in range(2000):
        value = _random_value(rng)
        assert canonical_json(value) == rfc8785.dumps(value), value
        fast_used += _json_equals_jcs(value)
    assert fast_used > 500  # the fast path is really exercised, not always bypassed


@pytest.mark.parametrize("value", [{"x": 1.5}, {"😀": 1, "\ue000": 2}, [0.1]],
                         ids=["float", "astral-key", "float-in-list"])
def test_values_json_gets_wrong_go_to_the_library(value: object) -> None:
    assert not _json_equals_jcs(value)
    assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_of_the_bmp_take_the_fast_path() -> None:
    """Outside ASCII but inside the BMP, code point and UTF-16 order agree: json's encoder
    sorts such keys as RFC 8785 does."""
    value: dict[str, Any] = {"ä": 1, "\ue000": 2, "B": 3, "Đức": {"é": None, "e": "Bình Định"}}
    assert _json_equals_jcs(value)
    assert canonical_json(value) == rfc8785.dumps(value)


def test_integer_beyond_the_safe_domain_is_refused_like_the_library() -> None:
    assert not _json_equals_jcs({"x": 2**53})
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_json({"x": 2**53})

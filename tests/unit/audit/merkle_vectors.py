"""Generates tests/vectors/merkle/{inclusion,consistency}.jsonl from the naive reference.

One line per vector: a happy path for every (index, size) and (first, second) up to MAX_SIZE,
and mutations (wrong leaf, truncated proof, extra hash, wrong size, flipped bit, ...) of some of
them, each with `want_error`. Regenerate with `python -m tests.unit.audit.merkle_vectors`; the
tests check the files are exactly what this produces.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.unit.audit import merkle_reference as ref

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "merkle"
MAX_SIZE = 17
MUTATED_SIZES = (1, 2, 3, 4, 5, 7, 8, 13, 16, 17)
LEAVES = [f"leaf {i}".encode() for i in range(MAX_SIZE)]
SOME_HASH = hashlib.sha256(b"some other hash").digest()


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x10]) + h[1:]


def inclusion_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for size in range(1, MAX_SIZE + 1):
        leaves = LEAVES[:size]
        root = ref.mth(leaves)
        for index in range(size):
            leaf = hashlib.sha256(b"\x00" + leaves[index]).digest()
            good = ref.path(index, leaves)

            def line(desc: str, *, i: int = index, n: int = size, lf: bytes = leaf,
                     r: bytes = root, p: list[bytes] = good, bad: bool = True) -> None:
                out.append({"desc": desc, "index": i, "size": n, "leaf_hash": lf.hex(),
                            "root": r.hex(), "proof": [h.hex() for h in p], "want_error": bad})

            line("happy-path", bad=False)
            if size not in MUTATED_SIZES or index not in (0, size // 2, size - 1):
                continue
            line("wrong-leaf", lf=_flip(leaf))
            line("wrong-root", r=_flip(root))
            line("index+1", i=index + 1)
            if index > 0:
                line("index-1", i=index - 1)
            line("size*2", n=size * 2)
            if size > 1:
                line("size/2", n=size // 2)
            line("extra-hash", p=[*good, SOME_HASH])
            line("preceding-hash", p=[SOME_HASH, *good])
            if good:
                line("truncated-proof", p=good[:-1])
                for k in range(len(good)):
                    line(f"flipped-proof[{k}]",
                         p=[_flip(h) if j == k else h for j, h in enumerate(good)])
    return out


def consistency_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for second in range(0, MAX_SIZE + 1):
        r2 = ref.mth(LEAVES[:second])
        for first in range(0, second + 1):
            r1 = ref.mth(LEAVES[:first])
            good = ref.proof(first, LEAVES[:second])

            def line(desc: str, *, m: int = first, n: int = second, a: bytes = r1,
                     b: bytes = r2, p: list[bytes] = good, bad: bool = True) -> None:
                out.append({"desc": desc, "first": m, "second": n, "first_root": a.hex(),
                            "second_root": b.hex(), "proof": [h.hex() for h in p],
                            "want_error": bad})

            line("happy-path", bad=False)
            if not good or second not in MUTATED_SIZES or \
                    first not in (1, second // 2, second - 1):
                continue
            line("wrong-first-root", a=_flip(r1))
            line("wrong-second-root", b=_flip(r2))
            line("swapped-roots", a=r2, b=r1)
            line("first+1", m=first + 1) if first + 1 < second else None
            line("first-1", m=first - 1) if first > 1 else None
            line("second*2", n=second * 2)
            line("empty-proof", p=[])
            line("truncated-proof", p=good[:-1])
            line("extra-hash", p=[*good, SOME_HASH])
            line("preceding-hash", p=[SOME_HASH, *good])
            for k in range(len(good)):
                line(f"flipped-proof[{k}]",
                     p=[_flip(h) if j == k else h for j, h in enumerate(good)])
    return out


def render(vectors: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(v, sort_keys=True) + "\n" for v in vectors)


if __name__ == "__main__":
    VECTORS.mkdir(parents=True, exist_ok=True)
    (VECTORS / "inclusion.jsonl").write_text(render(inclusion_vectors()))
    (VECTORS / "consistency.jsonl").write_text(render(consistency_vectors()))

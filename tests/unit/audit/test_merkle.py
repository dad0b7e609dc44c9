"""RFC 9162 Merkle tree: known RFC 6962 vectors, generated vectors with mutations, and a naive
reference implementation cross-checking the fast one (idservice/audit/merkle.py)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from idservice.audit import merkle
from idservice.audit.merkle import (
    CompactRange,
    ConsistencyProofError,
    InclusionProofError,
    NodeID,
)
from tests.unit.audit import merkle_reference as ref
from tests.unit.audit import merkle_vectors

VECTORS = merkle_vectors.VECTORS
KNOWN = json.loads((VECTORS / "rfc6962.json").read_text())
KNOWN_LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in KNOWN["leaves"]]


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (VECTORS / name).read_text().splitlines()]


def _hashes(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def test_known_roots_of_the_rfc6962_test_set() -> None:
    assert merkle.root([]).hex() == KNOWN["empty_root"]
    for size, expected in enumerate(KNOWN["roots"], start=1):
        assert merkle.root(KNOWN_LEAVES[:size]).hex() == expected


@pytest.mark.parametrize("case", KNOWN["inclusion"],
                         ids=lambda c: f"{c['leaf_index']}-{c['tree_size']}")
def test_known_inclusion_proofs_are_generated_and_verify(case: dict[str, Any]) -> None:
    index, size = case["leaf_index"], case["tree_size"]
    proof = merkle.inclusion_proof(index, KNOWN_LEAVES[:size])
    assert [h.hex() for h in proof] == case["proof"]
    merkle.verify_inclusion(index, size, KNOWN_LEAVES[index], proof,
                            bytes.fromhex(KNOWN["roots"][size - 1]))


@pytest.mark.parametrize("case", KNOWN["consistency"],
                         ids=lambda c: f"{c['first']}-{c['second']}")
def test_known_consistency_proofs_are_generated_and_verify(case: dict[str, Any]) -> None:
    first, second = case["first"], case["second"]
    proof = merkle.consistency_proof(first, KNOWN_LEAVES[:second])
    assert [h.hex() for h in proof] == case["proof"]
    merkle.verify_consistency(first, second, bytes.fromhex(KNOWN["roots"][first - 1]),
                              bytes.fromhex(KNOWN["roots"][second - 1]), proof)


def test_vector_files_are_what_the_reference_generates() -> None:
    assert (VECTORS / "inclusion.jsonl").read_text() == \
        merkle_vectors.render(merkle_vectors.inclusion_vectors())
    assert (VECTORS / "consistency.jsonl").read_text() == \
        merkle_vectors.render(merkle_vectors.consistency_vectors())


def test_inclusion_vectors() -> None:
    leaves = [merkle.leaf_hash(d) for d in merkle_vectors.LEAVES]
    cases = _lines("inclusion.jsonl")
    assert {c["desc"] for c in cases} >= {"happy-path", "wrong-leaf", "truncated-proof",
                                          "extra-hash", "size*2", "size/2"}
    for c in cases:
        args = (c["index"], c["size"], bytes.fromhex(c["leaf_hash"]), _hashes(c["proof"]),
                bytes.fromhex(c["root"]))
        if c["want_error"]:
            with pytest.raises(InclusionProofError):
                merkle.verify_inclusion(*args)
        else:
            merkle.verify_inclusion(*args)
            assert merkle.inclusion_proof(c["index"], leaves[:c["size"]]) == args[3]


def test_consistency_vectors() -> None:
    leaves = [merkle.leaf_hash(d) for d in merkle_vectors.LEAVES]
    cases = _lines("consistency.jsonl")
    assert {c["desc"] for c in cases} >= {"happy-path", "wrong-first-root", "truncated-proof",
                                          "extra-hash", "second*2", "empty-proof"}
    for c in cases:
        args = (c["first"], c["second"], bytes.fromhex(c["first_root"]),
                bytes.fromhex(c["second_root"]), _hashes(c["proof"]))
        if c["want_error"]:
            with pytest.raises(ConsistencyProofError):
                merkle.verify_consistency(*args)
        else:
            merkle.verify_consistency(*args)
            assert merkle.consistency_proof(c["first"], leaves[:c["second"]]) == args[4]


@pytest.mark.parametrize("size", [1, 2, 3, 6, 31, 32, 33, 100])
def test_fast_implementation_matches_the_naive_reference(size: int) -> None:
    data = [random.randbytes(random.randint(0, 40)) for _ in range(size)]
    leaves = [merkle.leaf_hash(d) for d in data]
    assert merkle.root(leaves) == ref.mth(data)
    for index in range(size):
        assert merkle.inclusion_proof(index, leaves) == ref.path(index, data)
    for first in range(size + 1):
        assert merkle.consistency_proof(first, leaves) == ref.proof(first, data)


def test_plans_from_stored_subtrees_give_the_same_proofs() -> None:
    leaves = [merkle.leaf_hash(b"%d" % i) for i in range(70)]
    stored: dict[NodeID, bytes] = {}
    tree = CompactRange()
    for leaf in leaves:
        stored.update(tree.append(leaf))
    for size in (1, 2, 5, 8, 33, 64, 70):
        for index in range(0, size, 3):
            assert merkle.assemble(merkle.inclusion_plan(index, size), stored) == \
                merkle.inclusion_proof(index, leaves[:size])
        for first in range(0, size + 1, 4):
            assert merkle.assemble(merkle.consistency_plan(first, size), stored) == \
                merkle.consistency_proof(first, leaves[:size])


def test_compact_range_restores_from_its_frontier_and_keeps_growing() -> None:
    leaves = [merkle.leaf_hash(b"x%d" % i) for i in range(300)]
    tree = CompactRange()
    for i, leaf in enumerate(leaves):
        if i % 37 == 0:
            tree = CompactRange(tree.size, tree.hashes)  # as the integrator reloads it
        tree.append(leaf)
        assert tree.root() == merkle.root(leaves[: i + 1])
    assert len(tree.hashes) == bin(300).count("1")


def test_compact_range_refuses_a_frontier_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="frontier"):
        CompactRange(3, [b"\0" * 32])
    with pytest.raises(ValueError):
        CompactRange(1, [b"short"])


def test_appending_reports_every_completed_subtree() -> None:
    tree = CompactRange(3, [b"\1" * 32, b"\2" * 32])
    nodes = [node for node, _ in tree.append(b"\3" * 32)]
    assert nodes == [NodeID(0, 3), NodeID(1, 1), NodeID(2, 0)]


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 3), (-1, 4)])
def test_impossible_inclusion_parameters_raise(index: int, size: int) -> None:
    with pytest.raises(InclusionProofError):
        merkle.verify_inclusion(index, size, b"\0" * 32, [], b"\0" * 32)
    with pytest.raises(InclusionProofError):
        merkle.inclusion_plan(index, size)


def test_consistency_back_in_time_raises() -> None:
    with pytest.raises(ConsistencyProofError):
        merkle.verify_consistency(2, 1, b"\0" * 32, b"\0" * 32, [])
    with pytest.raises(ConsistencyProofError):
        merkle.consistency_plan(3, 2)


def test_wrong_hash_lengths_raise() -> None:
    with pytest.raises(InclusionProofError):
        merkle.verify_inclusion(0, 1, b"short", [], b"short")



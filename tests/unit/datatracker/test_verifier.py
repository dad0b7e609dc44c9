"""The standalone proof verifier (idservice/datatracker/verifier.py) cross-checked against the
service's own implementations: JCS against `rfc8785`, the leaf hash against `entry.leaf_hash`,
inclusion against `merkle` (itself checked against a naive reference), checkpoints against
`NoteVerifier`; and it imports nothing but the standard library and `cryptography`."""

from __future__ import annotations

import ast
import base64
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from idservice.audit import entry, merkle
from idservice.audit.checkpoints import CheckpointError, NoteVerifier, note_text
from idservice.datatracker import verifier
from idservice.datatracker.verifier import ProofError
from tests.unit.audit.test_entry_checkpoints import _sign

ORIGIN = "id.example.gov.vn/idservice/audit"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(), children, max_size=4), max_leaves=12)


def test_module_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(Path(verifier.__file__).read_text("utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    roots = {name.split(".")[0] for name in names}
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert verifier.canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_are_written_as_ecmascript_does(value: float) -> None:
    assert verifier.canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [2**53, -(2**53), float("nan"), float("inf"), "\ud800",
                                   {1: "x"}, b"bytes"])
def test_values_json_cannot_hold_are_refused(value: Any) -> None:
    with pytest.raises(ProofError):
        verifier.canonical_json(value)


def test_leaf_hash_is_the_services() -> None:
    row = {"index": 7, "at": datetime(2026, 3, 1, 8, 9, 10, 123456, tzinfo=UTC),
           "actor_type": "operator", "actor_id": "officer-1", "action": "person.read",
           "pin": "052326415904", "purpose": "kiểm tra 🙂", "outcome": "found",
           "request_id": None, "source_ip": "10.0.0.1",
           "details": {"é": 1.5, "\U0001d4b3": [True, None], "a": {"hidden_until": "2027-01-01"}}}
    event = entry.render_row(row)
    assert verifier.leaf_hash(event) == entry.leaf_hash(event)
    assert verifier.leaf_hash({**event, "extra": 1}) == entry.leaf_hash(event)
    with pytest.raises(ProofError, match="lacks pin"):
        verifier.leaf_hash({k: v for k, v in event.items() if k != "pin"})


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(n)]


def test_inclusion_agrees_with_merkle_for_every_leaf_of_small_trees() -> None:
    for size in range(1, 34):
        leaves = _leaves(size)
        root = merkle.root(leaves)
        for index in range(size):
            path = merkle.inclusion_proof(index, leaves)
            verifier.verify_inclusion(index, size, leaves[index], path, root)
            if path:
                with pytest.raises(ProofError):
                    verifier.verify_inclusion(index, size, leaves[index], path[:-1], root)
                with pytest.raises(ProofError):
                    verifier.verify_inclusion(index, size, leaves[index], [*path, root], root)
                wrong = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
                with pytest.raises(ProofError):
                    verifier.verify_inclusion(index, size, leaves[index], wrong, root)
            with pytest.raises(ProofError):
                verifier.verify_inclusion(index, size, b"\x01" * 32, path, root)
        with pytest.raises(ProofError):
            verifier.verify_inclusion(size, size, leaves[0], [], root)


def _key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pem


def _agree(note: str, pem: bytes) -> bool:
    """Both verifiers accept `note`, or both refuse it."""
    try:
        NoteVerifier.from_pem(ORIGIN, pem).verify(note)
        service_ok = True
    except CheckpointError:
        service_ok = False
    try:
        verifier.verify_checkpoint(note, pem, ORIGIN)
        ours_ok = True
    except ProofError:
        ours_ok = False
    assert service_ok == ours_ok, note
    return ours_ok


def test_checkpoints_are_judged_as_the_service_judges_them() -> None:
    key, pem = _key()
    other, _ = _key()
    root = hashlib.sha256(b"root").digest()
    body = note_text(ORIGIN, 12, root)
    good = body + "\n" + _sign(key, body)
    assert _agree(good, pem)
    origin, size, got_root, kid = verifier.verify_checkpoint(good, pem)
    assert (origin, size, got_root) == (ORIGIN, 12, root) and len(kid) == 4
    assert _agree(body + "\n" + _sign(other, body) + _sign(key, body), pem)  # other sig ignored
    for bad in (
        body + "\n" + _sign(other, body),  # another key
        note_text(ORIGIN, 13, root) + "\n" + _sign(key, body),  # body changed after signing
        body + "\n" + _sign(key, body, name="other.example/log"),  # another name
        body + _sign(key, body),  # no blank line
        body.replace("12", "012") + "\n" + _sign(key, body.replace("12", "012")),
        body + "\n" + "\u2014 " + ORIGIN + " not-base64!\n",
    ):
        assert not _agree(bad, pem)


def test_a_whole_proof_verifies_and_names_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    key, pem = _key()
    events = [entry.render_row({"index": i, "at": datetime(2026, 1, 1, tzinfo=UTC),
                                "actor_type": "operator", "actor_id": "o", "action": "person.read",
                                "pin": f"{i:012d}", "purpose": "p", "outcome": "found",
                                "request_id": None, "source_ip": None, "details": {}})
              for i in range(5)]
    leaves = [entry.leaf_hash(e) for e in events]
    body = note_text(ORIGIN, 5, merkle.root(leaves))
    proof = {"leaf_index": 3, "tree_size": 5, "event": events[3],
             "hashes": [base64.b64encode(h).decode() for h in merkle.inclusion_proof(3, leaves)],
             "checkpoint": body + "\n" + _sign(key, body)}
    checked = verifier.verify_proof(proof, pem, pin=f"{3:012d}")
    assert checked.leaf_index == 3 and checked.tree_size == 5
    for change, step in (({"event": events[2]}, "leaf:"), ({"leaf_index": 2}, "leaf:"),
                         ({"tree_size": 4}, "checkpoint:"), ({"hashes": []}, "inclusion:"),
                         ({"hashes": ["%%%"]}, "proof:"), ({"checkpoint": None}, "proof:")):
        with pytest.raises(ProofError, match=step):
            verifier.verify_proof({**proof, **change}, pem)

"""Event rendering + leaf hash (RFC 8785 JCS), and C2SP signed-note checkpoints (type 0x02)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from idservice.audit import entry, merkle
from idservice.audit.signed_note import (
    CheckpointError,
    NoteVerifier,
    note_text,
    origin_for,
    split_notes,
)

ORIGIN = "id.example.gov.vn/idservice/audit"
ROOT = hashlib.sha256(b"root").digest()

ROW = {"index": 7, "at": datetime(2026, 3, 1, 8, 9, 10, 123456, tzinfo=UTC),
       "actor_type": "operator", "actor_id": "officer-1", "action": "person.read",
       "pin": "052326415904", "purpose": "kiểm tra", "outcome": "found",
       "request_id": "r-1", "source_ip": "10.0.0.1", "details": {"b": 1, "a": [True, None]}}


def test_event_is_rendered_as_the_api_returns_it() -> None:
    event = entry.render_row(ROW)
    assert list(event) == list(entry.EVENT_FIELDS)
    assert event["at"] == "2026-03-01T08:09:10.123Z"
    assert event["actor"] == {"type": "operator", "id": "officer-1"}


def test_at_is_utc_with_milliseconds_and_z() -> None:
    plus7 = datetime(2026, 1, 1, 7, 0, 0, 5000, tzinfo=timezone(timedelta(hours=7)))
    assert entry.format_at(plus7) == "2026-01-01T00:00:00.005Z"


def test_leaf_hash_is_sha256_of_0x00_and_the_jcs_of_the_event() -> None:
    event = entry.render_row(ROW)
    jcs = ('{"action":"person.read","actor":{"id":"officer-1","type":"operator"},'
           '"at":"2026-03-01T08:09:10.123Z","details":{"a":[true,null],"b":1},"index":7,'
           '"outcome":"found","pin":"052326415904","purpose":"kiểm tra","request_id":"r-1",'
           '"source_ip":"10.0.0.1"}').encode()
    assert entry.leaf_hash(event) == hashlib.sha256(b"\x00" + jcs).digest()
    assert entry.leaf_hash(event) == merkle.leaf_hash(jcs)
    # Key order of the input does not matter; any field change does.
    assert entry.leaf_hash(dict(reversed(event.items()))) == entry.leaf_hash(event)
    assert entry.leaf_hash({**event, "outcome": "not_found"}) != entry.leaf_hash(event)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _sign(key: ec.EllipticCurvePrivateKey, body: str, name: str = ORIGIN) -> str:
    """Signed-note type 0x02 written from the spec: key ID = SHA-256(SPKI DER)[:4], DER sig."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    sig = key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
    return f"\u2014 {name} {base64.b64encode(hashlib.sha256(der).digest()[:4] + sig).decode()}\n"


def test_checkpoint_body_is_origin_size_and_base64_root() -> None:
    assert note_text(ORIGIN, 12, ROOT) == f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\n"
    assert origin_for("https://id.example.gov.vn") == ORIGIN
    assert origin_for("http://127.0.0.1:8000") == "127.0.0.1:8000/idservice/audit"


def test_a_note_signed_by_the_key_verifies() -> None:
    key = _key()
    body = note_text(ORIGIN, 12, ROOT)
    checkpoint = NoteVerifier(ORIGIN, key.public_key()).verify(body + "\n" + _sign(key, body))
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 12, ROOT)


def test_signatures_by_unknown_keys_are_ignored_but_one_is_needed() -> None:
    key, other = _key(), _key()
    body = note_text(ORIGIN, 3, ROOT)
    verifier = NoteVerifier(ORIGIN, key.public_key())
    verifier.verify(body + "\n" + _sign(other, body, "witness.example/w") + _sign(key, body))
    with pytest.raises(CheckpointError, match="not signed by the key"):
        verifier.verify(body + "\n" + _sign(other, body))


@pytest.mark.parametrize("mutate", [
    lambda n: n.replace("\n12\n", "\n13\n"),
    lambda n: n.replace(base64.b64encode(ROOT).decode(), base64.b64encode(b"\1" * 32).decode()),
    lambda n: n.replace(ORIGIN + "\n", "evil.example/log\n", 1),
    lambda n: n.replace("\n\n", "\n"),
    lambda n: n[:-3] + "A=\n",
    lambda n: n + "trailing\n",
    lambda n: n.replace("\u2014 ", "- "),
])
def test_altered_notes_are_rejected(mutate: object) -> None:
    key = _key()
    body = note_text(ORIGIN, 12, ROOT)
    note = body + "\n" + _sign(key, body)
    assert callable(mutate)
    with pytest.raises(CheckpointError):
        NoteVerifier(ORIGIN, key.public_key()).verify(mutate(note))


def test_the_verifier_round_trips_through_pem() -> None:
    key = _key()
    verifier = NoteVerifier(ORIGIN, key.public_key())
    again = NoteVerifier.from_pem(ORIGIN, verifier.public_pem().encode())
    assert again.key_id == verifier.key_id
    rsa_like = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    with pytest.raises(ValueError):
        NoteVerifier.from_pem(ORIGIN, rsa_like)


def test_concatenated_notes_split_back() -> None:
    key = _key()
    notes = []
    for size in (1, 2, 5):
        body = note_text(ORIGIN, size, ROOT)
        notes.append(body + "\n" + _sign(key, body))
    assert split_notes("\n".join(notes)) == notes
    assert split_notes("".join(notes)) == notes
    with pytest.raises(CheckpointError):
        split_notes(notes[0] + "\nunsigned\n")


# -- several keys: rotation with key-ID overlap -----------------------------------------------

def _key_id_hex(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:4].hex()


def test_a_retired_key_still_verifies_the_notes_it_signed() -> None:
    """After a rotation, checkpoints signed by the old key must keep verifying."""
    old, new = _key(), _key()
    verifier = NoteVerifier(ORIGIN, new.public_key(), (old.public_key(),))
    body = note_text(ORIGIN, 7, ROOT)
    by_old = verifier.verify(body + "\n" + _sign(old, body))
    by_new = verifier.verify(body + "\n" + _sign(new, body))
    assert (by_old.size, by_new.size) == (7, 7)
    assert by_old.key_id.hex() == _key_id_hex(old)  # which key vouched is reported
    assert by_new.key_id.hex() == _key_id_hex(new)
    assert verifier.key_id.hex() == _key_id_hex(new)  # the current key is the new one


def test_without_the_retired_key_its_notes_fail_naming_both_key_ids() -> None:
    old, new = _key(), _key()
    body = note_text(ORIGIN, 7, ROOT)
    with pytest.raises(CheckpointError) as caught:
        NoteVerifier(ORIGIN, new.public_key()).verify(body + "\n" + _sign(old, body))
    message = str(caught.value)
    assert "not signed by the key" in message
    assert _key_id_hex(new) in message and _key_id_hex(old) in message


def test_a_bad_signature_under_a_retired_key_id_rejects_the_note() -> None:
    """A known key ID with an invalid signature is a forgery, even next to a valid one."""
    old, new = _key(), _key()
    verifier = NoteVerifier(ORIGIN, new.public_key(), (old.public_key(),))
    body = note_text(ORIGIN, 7, ROOT)
    forged = _sign(old, note_text(ORIGIN, 8, ROOT))  # old's key ID, signature of another body
    with pytest.raises(CheckpointError, match="signature is invalid"):
        verifier.verify(body + "\n" + _sign(new, body) + forged)


def test_a_note_signed_by_an_unrelated_key_fails_with_several_keys() -> None:
    keys = [_key() for _ in range(3)]
    verifier = NoteVerifier(ORIGIN, keys[0].public_key(), (keys[1].public_key(),
                                                           keys[2].public_key()))
    body = note_text(ORIGIN, 7, ROOT)
    with pytest.raises(CheckpointError, match="not signed by the key"):
        verifier.verify(body + "\n" + _sign(_key(), body))


def test_several_pem_keys_first_is_current_duplicates_dropped() -> None:
    old, new = _key(), _key()
    pems = [NoteVerifier(ORIGIN, k.public_key()).public_pem().encode() for k in (new, old)]
    verifier = NoteVerifier.from_pems(ORIGIN, [pems[0], pems[1], pems[1], pems[0]])
    assert [NoteVerifier(ORIGIN, k).key_id.hex() for k in verifier.keys] == \
        [_key_id_hex(new), _key_id_hex(old)]
    body = note_text(ORIGIN, 2, ROOT)
    assert verifier.verify(body + "\n" + _sign(old, body)).size == 2
    with pytest.raises(CheckpointError):
        NoteVerifier.from_pems(ORIGIN, [])

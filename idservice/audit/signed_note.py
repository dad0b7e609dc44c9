"""C2SP signed notes of the audit tree's checkpoints: the format and its verification, pure.

    <origin>\\n<tree size>\\n<base64 root hash>\\n\\n— <key name> <base64(key ID || signature)>\\n

The key name is the origin (`<host of IDSERVICE_ORIGIN>/idservice/audit`), as tlog-checkpoint
recommends. The signature type is signed-note `0x02`, "ECDSA signatures as implemented by
github.com/transparency-dev/witness": an ASN.1 DER ECDSA P-256 signature over SHA-256 of the
note text, key ID = the first 4 bytes of SHA-256 of the public key's DER SubjectPublicKeyInfo.
(SoftHSM 2.6 has no usable Ed25519, the signed-note default; ECDSA keeps the key in the same
HSM code path as the access-token key.)

Key rotation with key-ID overlap: retired keys stay in the verifier, so checkpoints signed
before a rotation keep verifying (each signature line names its key ID).

Verifying needs only public keys: this module imports no HSM code, so auditors' tools (`audit
verify`, `verify.py`, `sources.py`) run without a PKCS#11 module. Signing with the HSM-held key
is `checkpoints.CheckpointSigner`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "SIGNATURE_TYPE_ECDSA",
    "Checkpoint",
    "CheckpointError",
    "NoteVerifier",
    "key_id",
    "note_text",
    "origin_for",
    "public_pem",
    "signed_note",
    "split_notes",
]

SIGNATURE_TYPE_ECDSA = 0x02
_MAX_SIGNATURES = 16
_SIG_PREFIX = "\u2014 "  # em dash, space
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")


class CheckpointError(ValueError):
    """A note is malformed, or not signed by the expected key, or not a valid checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str
    key_id: bytes = b""  # of the key whose signature verified (set by NoteVerifier.verify)


def origin_for(service_origin: str) -> str:
    """`https://id.example.gov.vn` -> `id.example.gov.vn/idservice/audit`."""
    host = service_origin.split("://", 1)[-1].rstrip("/")
    return f"{host}/idservice/audit"


def note_text(origin: str, size: int, root: bytes) -> str:
    if not origin or any(c.isspace() or c == "+" for c in origin):
        raise CheckpointError("origin must be non-empty, without spaces or '+'")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Signed-note key ID of an ECDSA key: the first 4 bytes of SHA-256 of its SPKI DER."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:4]


def public_pem(public_key: ec.EllipticCurvePublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _load_pem(pem: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CheckpointError("the checkpoint key must be an EC P-256 public key")
    return key


def _split(note: str) -> tuple[str, list[str]]:
    if not note.endswith("\n") or "\n\n" not in note:
        raise CheckpointError("not a signed note: no blank line before the signatures")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise CheckpointError("signed notes must not contain control characters")
    cut = note.rindex("\n\n")
    body, signatures = note[: cut + 1], note[cut + 2 :].splitlines()
    if not signatures or len(signatures) > _MAX_SIGNATURES:
        raise CheckpointError(f"a note has 1 to {_MAX_SIGNATURES} signature lines")
    return body, signatures


def _parse_body(body: str, note: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or not all(lines):
        raise CheckpointError("a checkpoint has origin, tree size and root hash lines")
    origin, size_text, root_text = lines[:3]
    if not _DECIMAL.fullmatch(size_text):
        raise CheckpointError("tree size is not a decimal without leading zeros")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("root hash is not base64") from exc
    if len(root) != 32:
        raise CheckpointError("root hash is not 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root=root, note=note)


@dataclass(frozen=True)
class NoteVerifier:
    """Verifies checkpoints signed under one name (the log's origin) by its current key or by
    one of its retired keys (a rotation must not orphan the checkpoints signed before it)."""

    name: str
    public_key: ec.EllipticCurvePublicKey  # the current key
    retired: tuple[ec.EllipticCurvePublicKey, ...] = ()

    @classmethod
    def from_pem(cls, name: str, pem: bytes) -> NoteVerifier:
        return cls(name, _load_pem(pem))

    @classmethod
    def from_pems(cls, name: str, pems: Sequence[bytes]) -> NoteVerifier:
        """The first PEM is the current key, the others retired ones (duplicates dropped)."""
        if not pems:
            raise CheckpointError("at least one checkpoint key is needed")
        keys = [_load_pem(pem) for pem in pems]
        return cls(name, keys[0], tuple(keys[1:])).deduplicated()

    def deduplicated(self) -> NoteVerifier:
        """The same verifier without retired keys equal to the current one or to each other."""
        seen = {public_pem(self.public_key)}
        retired: list[ec.EllipticCurvePublicKey] = []
        for key in self.retired:
            if (pem := public_pem(key)) not in seen:
                seen.add(pem)
                retired.append(key)
        return NoteVerifier(self.name, self.public_key, tuple(retired))

    @property
    def key_id(self) -> bytes:
        """Key ID of the current key."""
        return key_id(self.public_key)

    @property
    def keys(self) -> tuple[ec.EllipticCurvePublicKey, ...]:
        """Every key that verifies: the current one first, then the retired ones."""
        return (self.public_key, *self.retired)

    def public_pem(self) -> str:
        """PEM of the current key."""
        return public_pem(self.public_key)

    def verify(self, note: str) -> Checkpoint:
        """The checkpoint if `note` carries a valid signature by one of these keys; else
        CheckpointError.

        Signatures by other names or key IDs are ignored (signed-note); one by this name and a
        known key ID that fails to verify rejects the note."""
        body, signatures = _split(note)
        by_id: dict[bytes, list[ec.EllipticCurvePublicKey]] = {}
        for key in self.keys:
            by_id.setdefault(key_id(key), []).append(key)
        verified: bytes | None = None
        seen_ids: list[str] = []
        for line in signatures:
            if not line.startswith(_SIG_PREFIX):
                raise CheckpointError("malformed signature line")
            name, _, encoded = line[len(_SIG_PREFIX):].partition(" ")
            try:
                blob = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise CheckpointError("signature is not base64") from exc
            if len(blob) < 5:
                raise CheckpointError("signature is too short")
            if name != self.name:
                continue
            candidates = by_id.get(blob[:4])
            if not candidates:
                seen_ids.append(blob[:4].hex())
                continue
            if not any(_signature_valid(key, blob[4:], body) for key in candidates):
                raise CheckpointError("checkpoint signature is invalid")
            verified = verified or blob[:4]
        if verified is None:
            retired = "".join(f" or the retired key {key_id(k).hex()}" for k in self.retired)
            found = f" (it is signed under that name by key ID {', '.join(seen_ids)})" \
                if seen_ids else ""
            raise CheckpointError(f"checkpoint is not signed by the key {self.name} "
                                  f"{self.key_id.hex()}{retired}{found}")
        checkpoint = _parse_body(body, note)
        if checkpoint.origin != self.name:
            raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not {self.name!r}")
        return dataclasses.replace(checkpoint, key_id=verified)


def _signature_valid(key: ec.EllipticCurvePublicKey, der: bytes, body: str) -> bool:
    try:
        key.verify(der, body.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def signed_note(body: str, name: str, key: bytes, raw_signature: bytes) -> str:
    """The note `body` (from `note_text`) with one signature line by key ID `key`, from the
    raw P-256 `r || s` an HSM returns (DER-encoded here, as signed-note type 0x02 wants)."""
    if len(raw_signature) != 64:
        raise CheckpointError("a P-256 signature is 64 bytes r || s")
    der = encode_dss_signature(int.from_bytes(raw_signature[:32]),
                               int.from_bytes(raw_signature[32:]))
    blob = base64.b64encode(key + der).decode()
    return f"{body}\n{_SIG_PREFIX}{name} {blob}\n"


def split_notes(text: str) -> list[str]:
    """Split concatenated signed notes (as `idservice audit checkpoints` prints them)."""
    notes: list[str] = []
    body: list[str] = []
    sigs: list[str] = []
    for line in text.splitlines():
        if line.startswith(_SIG_PREFIX) and (sigs or (body and body[-1] == "")):
            sigs.append(line)
        elif sigs:
            notes.append("\n".join(body) + "\n" + "\n".join(sigs) + "\n")
            body, sigs = ([line] if line else []), []
        elif line or body:
            body.append(line)
    if sigs:
        notes.append("\n".join(body) + "\n" + "\n".join(sigs) + "\n")
    elif any(body):
        raise CheckpointError("text after the last signed note has no signature lines")
    return notes

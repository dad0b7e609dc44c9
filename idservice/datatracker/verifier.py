"""Standalone verifier of a Data Tracker usage proof (`GET /datatracker/v2/proof`).

For a portal or a citizen's app: this one file, the Python standard library and
`cryptography`, nothing of idservice (copy it as it is). Given the proof answer and the log's
public key (`GET /v1/audit/key`, PEM), `verify_proof` checks, and raises `ProofError` at the
first step that fails:

1. leaf: the event is the usage's audit event; its leaf hash is
   `SHA-256(0x00 || JCS(event))` (RFC 9162 section 2.1.1; JCS = RFC 8785 canonical JSON of the
   event's ten contract fields) and its `index` is the proof's `leaf_index`;
2. inclusion: the audit path leads from that leaf to a root of `tree_size` leaves (RFC 9162
   section 2.1.3.2, verbatim);
3. checkpoint: the checkpoint is a C2SP signed note (tlog-checkpoint body: origin, tree size,
   base64 root) signed by the given key (signature type "ECDSA as in
   transparency-dev/witness": key ID = first 4 bytes of SHA-256 of the SubjectPublicKeyInfo
   DER, then a DER ECDSA P-256/SHA-256 signature over the note text), its size is `tree_size`
   and its root is the root the path leads to.

A verified proof says: the log the key signs contains this event at this index, so the
service cannot later deny or alter that usage without the signed checkpoints showing it.
JCS here covers what JSON can hold (floats in ECMAScript form, UTF-16 key order); integers
beyond 2^53 are refused as RFC 8785 requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["EVENT_FIELDS", "ProofError", "VerifiedUsage", "canonical_json", "leaf_hash",
           "verify_checkpoint", "verify_inclusion", "verify_proof"]

EVENT_FIELDS = ("index", "at", "actor", "action", "pin", "purpose", "outcome", "request_id",
                "source_ip", "details")
_SIG_PREFIX = "\u2014 "  # em dash, space
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)")
_MAX_SAFE = 2**53


class ProofError(ValueError):
    """The proof does not verify; the message names the step."""


@dataclass(frozen=True)
class VerifiedUsage:
    event: dict[str, Any]
    leaf_index: int
    tree_size: int
    root: bytes
    origin: str
    key_id: bytes


# -- RFC 8785 canonical JSON -----------------------------------------------------------------


def _number(value: int | float) -> str:
    if isinstance(value, int):
        if not -_MAX_SAFE < value < _MAX_SAFE:
            raise ProofError(f"integer {value} is outside the I-JSON range of RFC 8785")
        return str(value)
    if not math.isfinite(value):
        raise ProofError("NaN and infinities have no JSON form")
    if value == 0:
        return "0"
    # ECMAScript Number::toString from the shortest round-trip digits (repr gives them).
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    k, n = len(digits), point
    sign = "-" if value < 0 else ""
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") \
            + str(abs(e))
    return sign + text


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16)):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise ProofError(f"a {type(value).__name__} has no JSON form")


def _utf16(key: Any) -> bytes:
    if not isinstance(key, str):
        raise ProofError("JSON object keys are strings")
    return key.encode("utf-16-be", "surrogatepass")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON of a JSON value."""
    out: list[str] = []
    _write(value, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ProofError("a string holds a lone surrogate, which JSON text cannot") from exc


# -- RFC 9162 --------------------------------------------------------------------------------


def leaf_hash(event: Mapping[str, Any]) -> bytes:
    missing = [name for name in EVENT_FIELDS if name not in event]
    if missing:
        raise ProofError(f"leaf: the event lacks {', '.join(missing)}")
    data = canonical_json({name: event[name] for name in EVENT_FIELDS})
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes],
                     root: bytes) -> None:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        raise ProofError(f"inclusion: leaf index {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if len(p) != 32:
            raise ProofError("inclusion: a path hash is not 32 bytes")
        if sn == 0:
            raise ProofError("inclusion: the path is too long")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion: the path is too short")
    if r != root:
        raise ProofError("inclusion: the path does not lead to the checkpoint's root")


# -- C2SP signed note / tlog-checkpoint --------------------------------------------------------


def _key(public_key_pem: bytes) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise ProofError("checkpoint: the key is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ProofError("checkpoint: the key is not an EC P-256 public key")
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, hashlib.sha256(der).digest()[:4]


def verify_checkpoint(note: str, public_key_pem: bytes, name: str | None = None
                      ) -> tuple[str, int, bytes, bytes]:
    """(origin, tree size, root hash, key ID) of a checkpoint signed by the key under `name`
    (default: the checkpoint's own origin line, the key name idservice signs under)."""
    if not note.endswith("\n") or "\n\n" not in note or \
            any(ord(c) < 0x20 and c != "\n" for c in note):
        raise ProofError("checkpoint: not a signed note")
    cut = note.rindex("\n\n")
    body, signatures = note[: cut + 1], note[cut + 2:].splitlines()
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or not all(lines) or not _DECIMAL.fullmatch(lines[1]):
        raise ProofError("checkpoint: no origin, tree size and root hash lines")
    origin = lines[0]
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise ProofError("checkpoint: the root hash is not base64") from exc
    if len(root) != 32:
        raise ProofError("checkpoint: the root hash is not 32 bytes")
    key, kid = _key(public_key_pem)
    wanted = name or origin
    if origin != wanted:
        raise ProofError(f"checkpoint: origin {origin!r} is not {wanted!r}")
    for line in signatures:
        if not line.startswith(_SIG_PREFIX):
            raise ProofError("checkpoint: a malformed signature line")
        signer, _, encoded = line[len(_SIG_PREFIX):].partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ProofError("checkpoint: a signature is not base64") from exc
        if signer != wanted or blob[:4] != kid:
            continue
        try:
            key.verify(blob[4:], body.encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise ProofError("checkpoint: the signature is invalid") from exc
        return origin, int(lines[1]), root, kid
    raise ProofError(f"checkpoint: not signed by key {kid.hex()} under {wanted!r}")


# -- the whole proof -----------------------------------------------------------------------------


def _int(proof: Mapping[str, Any], name: str) -> int:
    value = proof.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"proof: {name} is not a non-negative integer")
    return value


def verify_proof(proof: Mapping[str, Any], public_key_pem: bytes, *, key_name: str | None = None,
                 pin: str | None = None) -> VerifiedUsage:
    """Check a `/datatracker/v2/proof` answer: leaf, inclusion, checkpoint signature (module
    docstring). `pin`, if given, must be the event's PIN."""
    event = proof.get("event")
    if not isinstance(event, Mapping):
        raise ProofError("proof: no event (the leaf) in the proof")
    index, size = _int(proof, "leaf_index"), _int(proof, "tree_size")
    if event.get("index") != index:
        raise ProofError("leaf: the event's index is not the proof's leaf_index")
    if pin is not None and event.get("pin") != pin:
        raise ProofError("leaf: the event is not about this PIN")
    leaf = leaf_hash(event)
    hashes_b64 = proof.get("hashes")
    if not isinstance(hashes_b64, list) or not all(isinstance(h, str) for h in hashes_b64):
        raise ProofError("proof: hashes is not a list of base64 strings")
    try:
        path = [base64.b64decode(h, validate=True) for h in hashes_b64]
    except binascii.Error as exc:
        raise ProofError("proof: a hash is not base64") from exc
    note = proof.get("checkpoint")
    if not isinstance(note, str):
        raise ProofError("proof: no checkpoint")
    origin, checkpoint_size, root, kid = verify_checkpoint(note, public_key_pem, key_name)
    if checkpoint_size != size:
        raise ProofError(f"checkpoint: tree size {checkpoint_size} is not the proof's {size}")
    verify_inclusion(index, size, leaf, path, root)
    return VerifiedUsage(dict(event), index, size, root, origin, kid)

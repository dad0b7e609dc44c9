"""Public JWKs and RFC 7638 thumbprints for the keys held in the HSM.

* Member encodings follow RFC 7518 §6.2.1 (EC: ``x``/``y`` are the full-length,
  big-endian field elements, 32 bytes for P-256) and §6.3.1 (RSA: ``n``/``e`` are
  unsigned big-endian integers without leading zero octets), all base64url without
  padding (RFC 7515 §2).
* The key id is the RFC 7638 thumbprint: SHA-256 over the JSON object holding only the
  required members, keys in lexicographic order, no whitespace (§3.2, §3.3). It is
  deterministic, so every replica and every restart publishes the same ``kid`` for the
  same HSM key without storing anything.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["PublicKey", "b64url", "jwk_thumbprint", "public_jwk_members"]

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def public_jwk_members(key: PublicKey) -> dict[str, str]:
    """The key-type specific JWK members (``kty`` and the public parameters)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"unsupported curve {key.curve.name}")
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    rsa_numbers = key.public_numbers()
    return {
        "kty": "RSA",
        "n": b64url(_uint_bytes(rsa_numbers.n)),
        "e": b64url(_uint_bytes(rsa_numbers.e)),
    }


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public EC or RSA JWK, base64url without padding."""
    required = _REQUIRED_MEMBERS[jwk["kty"]]
    canonical = json.dumps(
        {name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())

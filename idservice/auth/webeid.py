"""The Web eID authentication token (web-eid:1.0) as our officers' clients send it (contract 3.1).

Pure: the signed data is `H(origin) || H(nonce)`, `H` the hash named by the algorithm, and the
token a JSON object with the base64 DER certificate and the base64 signature (ES*: raw r||s as
in JWS). The server's checks and the officer-side CLI both use this module, so they agree.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

__all__ = ["ALGORITHMS", "TOKEN_FORMAT", "auth_token", "hash_name", "signed_data"]

TOKEN_FORMAT = "web-eid:1.0"
ALGORITHMS: frozenset[str] = frozenset(
    f"{family}{bits}" for family in ("ES", "PS", "RS") for bits in (256, 384, 512))


def hash_name(algorithm: str) -> str:
    """`sha256`, `sha384` or `sha512`: the hash of a JWS algorithm name."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {algorithm!r}")
    return f"sha{algorithm[2:]}"


def signed_data(origin: str, nonce: str, algorithm: str) -> bytes:
    """What the token signs: `H(origin) || H(nonce)` (each hashed as UTF-8)."""
    name = hash_name(algorithm)
    return (hashlib.new(name, origin.encode("utf-8")).digest()
            + hashlib.new(name, nonce.encode("utf-8")).digest())


def auth_token(certificate_der: bytes, algorithm: str, signature: bytes,
               app_version: str = "idservice-login/1.0") -> dict[str, Any]:
    return {
        "format": TOKEN_FORMAT,
        "unverifiedCertificate": base64.b64encode(certificate_der).decode("ascii"),
        "algorithm": algorithm,
        "signature": base64.b64encode(signature).decode("ascii"),
        "appVersion": app_version,
    }

"""Client side of private_key_jwt (RFC 7523 section 2.2): what civil-status software sends.

Used by the CLI (`idservice clients token`), the tests and the benchmarks, so they all speak
to the server exactly as a real client would.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = ["ASSERTION_FORM_TYPE", "client_assertion", "client_token_form", "load_private_key"]

ASSERTION_FORM_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def load_private_key(pem: bytes) -> Any:
    return load_pem_private_key(pem, password=None)


def client_assertion(client_id: str, private_key: Any, audience: str, *, lifetime: int = 120,
                     jti: str | None = None, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = {256: "ES256", 384: "ES384", 521: "ES512"}[private_key.curve.key_size]
    elif isinstance(private_key, rsa.RSAPrivateKey):
        alg = "PS256"
    else:
        raise TypeError("client keys are EC (P-256/384/521) or RSA")
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": issued,
              "exp": issued + lifetime, "jti": jti or secrets.token_urlsafe(16)}
    return jwt.encode(claims, private_key, algorithm=alg)


def client_token_form(client_id: str, private_key: Any, audience: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_FORM_TYPE,
        "client_assertion": client_assertion(client_id, private_key, audience),
    }

"""Independent verification helpers (``cryptography`` and PyJWT only, no hsm code)."""

from __future__ import annotations

import base64
import hashlib
import json

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verify(public_key: object, data: bytes, signature: bytes, alg: str) -> None:
    """Raise cryptography.exceptions.InvalidSignature unless ``signature`` is valid JWS."""
    if alg == "ES256":
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert len(signature) == 64
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    elif alg == "PS256":
        assert isinstance(public_key, rsa.RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public_key.verify(signature, data, pss, hashes.SHA256())
    elif alg == "RS256":
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise AssertionError(alg)


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3: required members only, sorted, no whitespace, SHA-256, base64url."""
    required = {"EC": ["crv", "kty", "x", "y"], "RSA": ["e", "kty", "n"]}[jwk["kty"]]
    canonical = "{" + ",".join(f'"{name}":"{jwk[name]}"' for name in required) + "}"
    assert canonical == json.dumps(
        {k: jwk[k] for k in required}, sort_keys=True, separators=(",", ":")
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def jws_signing_input(header: dict[str, str], claims: dict[str, object]) -> bytes:
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{h}.{p}".encode()


def pyjwt_decode(token: str, jwk: dict[str, str], alg: str) -> dict[str, object]:
    key = jwt.PyJWK(jwk).key
    decoded: dict[str, object] = jwt.decode(token, key=key, algorithms=[alg])
    return decoded

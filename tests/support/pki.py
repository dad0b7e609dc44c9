"""Keys and certificates made in the test (never binary fixtures checked in)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from idservice.demo import self_signed_client_cert


@dataclass(frozen=True)
class ClientKey:
    key: ec.EllipticCurvePrivateKey
    cert_pem: bytes


def new_client_key(name: str) -> ClientKey:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_client_cert(key, name)
    return ClientKey(key, cert.public_bytes(Encoding.PEM))

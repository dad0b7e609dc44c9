"""How a certificate is named: by SHA-256 of its DER, or by issuer (RFC 4514) and serial
(lowercase hex), as Keycloak's X.509 authenticator maps users; and its RFC 8705 thumbprint.

One definition for operators and machine clients alike, so CRL entries (issuer, serial) match
both registries the same way.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["CertificateIdentity", "certificate_identity", "x5t_s256"]


@dataclass(frozen=True)
class CertificateIdentity:
    sha256: str  # hex
    issuer: str  # RFC 4514
    serial: str  # lowercase hex


def certificate_identity(cert: x509.Certificate) -> CertificateIdentity:
    return CertificateIdentity(
        sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
    )


def x5t_s256(cert_der: bytes) -> str:
    """RFC 8705 section 3.1: base64url SHA-256 of the DER certificate (`cnf.x5t#S256`)."""
    return base64.urlsafe_b64encode(hashlib.sha256(cert_der).digest()).rstrip(b"=").decode()

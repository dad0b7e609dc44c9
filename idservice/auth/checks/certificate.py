"""Check 3: the certificate decodes (strict DER, X.509 v3, nothing after it).

The strict parse of every field costs more than the rest of the checks together (asn1crypto,
pure Python), and it is a function of the bytes alone: the last 1,024 certificates that parsed
are kept, keyed by their DER. A certificate that does not parse is parsed (and refused) again.
"""

from __future__ import annotations

import functools

from asn1crypto import x509 as asn1_x509
from cryptography import x509

from idservice.auth.checks.base import LoginAttempt
from idservice.auth.login_errors import TokenParse

__all__ = ["CertificateCheck", "parse_certificate"]


@functools.lru_cache(maxsize=1024)
def parse_certificate(der: bytes) -> tuple[x509.Certificate, asn1_x509.Certificate]:
    """Both libraries' views of a DER certificate; raises `TokenParse`."""
    try:
        cert = x509.load_der_x509_certificate(der)
        parsed = asn1_x509.Certificate.load(der, strict=True)
        parsed.native  # noqa: B018 - parse every field now, not later in another check
    except (ValueError, TypeError) as exc:
        raise TokenParse("unverifiedCertificate is not a DER X.509 certificate") from exc
    if cert.version is not x509.Version.v3:
        raise TokenParse("unverifiedCertificate must be an X.509 v3 certificate")
    return cert, parsed


class CertificateCheck:
    name = "certificate"

    async def run(self, attempt: LoginAttempt) -> None:
        attempt.certificate, attempt.asn1_certificate = parse_certificate(
            attempt.parsed.certificate_der)

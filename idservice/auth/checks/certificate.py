"""Check 3: the certificate decodes (strict DER, X.509 v3, nothing after it)."""

from __future__ import annotations

from asn1crypto import x509 as asn1_x509
from cryptography import x509

from idservice.auth.checks.base import LoginAttempt
from idservice.auth.login_errors import TokenParse

__all__ = ["CertificateCheck"]


class CertificateCheck:
    name = "certificate"

    async def run(self, attempt: LoginAttempt) -> None:
        der = attempt.parsed.certificate_der
        try:
            cert = x509.load_der_x509_certificate(der)
            parsed = asn1_x509.Certificate.load(der, strict=True)
            parsed.native  # noqa: B018 - parse every field now, not later in another check
        except (ValueError, TypeError) as exc:
            raise TokenParse("unverifiedCertificate is not a DER X.509 certificate") from exc
        if cert.version is not x509.Version.v3:
            raise TokenParse("unverifiedCertificate must be an X.509 v3 certificate")
        attempt.certificate = cert
        attempt.asn1_certificate = parsed

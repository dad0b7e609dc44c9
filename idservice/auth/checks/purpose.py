"""Check 4: a certificate meant for authentication (Web eID: keyUsage digitalSignature; an
extendedKeyUsage, when present, must include clientAuth, RFC 5280 section 4.2.1.12)."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from idservice.auth.checks.base import LoginAttempt
from idservice.auth.login_errors import CertWrongPurpose

__all__ = ["PurposeCheck"]


class PurposeCheck:
    name = "purpose"

    async def run(self, attempt: LoginAttempt) -> None:
        cert = attempt.cert
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound as exc:
            raise CertWrongPurpose("certificate has no keyUsage extension") from exc
        if not usage.digital_signature:
            raise CertWrongPurpose("keyUsage lacks digitalSignature")
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise CertWrongPurpose("extendedKeyUsage lacks clientAuth")

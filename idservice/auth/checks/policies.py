"""Check 5: the certificate asserts every configured policy OID (`IDSERVICE_CERT_POLICIES`)."""

from __future__ import annotations

from cryptography import x509

from idservice.auth.checks.base import LoginAttempt
from idservice.auth.login_errors import CertPolicy

__all__ = ["PolicyCheck"]


class PolicyCheck:
    name = "policies"

    def __init__(self, required: frozenset[str]) -> None:
        self._required = required

    async def run(self, attempt: LoginAttempt) -> None:
        if not self._required:
            return
        try:
            policies = attempt.cert.extensions.get_extension_for_class(
                x509.CertificatePolicies).value
        except x509.ExtensionNotFound as exc:
            raise CertPolicy("certificate has no certificatePolicies extension") from exc
        asserted = {p.policy_identifier.dotted_string for p in policies}
        missing = sorted(self._required - asserted)
        if missing:
            raise CertPolicy(f"certificate lacks policy {missing[0]}")

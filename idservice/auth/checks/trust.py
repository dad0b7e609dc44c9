"""Check 7: a valid path to a configured trust anchor (RFC 5280 section 6, pyhanko-certvalidator),
and the certificate's direct issuer on the issuing-CA allow-list (pinned by SHA-256).

For a certificate without an OCSP URL (CRL-checked) this check runs the login's one path
validation, path and CRLs together (`PathValidator.crl_checked`, cached while it holds), and
leaves the CRL part of the outcome to the revocation check, which reports it in its turn. A
failed combined validation is classified by validating the path alone: a path problem is
`cert_untrusted` whatever the CRLs say, as the contract's order wants. A certificate with an
OCSP URL gets the path alone here (cached): its issuer is needed to ask the responder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.errors import PathError, ValidationError

from idservice.auth.checks.base import CrlOutcome, LoginAttempt
from idservice.auth.checks.pkix import PathValidator
from idservice.auth.login_errors import CertUntrusted
from idservice.auth.ocsp import ocsp_url

__all__ = ["VALIDATION_ERRORS", "TrustCheck"]

VALIDATION_ERRORS = (PathError, ValidationError, ValueError)


class TrustCheck:
    name = "trust"

    def __init__(self, paths: PathValidator) -> None:
        self._paths = paths
        self._config = paths.config

    async def run(self, attempt: LoginAttempt) -> None:
        if not self._config.trust_anchors:
            raise CertUntrusted("no trust anchors are configured (IDSERVICE_TRUST_ANCHORS)")
        if ocsp_url(attempt.cert) is None:
            path: Sequence[asn1_x509.Certificate]
            try:
                path = await self._paths.crl_checked(attempt.asn1_cert, attempt.cert_sha256,
                                                     attempt.now)
                outcome = CrlOutcome(None)
            except VALIDATION_ERRORS as exc:
                path = await self.trusted_path(attempt.asn1_cert, attempt.cert_sha256,
                                               attempt.now)
                outcome = CrlOutcome(exc)
            self._check_issuer(path)
            attempt.path, attempt.crl_outcome = path, outcome
            return
        attempt.path = await self.trusted_path(attempt.asn1_cert, attempt.cert_sha256,
                                               attempt.now)

    async def trusted_path(self, cert: asn1_x509.Certificate, cert_sha256: str,
                           moment: datetime) -> Sequence[asn1_x509.Certificate]:
        """The path alone (no revocation), with its issuer allowed; else `CertUntrusted`."""
        try:
            path = await self._paths.trusted(cert, cert_sha256, moment)
        except VALIDATION_ERRORS as exc:
            raise CertUntrusted("no valid path to a trusted CA") from exc
        self._check_issuer(path)
        return path

    def _check_issuer(self, path: Sequence[asn1_x509.Certificate]) -> None:
        if len(path) < 2:
            raise CertUntrusted("a trust anchor cannot log in")
        allowed = self._config.allowed_issuer_sha256
        if allowed is not None and hashlib.sha256(path[-2].dump()).hexdigest() not in allowed:
            raise CertUntrusted("the issuing CA is not on the allow-list (IDSERVICE_ISSUING_CAS)")

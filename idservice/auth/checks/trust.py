"""Check 7: a valid path to a configured trust anchor (RFC 5280 section 6, pyhanko-certvalidator),
and the certificate's direct issuer on the issuing-CA allow-list (pinned by SHA-256)."""

from __future__ import annotations

import hashlib

from pyhanko_certvalidator.errors import PathError, ValidationError

from idservice.auth.checks._pkix import validate_path
from idservice.auth.checks.base import LoginAttempt, ValidatorConfig
from idservice.auth.login_errors import CertUntrusted

__all__ = ["TrustCheck"]


class TrustCheck:
    name = "trust"

    def __init__(self, config: ValidatorConfig) -> None:
        self._config = config

    async def run(self, attempt: LoginAttempt) -> None:
        if not self._config.trust_anchors:
            raise CertUntrusted("no trust anchors are configured (IDSERVICE_TRUST_ANCHORS)")
        try:
            path = await validate_path(self._config, attempt.asn1_cert, attempt.now, crls=None)
        except (PathError, ValidationError, ValueError) as exc:
            raise CertUntrusted("no valid path to a trusted CA") from exc
        if len(path) < 2:
            raise CertUntrusted("a trust anchor cannot log in")
        allowed = self._config.allowed_issuer_sha256
        if allowed is not None and hashlib.sha256(path[-2].dump()).hexdigest() not in allowed:
            raise CertUntrusted("the issuing CA is not on the allow-list (IDSERVICE_ISSUING_CAS)")
        attempt.path = path

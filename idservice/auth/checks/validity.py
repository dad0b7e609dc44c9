"""Check 6: the certificate is valid now, by the injected clock, allowing the configured skew."""

from __future__ import annotations

from datetime import timedelta

from idservice.auth.checks.base import LoginAttempt
from idservice.auth.login_errors import CertExpired, CertNotYetValid

__all__ = ["ValidityCheck"]


class ValidityCheck:
    name = "validity"

    def __init__(self, skew: timedelta) -> None:
        self._skew = skew

    async def run(self, attempt: LoginAttempt) -> None:
        cert = attempt.cert
        if cert.not_valid_after_utc < attempt.now - self._skew:
            raise CertExpired(f"certificate expired at {cert.not_valid_after_utc.isoformat()}")
        if cert.not_valid_before_utc > attempt.now + self._skew:
            raise CertNotYetValid(
                f"certificate valid from {cert.not_valid_before_utc.isoformat()}")

"""Check 8: fresh revocation data says the certificate is not revoked (fail closed).

Where the end-entity status comes from (`IDSERVICE_REVOCATION`):

- `require` (default): a certificate with an AIA OCSP URL is checked by OCSP only, a live
  answer (`auth/ocsp.py`: our nonce, fresh) that pyhanko-certvalidator verifies (signed by the
  issuing CA or by a responder certificate with id-kp-OCSPSigning it issued, and, as RFC 6960
  4.2.2.2.1 expects of one, id-pkix-ocsp-nocheck); no answer means `revocation_unavailable`,
  whatever CRLs say. A certificate without an OCSP URL needs a fresh CRL covering it.
- `ocsp-then-crl`: OCSP first as above; when it gives no usable answer (unreachable, bad
  signature, wrong nonce, stale, `unknown`), a fresh CRL decides instead, and the fallback is
  logged (`ocsp_unavailable_crl_fallback`). A verified `revoked` is final.

CRLs come from the periodically refreshed cache (`auth/crl_cache.py`); a CRL past its
nextUpdate is no data. The issuing CA is checked with CRLs when it names a distribution point.
For a CRL-checked certificate the trust check already ran the validation with the CRLs (one
pyhanko validation per login, `checks/trust.py`); this check reports its CRL outcome.

`status` is the same decision for a certificate outside a login: the periodic re-check of
the certificates behind live officer tokens (`auth/live_certs.py`) uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko_certvalidator.errors import RevokedError

from idservice.auth.checks.base import CrlOutcome, LoginAttempt
from idservice.auth.checks.pkix import CrlSource, PathValidator
from idservice.auth.checks.trust import VALIDATION_ERRORS
from idservice.auth.login_errors import CertRevoked, RevocationUnavailable
from idservice.auth.ocsp import OcspClient, OcspUnavailable, ocsp_url
from idservice.logging import get_logger

__all__ = ["CrlSource", "RevocationCheck", "RevocationPolicy"]

_log = get_logger(__name__)

RevocationPolicy = Literal["require", "ocsp-then-crl"]


class RevocationCheck:
    name = "revocation"

    def __init__(self, paths: PathValidator, ocsp: OcspClient, *,
                 policy: RevocationPolicy = "require") -> None:
        self._paths = paths
        self._ocsp = ocsp
        self._policy = policy

    async def run(self, attempt: LoginAttempt) -> None:
        await self.status(attempt.cert, attempt.asn1_cert, attempt.cert_sha256, attempt.path,
                          attempt.now, crl_outcome=attempt.crl_outcome)

    async def status(self, cert: x509.Certificate, asn1_cert: asn1_x509.Certificate,
                     cert_sha256: str, path: Sequence[asn1_x509.Certificate], now: datetime,
                     *, crl_outcome: CrlOutcome | None = None) -> None:
        """Return if not revoked; raise `CertRevoked` or `RevocationUnavailable`. `path` is
        the validated path (anchor first); `crl_outcome` a CRL validation already made."""
        url = ocsp_url(cert)
        if url is not None:
            try:
                await self._by_ocsp(cert, asn1_cert, path, now, url)
                return
            except OcspUnavailable as exc:
                if self._policy == "require":
                    raise RevocationUnavailable(f"no usable OCSP answer: {exc}") from exc
                _log.warning("ocsp_unavailable_crl_fallback", policy=self._policy, url=url,
                             reason=str(exc))
        if crl_outcome is None:
            try:
                await self._paths.crl_checked(asn1_cert, cert_sha256, now)
                crl_outcome = CrlOutcome(None)
            except VALIDATION_ERRORS as exc:
                crl_outcome = CrlOutcome(exc)
        if isinstance(crl_outcome.error, RevokedError):
            raise CertRevoked("the certificate (or its CA) is revoked") from crl_outcome.error
        if crl_outcome.error is not None:
            raise RevocationUnavailable(
                "no fresh CRL covers the certificate") from crl_outcome.error

    async def _by_ocsp(self, cert: x509.Certificate, asn1_cert: asn1_x509.Certificate,
                       path: Sequence[asn1_x509.Certificate], now: datetime, url: str) -> None:
        """Raises `CertRevoked` on a verified `revoked`, `OcspUnavailable` on no good answer."""
        issuer = x509.load_der_x509_certificate(path[-2].dump())
        answer = await self._ocsp.query(cert, issuer, url, now)
        try:
            await self._paths.ocsp_checked(asn1_cert, now, answer.der)
        except RevokedError as exc:
            raise CertRevoked("the certificate (or its CA) is revoked") from exc
        except VALIDATION_ERRORS as exc:
            raise OcspUnavailable(
                f"the OCSP answer ({answer.status.name}) does not verify or is not 'good'"
            ) from exc

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from cryptography import x509
from pyhanko_certvalidator.errors import PathError, RevokedError, ValidationError

from idservice.auth.checks._pkix import validate_path
from idservice.auth.checks.base import LoginAttempt, ValidatorConfig
from idservice.auth.login_errors import CertRevoked, RevocationUnavailable
from idservice.auth.ocsp import OcspClient, OcspUnavailable, ocsp_url
from idservice.logging import get_logger

__all__ = ["CrlSource", "RevocationCheck", "RevocationPolicy"]

_log = get_logger(__name__)

RevocationPolicy = Literal["require", "ocsp-then-crl"]


class CrlSource(Protocol):
    def crls(self) -> Sequence[bytes]:
        """The DER CRLs currently known (fresh or not: freshness is judged per validation)."""
        ...


class RevocationCheck:
    name = "revocation"

    def __init__(self, config: ValidatorConfig, source: CrlSource, ocsp: OcspClient, *,
                 policy: RevocationPolicy = "require") -> None:
        self._config = config
        self._source = source
        self._ocsp = ocsp
        self._policy = policy

    async def run(self, attempt: LoginAttempt) -> None:
        url = ocsp_url(attempt.cert)
        if url is not None:
            try:
                await self._by_ocsp(attempt, url)
                return
            except OcspUnavailable as exc:
                if self._policy == "require":
                    raise RevocationUnavailable(f"no usable OCSP answer: {exc}") from exc
                _log.warning("ocsp_unavailable_crl_fallback", policy=self._policy, url=url,
                             reason=str(exc))
        await self._by_crl(attempt)

    async def _by_ocsp(self, attempt: LoginAttempt, url: str) -> None:
        """Raises `CertRevoked` on a verified `revoked`, `OcspUnavailable` on no good answer."""
        issuer = x509.load_der_x509_certificate(attempt.path[-2].dump())
        answer = await self._ocsp.query(attempt.cert, issuer, url, attempt.now)
        try:
            await validate_path(self._config, attempt.asn1_cert, attempt.now,
                                crls=self._source.crls(), ocsps=[answer.der])
        except RevokedError as exc:
            raise CertRevoked("the certificate (or its CA) is revoked") from exc
        except (PathError, ValidationError, ValueError) as exc:
            raise OcspUnavailable(
                f"the OCSP answer ({answer.status.name}) does not verify or is not 'good'"
            ) from exc

    async def _by_crl(self, attempt: LoginAttempt) -> None:
        try:
            await validate_path(self._config, attempt.asn1_cert, attempt.now,
                                crls=self._source.crls())
        except RevokedError as exc:
            raise CertRevoked("the certificate (or its CA) is revoked") from exc
        except (PathError, ValidationError, ValueError) as exc:
            raise RevocationUnavailable("no fresh CRL covers the certificate") from exc

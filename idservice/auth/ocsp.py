"""OCSP for officer login (RFC 6960): ask the responder named in the certificate's AIA extension
about one certificate, with a nonce of our own (RFC 8954), and keep only a fresh answer to our
question.

What this module checks: the transport (http(s) POST, short timeout, size cap, no redirects),
`responseStatus = successful`, the nonce equals the one we sent (pyhanko-certvalidator does not
check nonces), one single response for our certificate's serial, and freshness Web eID style
(`OcspResponseValidator.validateCertificateStatusUpdateTime`), judged with the injected clock:

- thisUpdate must not be later than now + clock skew (Web eID allows 15 min: our servers keep
  time, so the configured `IDSERVICE_CLOCK_SKEW_SECONDS` is used);
- thisUpdate must not be older than `IDSERVICE_OCSP_MAX_AGE_SECONDS` (Web eID: 2 min);
- nextUpdate, when present, must not be before thisUpdate nor earlier than now - clock skew.

What it leaves to pyhanko-certvalidator (`checks/revocation.py` hands it the DER response):
the signature, that the signer is the issuing CA or a responder certificate with
id-kp-OCSPSigning issued by it, the certID match and the status (good / revoked / unknown).
Every failure here is `OcspUnavailable`: the caller decides whether a CRL may stand in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from idservice.outbound import OutboundClient, OutboundError

__all__ = ["OcspAnswer", "OcspClient", "OcspUnavailable", "check_freshness", "ocsp_url"]

_MAX_RESPONSE_BYTES = 256 * 1024
_NONCE_BYTES = 32  # RFC 8954: 1..32 octets


class OcspUnavailable(Exception):
    """No usable OCSP answer (unreachable, malformed, wrong nonce, stale...)."""


def ocsp_url(cert: x509.Certificate) -> str | None:
    """The first http(s) OCSP responder URL of the certificate's AIA extension, if any."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in aia:
        location = description.access_location
        if (description.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(location, x509.UniformResourceIdentifier)
                and location.value.startswith(("http://", "https://"))):
            return location.value
    return None


def check_freshness(this_update: datetime, next_update: datetime | None, now: datetime, *,
                    skew: timedelta, max_age: timedelta) -> None:
    """Web eID's status update time rules (see the module docstring); raises `OcspUnavailable`."""
    if this_update > now + skew:
        raise OcspUnavailable(f"OCSP thisUpdate {this_update.isoformat()} is in the future")
    if this_update < now - max_age:
        raise OcspUnavailable(f"OCSP thisUpdate {this_update.isoformat()} is too old")
    if next_update is not None:
        if next_update < this_update:
            raise OcspUnavailable("OCSP nextUpdate is before thisUpdate")
        if next_update < now - skew:
            raise OcspUnavailable(f"OCSP nextUpdate {next_update.isoformat()} has passed")


@dataclass(frozen=True)
class OcspAnswer:
    """A fresh response to our request, not yet signature-checked (pyhanko does that)."""

    url: str
    der: bytes
    status: ocsp.OCSPCertStatus


class OcspClient:
    def __init__(self, *, timeout: float, skew: timedelta, max_age: timedelta) -> None:
        self._timeout = timeout
        self._skew = skew
        self._max_age = max_age

    async def query(self, cert: x509.Certificate, issuer: x509.Certificate, url: str,
                    now: datetime) -> OcspAnswer:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        # CertID with SHA-1: what RFC 5019 responders are required to understand.
        request = (ocsp.OCSPRequestBuilder()
                   .add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303
                   .add_extension(x509.OCSPNonce(nonce), critical=False)
                   .build().public_bytes(Encoding.DER))
        der = await self._post(url, request)
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError as exc:
            raise OcspUnavailable("the OCSP response does not parse") from exc
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise OcspUnavailable(f"OCSP responder said {response.response_status.name}")
        try:
            theirs = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound as exc:
            raise OcspUnavailable("the OCSP response carries no nonce") from exc
        if not secrets.compare_digest(theirs, nonce):
            raise OcspUnavailable("the OCSP response nonce differs from ours (replay?)")
        single = self._single_response(response, cert)
        check_freshness(single.this_update_utc, single.next_update_utc, now,
                        skew=self._skew, max_age=self._max_age)
        return OcspAnswer(url, der, single.certificate_status)

    @staticmethod
    def _single_response(response: ocsp.OCSPResponse,
                         cert: x509.Certificate) -> ocsp.OCSPSingleResponse:
        matches = [r for r in response.responses if r.serial_number == cert.serial_number]
        if len(matches) != 1:
            raise OcspUnavailable("the OCSP response does not answer for the certificate")
        return matches[0]

    async def _post(self, url: str, request: bytes) -> bytes:
        client = OutboundClient(timeout=self._timeout, max_connections=1)
        try:
            reply = await client.request(
                "POST", url, content=request, max_bytes=_MAX_RESPONSE_BYTES,
                headers={"Content-Type": "application/ocsp-request",
                         "Accept": "application/ocsp-response"})
        except OutboundError as exc:
            raise OcspUnavailable(f"OCSP responder unreachable or its answer too large "
                                  f"({exc})") from exc
        finally:
            await client.aclose()
        if reply.status != 200:
            raise OcspUnavailable(f"OCSP responder answered HTTP {reply.status}")
        return reply.body

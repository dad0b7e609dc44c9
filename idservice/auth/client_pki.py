"""Revocation of machine-client certificates issued by a client CA (contract 7).

Clients whose certificate was issued by a CA in `IDSERVICE_CLIENT_TRUST_ANCHORS` (root CAs,
and any intermediates in the same files) are checked against that CA's CRLs
(`IDSERVICE_CLIENT_CRLS`) at each token request, and their live tokens stop within one CRL
refresh + one revocation poll once a CRL lists the certificate, as for officers. It is officer
login's machinery, not a second one: the same CRL cache (`auth/crl_cache.py`), RFC 5280 path
validation with pyhanko-certvalidator and its short-lived cache (`auth/checks/pkix.py`), with
the same rules: a CRL past its nextUpdate is no data, and no data means no token (fail closed).

A certificate whose issuer is none of those CAs (a self-signed certificate, the usual case for
civil-status software registered by its key) has no CRL to check; its notAfter still ends
its tokens (`auth/clients.py`, `auth/tokens.py`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import asyncpg
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator.errors import RevokedError

from idservice.auth.checks.base import ValidatorConfig
from idservice.auth.checks.pkix import PathValidator
from idservice.auth.checks.trust import VALIDATION_ERRORS
from idservice.auth.clients import ClientAuthError
from idservice.auth.crl_cache import CrlCache
from idservice.auth.token_revocation import RevocationState
from idservice.auth.validation_cache import ValidationCache
from idservice.auth.validator import load_certificates
from idservice.queries import auth as q
from idservice.settings import Settings

__all__ = ["ClientPki"]


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


class ClientPki:
    """Nothing configured: `check` passes every certificate and nothing runs."""

    def __init__(self, cas: list[x509.Certificate], paths: PathValidator | None,
                 crls: CrlCache | None) -> None:
        self._cas = cas
        self._paths = paths
        self._crls = crls

    @classmethod
    async def start(cls, settings: Settings, pool: asyncpg.Pool,
                    revocation: RevocationState) -> ClientPki:
        cas = load_certificates(settings.client_trust_anchors)
        if not cas:
            return cls([], None, None)
        roots = [c for c in cas if c.issuer == c.subject]
        config = ValidatorConfig(
            origin=settings.origin, trust_anchors=tuple(_asn1(c) for c in roots),
            issuing_cas=tuple(_asn1(c) for c in cas if c not in roots),
            allowed_issuer_sha256=None, required_policies=frozenset(),
            clock_skew=timedelta(seconds=settings.clock_skew_seconds))
        crls = CrlCache(settings.client_crls, cas, settings.crl_refresh_seconds)
        paths = PathValidator(config, crls, ValidationCache(
            timedelta(seconds=settings.validation_cache_seconds)))

        async def push_revoked() -> None:
            revoked = crls.revoked()
            rows = await pool.fetch(q.CLIENT_CERTIFICATES)
            revocation.set_revoked_clients(frozenset(
                r["id"] for r in rows if (r["cert_issuer"], r["cert_serial"]) in revoked))

        await crls.refresh()
        await push_revoked()
        crls.start(push_revoked)
        return cls(cas, paths, crls)

    async def check(self, cert_pem: str | None, now: datetime) -> None:
        """Raise `ClientAuthError` when a client CA's certificate is revoked or its status
        cannot be confirmed by a fresh CRL; return for any other certificate."""
        if self._paths is None or cert_pem is None:
            return
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        if not any(ca.subject == cert.issuer for ca in self._cas):
            return
        der = cert.public_bytes(Encoding.DER)
        try:
            await self._paths.crl_checked(_asn1(cert), hashlib.sha256(der).hexdigest(), now)
        except RevokedError as exc:
            raise ClientAuthError("invalid_client", "the client's certificate is revoked",
                                  verified=True) from exc
        except VALIDATION_ERRORS as exc:
            raise ClientAuthError(
                "invalid_client", "the client's certificate does not validate with a fresh "
                "CRL of its CA (IDSERVICE_CLIENT_CRLS)", verified=True) from exc

    async def stop(self) -> None:
        if self._crls is not None:
            await self._crls.stop()

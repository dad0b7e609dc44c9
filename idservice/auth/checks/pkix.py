"""RFC 5280 path validation with pyhanko-certvalidator, for the trust and revocation checks.

A fresh `ValidationContext` per validation (contexts are mutable). The root is the trust anchor
and the issuing CAs are intermediates: anchoring at an intermediate would break CRL checking.
`PathValidator` runs one validation per login where it can (path + CRLs together) and keeps
successful results a short while (`auth/validation_cache.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from idservice.auth.checks.base import ValidatorConfig
from idservice.auth.validation_cache import ValidationCache

__all__ = ["CrlSource", "PathValidator", "validate_path"]

_NO_REVOCATION = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.NO_CHECK,
    intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK))
# End entity: CRL or OCSP data is required. Issuing CAs: required when they name a source.
_REQUIRE_REVOCATION = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED))
# The same, but the end entity's status must come from OCSP (a CRL does not stand in for it).
_REQUIRE_OCSP = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.OCSP_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED))


async def validate_path(
    config: ValidatorConfig, cert: asn1_x509.Certificate, moment: datetime, *,
    crls: Sequence[bytes] | None, ocsps: Sequence[bytes] = (),
) -> list[asn1_x509.Certificate]:
    """The validated path, anchor first; `crls=None` validates without revocation checks.
    With `ocsps`, the end entity's status must come from one of these OCSP responses (CRLs
    are then used for the CAs only).

    Raises pyhanko's `PathBuildingError` / `PathValidationError` subtypes."""
    context = ValidationContext(
        trust_roots=list(config.trust_anchors),
        other_certs=list(config.issuing_cas),
        crls=list(crls or ()),
        moment=moment,
        allow_fetching=False,
        ocsps=list(ocsps),
        revinfo_policy=(_NO_REVOCATION if crls is None
                        else _REQUIRE_OCSP if ocsps else _REQUIRE_REVOCATION),
        time_tolerance=config.clock_skew,
    )
    validator = CertificateValidator(cert, intermediate_certs=list(config.issuing_cas),
                                     validation_context=context)
    path = await validator.async_validate_path()
    return [c for c in path.iter_certs(include_root=True)
            if isinstance(c, asn1_x509.Certificate)]


class CrlSource(Protocol):
    @property
    def version(self) -> int:
        """Changes whenever `crls()` would return a different set (cache key)."""
        ...

    def crls(self) -> Sequence[bytes]:
        """The DER CRLs currently known (fresh or not: freshness is judged per validation)."""
        ...


class PathValidator:
    """`validate_path` for the trust and revocation checks, with the short-lived cache of
    successful results (`auth/validation_cache.py`).

    `crl_checked` is the one validation a CRL-checked login needs (path + CRLs); `trusted` is
    the path alone (OCSP-checked logins need the issuer before asking the responder, and a
    failed `crl_checked` is classified with it: trust failures come first)."""

    def __init__(self, config: ValidatorConfig, crls: CrlSource,
                 cache: ValidationCache | None = None) -> None:
        self.config = config
        self.crls = crls
        self.cache = cache
        digest = hashlib.sha256()
        for cert in (*config.trust_anchors, *config.issuing_cas):
            digest.update(hashlib.sha256(cert.dump()).digest())
        digest.update(str(config.clock_skew.total_seconds()).encode())
        self._config_id = digest.hexdigest()
        self._bounds_version = -1
        self._next_updates: dict[str, list[datetime]] = {}

    async def trusted(self, cert: asn1_x509.Certificate, cert_sha256: str,
                      moment: datetime) -> list[asn1_x509.Certificate]:
        key = ("trust", cert_sha256, self._config_id, 0)
        if self.cache is not None and (hit := self.cache.get(key, moment)) is not None:
            return list(hit)
        path = await validate_path(self.config, cert, moment, crls=None)
        if self.cache is not None:
            self.cache.put(key, path, moment)
        return path

    async def crl_checked(self, cert: asn1_x509.Certificate, cert_sha256: str,
                          moment: datetime) -> list[asn1_x509.Certificate]:
        version, crls = self.crls.version, list(self.crls.crls())  # one consistent snapshot
        key = ("crl", cert_sha256, self._config_id, version)
        if self.cache is not None and (hit := self.cache.get(key, moment)) is not None:
            return list(hit)
        path = await validate_path(self.config, cert, moment, crls=crls)
        if self.cache is not None:
            self.cache.put(key, path, moment, self._crl_bounds(version, crls, path))
        return path

    async def ocsp_checked(self, cert: asn1_x509.Certificate, moment: datetime,
                           ocsp_der: bytes) -> list[asn1_x509.Certificate]:
        """Never cached: each answer carries the nonce of one request."""
        return await validate_path(self.config, cert, moment, crls=self.crls.crls(),
                                   ocsps=[ocsp_der])

    def _crl_bounds(self, version: int, crls: Sequence[bytes],
                    path: Sequence[asn1_x509.Certificate]) -> list[datetime]:
        """The nextUpdate of every CRL issued by a CA of the path (none if a CRL has none)."""
        if version != self._bounds_version:
            by_issuer: dict[str, list[datetime]] = {}
            for der in crls:
                try:
                    tbs = asn1_crl.CertificateList.load(der)["tbs_cert_list"]
                    issuer, next_update = tbs["issuer"].hashable, tbs["next_update"].native
                except (ValueError, TypeError, KeyError):
                    continue
                if next_update is not None:
                    by_issuer.setdefault(issuer, []).append(next_update)
            self._bounds_version, self._next_updates = version, by_issuer
        bounds = [t for ca in path[:-1] for t in self._next_updates.get(ca.subject.hashable, ())]
        if not bounds:  # the issuer's CRL could not be matched by name: be conservative
            bounds = [t for ts in self._next_updates.values() for t in ts]
        return bounds

"""RFC 5280 path validation with pyhanko-certvalidator, for the trust and revocation checks.

A fresh `ValidationContext` per validation (contexts are mutable). The root is the trust anchor
and the issuing CAs are intermediates: anchoring at an intermediate would break CRL checking.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from idservice.auth.checks.base import ValidatorConfig

__all__ = ["validate_path"]

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

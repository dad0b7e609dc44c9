"""A test PKI for officer login, built with `cryptography` in the test (never binary fixtures).

Root CA -> issuing CA (allow-listed) -> officer certificates of every kind the validator must
tell apart; a certificate the root issued directly (a valid path, but its issuer is not on the
allow-list); a foreign root with its own issuing CA; CRLs of the issuing CA fresh and stale, and
of the root. The builder itself is `idservice.devpki` (dev mode's demo PKI uses it too); this
module names the cases. Modelled on sigstore's build-testcases.py: one builder, every case named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from idservice.devpki import DAY as _DAY
from idservice.devpki import DEFAULT_EKU, DEMO_POLICY_OID, Ca, new_ca, officer_certificate, pki_name

POLICY_OID = DEMO_POLICY_OID
OTHER_POLICY_OID = "1.3.6.1.4.1.55555.9.9"

CertKind = Literal["good", "expired", "not_yet_valid", "revoked", "wrong_eku",
                   "no_digital_signature", "missing_policy", "no_eku", "untrusted",
                   "root_issued"]

__all__ = ["OTHER_POLICY_OID", "POLICY_OID", "Ca", "CertKind", "OfficerPki"]


@dataclass
class OfficerPki:
    """The CAs, and a method to issue officer certificates of every kind."""

    now: datetime
    root: Ca
    issuing: Ca
    foreign_root: Ca
    foreign_issuing: Ca

    @classmethod
    def build(cls, now: datetime) -> OfficerPki:
        root = new_ca("Test Root CA", None, now, "http://127.0.0.1:9/root.crl")
        issuing = new_ca("Test Officer CA", root, now, "http://127.0.0.1:9/officer.crl")
        foreign_root = new_ca("Foreign Root CA", None, now, "http://127.0.0.1:9/foreign-root.crl")
        foreign = new_ca("Foreign Officer CA", foreign_root, now, "http://127.0.0.1:9/foreign.crl")
        return cls(now, root, issuing, foreign_root, foreign)

    def officer_cert(self, public_key: ec.EllipticCurvePublicKey | object, name: str,
                     kind: CertKind = "good") -> x509.Certificate:
        issuer = {"untrusted": self.foreign_issuing,
                  "root_issued": self.root}.get(kind, self.issuing)
        start, end = self.now - _DAY, self.now + 365 * _DAY
        if kind == "expired":
            start, end = self.now - 400 * _DAY, self.now - 2 * _DAY
        elif kind == "not_yet_valid":
            start, end = self.now + 2 * _DAY, self.now + 400 * _DAY
        eku = {"wrong_eku": (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
               "no_eku": None}.get(kind, DEFAULT_EKU)
        cert = officer_certificate(
            issuer, public_key, pki_name(name),  # type: ignore[arg-type]
            not_before=start, not_after=end, digital_signature=kind != "no_digital_signature",
            eku=eku, policies=(OTHER_POLICY_OID if kind == "missing_policy" else POLICY_OID,))
        serial = cert.serial_number
        if kind == "revoked":
            issuer.revoked.append(serial)
        return cert

    def write(self, directory: Path, *, stale: bool = False) -> dict[str, list[str]]:
        """Write anchors, issuing CAs and CRLs; return the settings that point at them.

        CRLs are written at every call, so certificates revoked since are listed."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "root.pem").write_bytes(self.root.pem)
        (directory / "issuing.pem").write_bytes(self.issuing.pem)
        (directory / "officer.crl").write_bytes(
            self.issuing.crl(self.now, stale=stale).public_bytes(Encoding.DER))
        (directory / "root.crl").write_bytes(self.root.crl(self.now).public_bytes(Encoding.PEM))
        return {
            "trust_anchors": [str(directory / "root.pem")],
            "issuing_cas": [str(directory / "issuing.pem")],
            "crls": [str(directory / "officer.crl"), str(directory / "root.crl")],
        }

"""Officer PKI for dev mode and tests: root CA -> issuing CA -> officer certificates, and CRLs.

The builder (`new_ca`, `officer_certificate`, `Ca.crl`) is the one the tests use too
(`tests/support/officer_pki.py` names its cases on top of it). `ensure_demo_pki` is what
`idservice dev` runs at every start: under `<data dir>/demo/` it creates once, then reuses,
a root CA and an issuing CA (keys in files, mode 0600: demo only), and SoftHSM tokens
`officer1`, `auditor1` and `revoked1` in the dev SoftHSM configuration, each with an EC P-256
key generated on the token (`pkcs11-tool --keypairgen`) and a certificate written next to it.
The user PINs are in `<data dir>/demo/<label>.pin` (0600). The CRLs are re-signed at every
start (they list `revoked1`'s certificate), so they are never stale in dev.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsm.pkcs11_tool import ensure_ec_key, write_certificate
from hsm.softhsm import (
    SoftHsmToken,
    ensure_softhsm_token,
    file_lock,
    generate_so_pin,
    generate_user_pin,
)

__all__ = [
    "DEFAULT_EKU",
    "DEMO_POLICY_OID",
    "Ca",
    "DemoOperator",
    "DemoPki",
    "ensure_demo_pki",
    "new_ca",
    "officer_certificate",
    "pki_name",
]

DAY = timedelta(days=1)
DEMO_POLICY_OID = "1.3.6.1.4.1.55555.1.1"
DEFAULT_EKU = (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION)
DEMO_CRL_LIFETIME = 30 * DAY


def pki_name(cn: str, organization: str = "idservice test PKI") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False,
               ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=content_commitment,
        key_encipherment=False, data_encipherment=False, key_agreement=False,
        key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        [x509.UniformResourceIdentifier(url)], None, None, None)])


@dataclass
class Ca:
    """A CA: key, certificate, the URL its CRL is published at, and the serials it revoked."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    crl_url: str
    revoked: list[int] = field(default_factory=list)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)

    def crl(self, now: datetime, *, stale: bool = False,
            lifetime: timedelta = DAY) -> x509.CertificateRevocationList:
        """A CRL listing `revoked`: issued an hour ago and valid for `lifetime`, or `stale`
        (issued an hour ago too, but past its nextUpdate since half an hour: a CA that stopped
        publishing). Both have the same thisUpdate and CRL number, so a cache that refuses
        older CRLs (`auth/crl_cache.py`) takes either in place of the other."""
        this_update = now - timedelta(hours=1)
        next_update = now - timedelta(minutes=30) if stale else now + lifetime
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.cert.subject)
                   .last_update(this_update).next_update(next_update)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), critical=False)
                   .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False))
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(this_update - timedelta(hours=1)).build())
        return builder.sign(self.key, hashes.SHA256())


def new_ca(name: str, issuer: Ca | None, now: datetime, crl_url: str, *,
           organization: str = "idservice test PKI",
           key: ec.EllipticCurvePrivateKey | None = None) -> Ca:
    """A root CA (`issuer` None) or an issuing CA (path length 0, CRL DP = the issuer's CRL)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    signer_key = issuer.key if issuer else key
    builder = (x509.CertificateBuilder()
               .subject_name(pki_name(name, organization))
               .issuer_name(issuer.cert.subject if issuer else pki_name(name, organization))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - 30 * DAY).not_valid_after(now + 3650 * DAY)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None
                                                    else 0), critical=True)
               .add_extension(_key_usage(ca=True), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   signer_key.public_key()), critical=False))
    if issuer is not None:
        builder = builder.add_extension(_crl_dp(issuer.crl_url), critical=False)
    return Ca(name, key, builder.sign(signer_key, hashes.SHA256()), crl_url)


def officer_certificate(
    issuer: Ca, public_key: CertificatePublicKeyTypes, name: x509.Name, *,
    not_before: datetime, not_after: datetime, digital_signature: bool = True,
    eku: Sequence[x509.ObjectIdentifier] | None = DEFAULT_EKU,
    policies: Sequence[str] = (DEMO_POLICY_OID,),
) -> x509.Certificate:
    """An officer's authentication certificate as an ID-card CA issues it: keyUsage
    digitalSignature (else nonRepudiation), EKU (None: no extension), CRL DP, policies."""
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(issuer.cert.subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_key_usage(digital_signature=digital_signature,
                                         content_commitment=not digital_signature),
                              critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer.key.public_key()), critical=False)
               .add_extension(_crl_dp(issuer.crl_url), critical=False))
    if policies:
        builder = builder.add_extension(x509.CertificatePolicies([
            x509.PolicyInformation(x509.ObjectIdentifier(oid), None) for oid in policies]),
            critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


# --- dev mode -----------------------------------------------------------------------------

_DEMO_ORG = "idservice demo PKI"


@dataclass(frozen=True)
class DemoOperator:
    """A demo USB token and the operator its certificate is registered as."""

    id: str  # also the token label
    name: str
    roles: tuple[str, ...]
    jurisdiction: str
    revoked: bool
    pin_path: Path
    cert_path: Path


@dataclass(frozen=True)
class DemoPki:
    directory: Path
    module_path: str
    softhsm_conf: Path
    root_path: Path
    issuing_path: Path
    crl_paths: tuple[Path, ...]
    operators: tuple[DemoOperator, ...]

    def settings(self) -> dict[str, list[str]]:
        """`trust_anchors`, `issuing_cas`, `crls` pointing at the demo files."""
        return {"trust_anchors": [str(self.root_path)], "issuing_cas": [str(self.issuing_path)],
                "crls": [str(p) for p in self.crl_paths]}


_OPERATORS = (
    ("officer1", "Demo Officer (Binh Dinh, 052)", ("officer",), "052", False),
    ("auditor1", "Demo Auditor", ("auditor",), "*", False),
    ("revoked1", "Demo Officer, revoked certificate (052)", ("officer",), "052", True),
)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_bytes(data)
    tmp.replace(path)


def _ensure_ca(directory: Path, stem: str, name: str, issuer: Ca | None, now: datetime,
               crl_path: Path) -> Ca:
    key_path, cert_path = directory / f"{stem}.key.pem", directory / f"{stem}.pem"
    crl_url = crl_path.as_uri()
    if key_path.exists() and cert_path.exists():
        key = load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return Ca(name, key, x509.load_pem_x509_certificate(cert_path.read_bytes()), crl_url)
    ca = new_ca(name, issuer, now, crl_url, organization=_DEMO_ORG)
    _write_private(key_path, ca.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                  NoEncryption()))
    _write_public(cert_path, ca.pem)
    return ca


def _ensure_token(softhsm_dir: Path, label: str, pin_path: Path) -> SoftHsmToken:
    if not pin_path.exists():
        _write_private(pin_path, (generate_user_pin() + "\n").encode())
    pin = pin_path.read_text("utf-8").strip()
    # An existing token is reused as is; its SO PIN is never needed again.
    return ensure_softhsm_token(softhsm_dir, label, pin, generate_so_pin())


def ensure_demo_pki(data_dir: Path, *, softhsm_dir: Path | None = None,
                    now: datetime | None = None) -> DemoPki:
    """Create (first run) or reuse the demo PKI and tokens; re-sign the CRLs (every run).

    The tokens go into the SoftHSM configuration `softhsm_dir` (default `<data dir>/softhsm`,
    the one dev mode's service token lives in: one configuration per process)."""
    now = now or datetime.now(UTC)
    data_dir = data_dir.resolve()
    directory = data_dir / "demo"
    pki_dir = directory / "pki"
    pki_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    softhsm_dir = (softhsm_dir or data_dir / "softhsm").resolve()
    root_crl, officer_crl = pki_dir / "root.crl", pki_dir / "officer-ca.crl"
    with file_lock(pki_dir / ".lock"):
        root = _ensure_ca(pki_dir, "root", "idservice Demo Root CA", None, now, root_crl)
        issuing = _ensure_ca(pki_dir, "officer-ca", "idservice Demo Officer CA", root, now,
                             officer_crl)
        operators: list[DemoOperator] = []
        module_path = conf = None
        for label, name, roles, jurisdiction, revoked in _OPERATORS:
            op = DemoOperator(label, name, roles, jurisdiction, revoked,
                              directory / f"{label}.pin", directory / f"{label}.cert.pem")
            token = _ensure_token(softhsm_dir, label, op.pin_path)
            module_path, conf = token.module_path, token.conf_path
            if op.cert_path.exists():
                cert = x509.load_pem_x509_certificate(op.cert_path.read_bytes())
            else:
                public_key = ensure_ec_key(token)  # generated on the token
                cert = officer_certificate(issuing, public_key, pki_name(name, _DEMO_ORG),
                                           not_before=now - DAY, not_after=now + 3650 * DAY)
                write_certificate(token, cert, replace=True)
                _write_public(op.cert_path, cert.public_bytes(Encoding.PEM))
            if revoked:
                issuing.revoked.append(cert.serial_number)
            operators.append(op)
        _write_public(root_crl, root.crl(now, lifetime=DEMO_CRL_LIFETIME)
                      .public_bytes(Encoding.DER))
        _write_public(officer_crl, issuing.crl(now, lifetime=DEMO_CRL_LIFETIME)
                      .public_bytes(Encoding.DER))
    assert module_path is not None and conf is not None
    return DemoPki(directory, module_path, conf, pki_dir / "root.pem",
                   pki_dir / "officer-ca.pem", (officer_crl, root_crl), tuple(operators))

"""Demo material for `idservice dev`: a registrar client key and certificate for province 052,
and the wiring of the demo officer PKI (`idservice/devpki.py`): its operators and settings.

Created once under `<data dir>/demo/` and reused; never used outside dev mode.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID

from idservice.auth.operators import RegistryError, add_operator
from idservice.auth.principal import Actor
from idservice.db.types import Conn
from idservice.devpki import DemoPki
from idservice.settings import Settings

__all__ = ["DemoClient", "demo_pki_settings", "ensure_demo_client", "register_demo_operators",
           "self_signed_client_cert"]

DEMO_CLIENT_ID = "demo-registrar-052"


@dataclass(frozen=True)
class DemoClient:
    id: str
    key_path: Path
    cert_path: Path
    jurisdiction: str = "052"


def self_signed_client_cert(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


def ensure_demo_client(data_dir: Path) -> DemoClient:
    directory = data_dir / "demo"
    directory.mkdir(parents=True, exist_ok=True)
    client = DemoClient(DEMO_CLIENT_ID, directory / "registrar-052.key.pem",
                        directory / "registrar-052.cert.pem")
    if not client.key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        fd = os.open(client.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        cert = self_signed_client_cert(key, "Demo civil-status software, Binh Dinh (052)")
        client.cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    return client


def demo_pki_settings(cfg: Settings, pki: DemoPki) -> dict[str, list[str]]:
    """Settings that point officer login at the demo PKI where nothing is configured
    (contract 6.1: trust anchors "dev: demo root", CRLs "dev: demo CRL"). The demo issuing CA
    is the allow-list only when the demo root is the anchor."""
    files = pki.settings()
    update: dict[str, list[str]] = {}
    if not cfg.trust_anchors:
        update["trust_anchors"] = files["trust_anchors"]
        if not cfg.issuing_cas:
            update["issuing_cas"] = files["issuing_cas"]
    if not cfg.crls:
        update["crls"] = files["crls"]
    return update


async def register_demo_operators(conn: Conn, pki: DemoPki, by: Actor) -> None:
    """Register each demo token's certificate (id = token label); kept if already there."""
    for op in pki.operators:
        with contextlib.suppress(RegistryError):  # registered on an earlier run
            await add_operator(conn, cert_pem=op.cert_path.read_bytes(), name=op.name,
                               roles=list(op.roles), jurisdiction=op.jurisdiction,
                               operator_id=op.id, by=by)

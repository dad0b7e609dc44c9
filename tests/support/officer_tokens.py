"""Officer USB tokens as SoftHSM tokens, provisioned with OpenSC's pkcs11-tool (an independent
PKCS#11 client): a key pair generated on the token, and the certificate written next to it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from hsm.pkcs11_tool import KEY_ID, ensure_ec_key, pkcs11_tool
from hsm.pkcs11_tool import write_certificate as write_token_certificate
from hsm.softhsm import SoftHsmToken

__all__ = ["KEY_ID", "OfficerToken", "RsaOfficerToken", "pkcs11_tool", "provision",
           "provision_rsa", "sign_with_pkcs11_tool", "write_certificate"]


@dataclass(frozen=True)
class OfficerToken:
    token: SoftHsmToken
    public_key: ec.EllipticCurvePublicKey


def provision(token: SoftHsmToken, workdir: Path) -> OfficerToken:
    """Generate a P-256 key on the token (CKA_ID 01) and return its public key."""
    workdir.mkdir(parents=True, exist_ok=True)
    return OfficerToken(token, ensure_ec_key(token))


@dataclass(frozen=True)
class RsaOfficerToken:
    token: SoftHsmToken
    public_key: rsa.RSAPublicKey


def provision_rsa(token: SoftHsmToken, workdir: Path) -> RsaOfficerToken:
    """Generate an RSA-2048 key on the token (CKA_ID 01) and return its public key."""
    workdir.mkdir(parents=True, exist_ok=True)
    pkcs11_tool(token, "--keypairgen", "--key-type", "rsa:2048", "--id", KEY_ID,
                "--label", "authkey-rsa")
    out = workdir / f"{token.token_label}-pub.der"
    pkcs11_tool(token, "--read-object", "--type", "pubkey", "--id", KEY_ID,
                "--output-file", str(out))
    key = load_der_public_key(out.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return RsaOfficerToken(token, key)


def write_certificate(officer: OfficerToken | RsaOfficerToken, cert: x509.Certificate,
                      workdir: Path) -> None:
    write_token_certificate(officer.token, cert)


def sign_with_pkcs11_tool(officer: OfficerToken, data: bytes, workdir: Path) -> bytes:
    """ES256 the way tokens.md describes: hash on the host, CKM_ECDSA gives raw r||s."""
    digest = workdir / "digest.bin"
    signature = workdir / "signature.bin"
    digest.write_bytes(hashlib.sha256(data).digest())
    pkcs11_tool(officer.token, "--sign", "--mechanism", "ECDSA", "--id", KEY_ID,
                "--input-file", str(digest), "--output-file", str(signature))
    return signature.read_bytes()

"""Provision a PKCS#11 token with OpenSC's `pkcs11-tool` (dev mode and tests; never production).

An officer's USB token is modelled as a SoftHSM token: the key pair is generated **on** the
token (`--keypairgen`), only its public key is read back, and the certificate is written next to
it with the same CKA_ID, as a card-management system would. `pkcs11-tool` takes the PIN only
as an argument, so it goes into the argv of a short-lived child process and is scrubbed from
any error output (as `hsm.softhsm` does for `softhsm2-util`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key

from hsm.errors import HsmError
from hsm.softhsm import SoftHsmToken

__all__ = ["KEY_ID", "ensure_ec_key", "pkcs11_tool", "write_certificate"]

KEY_ID = "01"
_HINT = "install OpenSC (Debian/Ubuntu: apt-get install opensc)"


def pkcs11_tool(token: SoftHsmToken, *args: str, check: bool = True) -> bytes:
    """Run `pkcs11-tool` logged in to the token; returns stdout (raises HsmError on failure)."""
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        raise HsmError(f"pkcs11-tool not found; {_HINT}")
    result = subprocess.run(  # noqa: S603 - fixed tool path, no shell
        [tool, "--module", token.module_path, "--token-label", token.token_label, "--login",
         "--pin", token.user_pin, *args], capture_output=True, check=False, timeout=60)
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).decode(errors="replace").strip()
        output = output.replace(token.user_pin, "***")
        raise HsmError(f"pkcs11-tool {args[0] if args else ''} failed "
                       f"(exit {result.returncode}): {output}")
    return result.stdout


def _read_public_key(token: SoftHsmToken, key_id: str) -> ec.EllipticCurvePublicKey | None:
    with tempfile.TemporaryDirectory(prefix="pkcs11-tool-") as tmp:
        out = Path(tmp) / "pub.der"
        pkcs11_tool(token, "--read-object", "--type", "pubkey", "--id", key_id,
                    "--output-file", str(out), check=False)
        if not out.exists() or not out.stat().st_size:
            return None
        key = load_der_public_key(out.read_bytes())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise HsmError(f"key {key_id} on token {token.token_label!r} is not an EC key")
    return key


def ensure_ec_key(token: SoftHsmToken, *, key_id: str = KEY_ID,
                  label: str = "authkey") -> ec.EllipticCurvePublicKey:
    """The public key of the P-256 key pair `key_id`, generated on the token if missing."""
    key = _read_public_key(token, key_id)
    if key is None:
        pkcs11_tool(token, "--keypairgen", "--key-type", "EC:prime256v1", "--id", key_id,
                    "--label", label)
        key = _read_public_key(token, key_id)
    if key is None:
        raise HsmError(f"no public key {key_id} on token {token.token_label!r} after keygen")
    return key


def write_certificate(token: SoftHsmToken, cert: x509.Certificate, *, key_id: str = KEY_ID,
                      label: str = "authcert", replace: bool = False) -> None:
    """Store the certificate on the token under the key's CKA_ID (`replace`: drop old ones)."""
    for _ in range(8 if replace else 0):  # one certificate per delete
        if not _has_certificate(token, key_id):
            break
        pkcs11_tool(token, "--delete-object", "--type", "cert", "--id", key_id)
    with tempfile.TemporaryDirectory(prefix="pkcs11-tool-") as tmp:
        path = Path(tmp) / "cert.der"
        path.write_bytes(cert.public_bytes(Encoding.DER))
        pkcs11_tool(token, "--write-object", str(path), "--type", "cert", "--id", key_id,
                    "--label", label)


def _has_certificate(token: SoftHsmToken, key_id: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="pkcs11-tool-") as tmp:
        out = Path(tmp) / "cert.der"
        pkcs11_tool(token, "--read-object", "--type", "cert", "--id", key_id,
                    "--output-file", str(out), check=False)
        return out.exists() and out.stat().st_size > 0

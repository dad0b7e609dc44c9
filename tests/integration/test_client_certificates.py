"""Machine-client certificates (contract 7; issue 9 item 5): `clients add` keeps the whole
certificate and refuses an expired one; no token outlives the certificate and live tokens stop
once it has expired; a client whose certificate a configured client CA issued is checked
against that CA's CRLs, at each token request and for live tokens.

Real parts: the `clients add` CLI, certificates and CRLs made here, servers over HTTP on the
session database (a second one configured with IDSERVICE_CLIENT_TRUST_ANCHORS / _CRLS).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.administration import admin_actor
from idservice.auth.assertion import client_token_form
from idservice.auth.client_registry import add_client
from idservice.db.pool import connect
from idservice.demo import self_signed_client_cert
from idservice.devpki import Ca, new_ca, officer_certificate, pki_name
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.fixtures_db import cli_env
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.server import ServerThread, free_port

IDSERVICE = [sys.executable, "-m", "idservice.cli"]


def _register(database: DatabaseTarget, client_id: str, cert: x509.Certificate) -> None:
    async def main() -> None:
        assert database.admin_url is not None
        conn = await connect(database.admin_url)
        try:
            await add_client(conn, client_id=client_id, cert_pem=cert.public_bytes(Encoding.PEM),
                             roles=["registrar"], jurisdiction="052", by=admin_actor())
        finally:
            await conn.close()

    asyncio.run(main())


def _token(server: ServerThread, client_id: str, key: ec.EllipticCurvePrivateKey,
           settings: Settings) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/auth/client-token",
                      data=client_token_form(client_id, key, settings.client_token_url))


def _status(server: ServerThread, token: str) -> int:
    """403 while the token is accepted (a registrar may not read checkpoints), 401 after."""
    with server.client(token) as client:
        return client.get("/v1/audit/checkpoint").status_code


def _wait_for_401(server: ServerThread, token: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (status := _status(server, token)) != 401:
        assert status == 403, status
        assert time.monotonic() < deadline, f"token still accepted after {seconds} s"
        time.sleep(0.1)


def _short_lived(key: ec.EllipticCurvePrivateKey, seconds: int) -> x509.Certificate:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder()
            .subject_name(pki_name("short-lived client"))
            .issuer_name(pki_name("short-lived client"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(seconds=seconds))
            .sign(key, hashes.SHA256()))


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IDSERVICE, *args], env={**os.environ, **cli_env(settings)},
                          capture_output=True, text=True, timeout=120, check=False)


def test_clients_add_keeps_the_whole_certificate(settings: Settings, server: ServerThread,
                                                 service_db: Callable[..., list],
                                                 tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_client_cert(key, "Phần mềm hộ tịch")
    path = tmp_path / "client.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    client_id = f"cert-{secrets.token_hex(4)}"
    added = _cli(settings, "clients", "add", "--id", client_id, "--cert", str(path))
    assert added.returncode == 0, added.stderr
    (row,) = service_db("SELECT cert_pem, cert_not_after, cert_issuer, cert_serial FROM client "
                        "WHERE id = $1", client_id)
    assert x509.load_pem_x509_certificate(row["cert_pem"].encode()) == cert
    assert row["cert_not_after"] == cert.not_valid_after_utc
    assert (row["cert_issuer"], row["cert_serial"]) == (cert.issuer.rfc4514_string(),
                                                        format(cert.serial_number, "x"))


def test_expired_certificate_refused_at_add(settings: Settings, server: ServerThread,
                                            service_db: Callable[..., list],
                                            tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "expired.pem"
    path.write_bytes(_short_lived(key, -60).public_bytes(Encoding.PEM))
    client_id = f"expired-{secrets.token_hex(4)}"
    added = _cli(settings, "clients", "add", "--id", client_id, "--cert", str(path))
    assert added.returncode == 1
    assert "expired" in added.stderr and "register" in added.stderr
    assert service_db("SELECT 1 FROM client WHERE id = $1", client_id) == []


def test_tokens_end_at_certificate_not_after(server: ServerThread, database: DatabaseTarget,
                                             settings: Settings) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _short_lived(key, 8)
    client_id = f"short-{secrets.token_hex(4)}"
    _register(database, client_id, cert)
    response = _token(server, client_id, key, settings)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    not_after = int(cert.not_valid_after_utc.timestamp())
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == not_after
    assert response.json()["expires_in"] <= 8
    assert _status(server, token) == 403
    time.sleep(max(0.0, not_after - time.time()))
    _wait_for_401(server, token, 60)  # contract: within 60 s after notAfter
    assert time.time() - not_after < 60
    refused = _token(server, client_id, key, settings)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


# --- clients of a client CA, with CRLs -------------------------------------------------------


@dataclass
class ClientCaEnv:
    server: ServerThread
    ca: Ca
    crl_path: Path
    settings: Settings

    def publish(self, *, stale: bool = False) -> None:
        crl = self.ca.crl(datetime.now(UTC), stale=stale)
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(Encoding.DER))
        tmp.replace(self.crl_path)
        time.sleep(0.8)  # the CRL cache re-reads it every 0.2 s

    def client(self, database: DatabaseTarget) -> tuple[str, ec.EllipticCurvePrivateKey,
                                                        x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = officer_certificate(self.ca, key.public_key(), pki_name("Phần mềm hộ tịch"),
                                   not_before=now - timedelta(days=1),
                                   not_after=now + timedelta(days=365), policies=())
        client_id = f"ca-client-{secrets.token_hex(4)}"
        _register(database, client_id, cert)
        return client_id, key, cert


@pytest.fixture(scope="module")
def client_ca(settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
              softhsm_token_factory: Callable, server: ServerThread,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientCaEnv]:
    directory = tmp_path_factory.mktemp("client-ca")
    ca = new_ca("Test Client CA", None, datetime.now(UTC), "http://127.0.0.1:9/client-ca.crl")
    (directory / "ca.pem").write_bytes(ca.pem)
    crl_path = directory / "ca.crl"
    crl_path.write_bytes(ca.crl(datetime.now(UTC)).public_bytes(Encoding.DER))
    token = softhsm_token_factory("client-ca-svc")
    port = free_port()
    ca_settings = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "client-ca-es256",
        "origin": f"http://127.0.0.1:{port}", "crl_refresh_seconds": 0.2,
        "client_trust_anchors": [str(directory / "ca.pem")], "client_crls": [str(crl_path)]})
    thread = ServerThread(create_app(ca_settings, database=database), port).start()
    yield ClientCaEnv(thread, ca, crl_path, ca_settings)
    thread.stop()


def test_client_ca_certificate_revoked_by_crl_stops_tokens_and_logins(
        client_ca: ClientCaEnv, database: DatabaseTarget) -> None:
    client_id, key, cert = client_ca.client(database)
    other_id, other_key, _ = client_ca.client(database)
    first = _token(client_ca.server, client_id, key, client_ca.settings)
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    assert _status(client_ca.server, token) == 403
    client_ca.ca.revoked.append(cert.serial_number)
    client_ca.publish()
    _wait_for_401(client_ca.server, token, 10)
    refused = _token(client_ca.server, client_id, key, client_ca.settings)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert "revoked" in refused.json()["error_description"]
    # the CA's other clients are not affected
    assert _token(client_ca.server, other_id, other_key, client_ca.settings).status_code == 200


def test_client_ca_stale_crl_refuses_tokens(client_ca: ClientCaEnv,
                                            database: DatabaseTarget) -> None:
    """Fail closed: with no fresh CRL the status of a CA-issued certificate is unknown."""
    client_id, key, _ = client_ca.client(database)
    self_signed = ec.generate_private_key(ec.SECP256R1())
    own_id = f"own-{secrets.token_hex(4)}"
    _register(database, own_id, self_signed_client_cert(self_signed, "own key"))
    client_ca.publish(stale=True)
    try:
        refused = _token(client_ca.server, client_id, key, client_ca.settings)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert "fresh CRL" in refused.json()["error_description"]
        # a self-signed client has no CA and no CRL to wait for
        assert _token(client_ca.server, own_id, self_signed,
                      client_ca.settings).status_code == 200
    finally:
        client_ca.publish()
    assert _token(client_ca.server, client_id, key, client_ca.settings).status_code == 200

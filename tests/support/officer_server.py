"""A second server for officer-login tests: the session database, its own SoftHSM service
token, and settings pointing at the test PKI written by `officer_pki.py`."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import SecretStr

from hsm.client import sign_with_token
from idservice.app import create_app
from idservice.auth.administration import admin_actor
from idservice.auth.operators import add_operator
from idservice.auth.webeid import auth_token, signed_data
from idservice.db.pool import connect
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.officer_pki import POLICY_OID, CertKind, OfficerPki
from tests.support.officer_tokens import OfficerToken, provision, write_certificate
from tests.support.server import ServerThread, free_port


@dataclass
class OfficerLoginEnv:
    server: ServerThread
    pki: OfficerPki
    pki_dir: Path
    officer: OfficerToken
    database: DatabaseTarget
    certs: dict[str, x509.Certificate] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return self.server.base_url

    def cert(self, kind: CertKind, name: str | None = None) -> x509.Certificate:
        """A certificate for the token's key (not yet in the CRLs if revoked: see `publish`)."""
        return self.pki.officer_cert(self.officer.public_key,
                                     name or f"officer {kind} {secrets.token_hex(3)}", kind)

    def publish_crls(self, *, stale: bool = False) -> None:
        self.pki.write(self.pki_dir, stale=stale)

    def register(self, cert: x509.Certificate, *, roles: tuple[str, ...] = ("officer",),
                 jurisdiction: str = "052") -> str:
        async def main() -> str:
            assert self.database.admin_url is not None
            conn = await connect(self.database.admin_url)
            try:
                return await add_operator(
                    conn, cert_pem=cert.public_bytes(Encoding.PEM), name="Test Officer",
                    roles=list(roles), jurisdiction=jurisdiction, by=admin_actor())
            finally:
                await conn.close()

        return asyncio.run(main())

    def challenge(self) -> str:
        response = httpx.post(f"{self.origin}/v1/auth/challenge")
        assert response.status_code == 200, response.text
        nonce: str = response.json()["nonce"]
        return nonce

    def signed_token(self, cert: x509.Certificate, nonce: str, *,
                     origin: str | None = None) -> dict[str, Any]:
        """Sign on the SoftHSM token with our client, presenting `cert` as the certificate."""
        signed = sign_with_token(
            self.officer.token.module_path, self.officer.token.token_label,
            self.officer.token.user_pin,
            lambda alg: signed_data(origin or self.origin, nonce, alg))
        return auth_token(cert.public_bytes(Encoding.DER), signed.algorithm, signed.signature)

    def post_token(self, nonce: str, token: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.origin}/v1/auth/token",
                          json={"nonce": nonce, "auth_token": token}, timeout=60)

    def login(self, cert: x509.Certificate) -> httpx.Response:
        nonce = self.challenge()
        return self.post_token(nonce, self.signed_token(cert, nonce))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def start_officer_env(settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
                      softhsm_token_factory: Callable, workdir: Path, *, officer_token: str,
                      service_token: str, key_label: str, **overrides: Any) -> OfficerLoginEnv:
    """A server trusting a fresh test PKI, on its own SoftHSM token, with an officer token
    holding a certificate of that PKI; `overrides` are extra settings for the test at hand."""
    pki = OfficerPki.build(datetime.now(UTC))
    officer = provision(softhsm_token_factory(officer_token), workdir)
    write_certificate(officer, pki.officer_cert(officer.public_key, "token holder"), workdir)
    files = pki.write(workdir)
    service = softhsm_token_factory(service_token)
    port = free_port()
    env_settings = settings.model_copy(update={
        "pkcs11_module": service.module_path, "pkcs11_token_label": service.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": key_label,
        "origin": f"http://127.0.0.1:{port}", "cert_policies": [POLICY_OID],
        "crl_refresh_seconds": 0.2, **files, **overrides})
    thread = ServerThread(create_app(env_settings, database=database), port).start()
    return OfficerLoginEnv(thread, pki, workdir, officer, database)


@pytest.fixture(scope="module", name="officer_env")
def officer_env_fixture(settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
                softhsm_token_factory: Callable, server: ServerThread,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfficerLoginEnv]:
    env = start_officer_env(
        settings, database, softhsm_dir, softhsm_token_factory,
        tmp_path_factory.mktemp("officer-pki"),
        officer_token=f"officer-usb-{secrets.token_hex(3)}", service_token="officer-login-svc",
        key_label="officer-login-es256", clock_skew_seconds=30, metrics_refresh_seconds=0.2,
        metrics_bucket_refresh_seconds=0.2)
    yield env
    env.server.stop()

"""Fault test: the CRL source goes away (its HTTP server stops), then comes back.

The service reads the issuing CA's CRL from an http URL served by a small HTTP server on
loopback, refreshing every 0.2 s; a source that fails keeps its last good CRL. While that CRL
is fresh, logins go on; once it is past its nextUpdate (a short-lived CRL, clock skew 0) a
login is refused `revocation_unavailable`; when the server is back with a fresh CRL, the next
refresh lets logins through again, without a restart.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import SecretStr

from idservice.app import create_app
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.bad_input import assert_problem
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.officer_pki import POLICY_OID, OfficerPki
from tests.support.officer_server import OfficerLoginEnv
from tests.support.officer_tokens import provision, write_certificate
from tests.support.server import ServerThread, free_port

CRL_LIFETIME = timedelta(seconds=8)


class CrlServer:
    """Serves `self.crl` (DER) at /officer.crl on a fixed loopback port; can stop and start."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.crl = b""
        self.url = f"http://127.0.0.1:{port}/officer.crl"
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = (200, owner.crl) if self.path == "/officer.crl" else (404, b"")
                self.send_response(status)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def login_until(env: OfficerLoginEnv, cert: object, status: int, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = env.login(cert)  # type: ignore[arg-type]
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.mark.timeout(120)
def test_unreachable_crl_source_refuses_logins_once_stale_and_recovers(
    settings: Settings, own_database: DatabaseTarget, softhsm_dir: SoftHsmDir,
    softhsm_token_factory: Callable, tmp_path: Path,
) -> None:
    pki = OfficerPki.build(datetime.now(UTC))
    officer = provision(softhsm_token_factory(f"faults-usb-{secrets.token_hex(3)}"), tmp_path)
    write_certificate(officer, pki.officer_cert(officer.public_key, "token holder"), tmp_path)
    files = pki.write(tmp_path)  # anchors, issuing CA list, root CRL (a file, fresh for a day)
    crl_server = CrlServer(free_port())
    crl_server.crl = pki.issuing.crl(datetime.now(UTC), lifetime=CRL_LIFETIME).public_bytes(
        Encoding.DER)
    stale_at = time.monotonic() + CRL_LIFETIME.total_seconds()
    crl_server.start()
    service_token = softhsm_token_factory("faults-crl-svc")
    port = free_port()
    app_settings = settings.model_copy(update={
        "pkcs11_module": service_token.module_path,
        "pkcs11_token_label": service_token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "faults-crl-es256",
        "audit_key_label": "faults-crl-audit", "origin": f"http://127.0.0.1:{port}",
        "cert_policies": [POLICY_OID], "crl_refresh_seconds": 0.2, "clock_skew_seconds": 0,
        **files, "crls": [crl_server.url, str(tmp_path / "root.crl")]})
    thread = ServerThread(create_app(app_settings, database=own_database), port).start()
    try:
        env = OfficerLoginEnv(thread, pki, tmp_path, officer, own_database)
        cert = env.cert("good")
        env.register(cert)
        first = env.login(cert)
        assert first.status_code == 200, first.text

        crl_server.stop()
        # The last good CRL is still fresh: logins go on without the source.
        cached = env.login(cert)
        assert cached.status_code == 200, cached.text
        assert time.monotonic() < stale_at, "the test machine was too slow to see this"

        time.sleep(max(0.0, stale_at - time.monotonic()) + 0.5)
        refused = login_until(env, cert, 401, timeout=10)
        assert_problem(refused, 401, "revocation_unavailable")

        crl_server.crl = pki.issuing.crl(datetime.now(UTC)).public_bytes(Encoding.DER)
        crl_server.start()
        recovered = login_until(env, cert, 200, timeout=15)
        assert recovered.status_code == 200, recovered.text
    finally:
        thread.stop()
        crl_server.stop()

"""Fault test: the HSM goes away while the service runs, then comes back (no restart).

A server of its own signs with its own SoftHSM token. The token is made unavailable for real:
its directory is moved out of SoftHSM's token directory. SoftHSM notices at the next operation
on the token (the key's file is gone: CKR_OBJECT_HANDLE_INVALID, or CKR_GENERAL_ERROR for a
ping), the key store drops its session, re-initialises the module to rescan the slots, finds
no token with that label and answers HsmUnavailable. Moving the directory back makes the next
reopen find the token again. No mocks: the production key store, module and HTTP path.

What must hold while it is away:
- `/readyz` is 503 and names the HSM;
- `POST /v1/auth/client-token` is `503 unavailable` (problem+json) and nothing is half-done:
  the assertion's `jti` is not burned (one transaction, rolled back) and no audit event is
  written, so the very same assertion, still within its lifetime, gets a token after the
  recovery (and only once: then it is burned);
- issuance with an access token issued before the outage goes on: verification needs only
  the public key, cached at start-up.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.assertion import client_token_form
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.faults.conftest import fetch, register_client
from tests.support.bad_input import assert_problem
from tests.support.bodies import issue_body
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.pki import new_client_key
from tests.support.server import ServerThread, free_port

LABEL = "faults-hsm-outage"


def token_dir(softhsm_dir: SoftHsmDir, label: str) -> Path:
    """The SoftHSM file-backend directory holding the token labelled `label`."""
    for directory in (softhsm_dir.base_dir / "tokens").iterdir():
        token_object = directory / "token.object"
        if token_object.is_file() and label.encode() in token_object.read_bytes():
            return directory
    raise LookupError(label)


@pytest.fixture
def hsm_server(settings: Settings, own_database: DatabaseTarget, softhsm_dir: SoftHsmDir,
               softhsm_token_factory: Callable) -> Iterator[ServerThread]:
    token = softhsm_token_factory(LABEL)
    app_settings = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "faults-es256",
        "audit_key_label": "faults-audit"})
    thread = ServerThread(create_app(app_settings, database=own_database), free_port()).start()
    yield thread
    thread.stop()


def wait_ready(base_url: str, want: int, timeout: float = 15) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{base_url}/readyz", timeout=10)
        if response.status_code == want or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


@pytest.mark.timeout(120)
def test_hsm_outage_refuses_signing_keeps_issuing_and_recovers(
    hsm_server: ServerThread, own_database: DatabaseTarget, softhsm_dir: SoftHsmDir,
    settings: Settings,
) -> None:
    base = hsm_server.base_url
    client_id = f"faults-{uuid.uuid4().hex[:8]}"
    client = new_client_key(client_id)
    key = client.key
    register_client(own_database.admin_url, client_id, client.cert_pem)

    def service_db(sql: str, *args: object) -> list:
        return fetch(own_database.service_url, sql, *args)

    before = httpx.post(f"{base}/v1/auth/client-token",
                        data=client_token_form(client_id, key, settings.client_token_url))
    assert before.status_code == 200, before.text
    access = {"Authorization": f"Bearer {before.json()['access_token']}"}
    assert wait_ready(base, 200).status_code == 200

    directory = token_dir(softhsm_dir, LABEL)
    away = softhsm_dir.base_dir / f"away-{uuid.uuid4().hex[:8]}"
    form = client_token_form(client_id, key, settings.client_token_url)
    os.rename(directory, away)  # out of SoftHSM's token directory: the token is gone
    try:
        ready = wait_ready(base, 503)
        assert ready.status_code == 503, ready.text
        assert ready.json()["status"] == "not_ready"
        assert ready.json()["checks"]["hsm"].startswith("unavailable"), ready.json()

        rid = f"hsm-outage-{uuid.uuid4().hex}"
        refused = httpx.post(f"{base}/v1/auth/client-token", data=form,
                             headers={"X-Request-ID": rid})
        assert_problem(refused, 503, "unavailable")
        assert service_db("SELECT count(*) FROM client_assertion_jti WHERE client_id = $1",
                          client_id)[0][0] == 1  # only the assertion of the token above
        assert service_db("SELECT count(*) FROM audit_event WHERE request_id = $1",
                          rid)[0][0] == 0

        # Tokens issued before the outage keep working: verification uses the cached key.
        body = issue_body("052")
        issued = httpx.post(f"{base}/v1/pins", json=body, headers=access, timeout=30)
        assert issued.status_code == 201, issued.text
        again = httpx.post(f"{base}/v1/pins", json=body, headers=access, timeout=30)
        assert again.status_code == 200, again.text
        assert again.json()["pin"] == issued.json()["pin"]
    finally:
        os.rename(away, directory)

    # Back without a restart: readiness, and the assertion refused during the outage works
    # (it was not consumed), exactly once.
    assert wait_ready(base, 200).status_code == 200
    recovered = httpx.post(f"{base}/v1/auth/client-token", data=form)
    assert recovered.status_code == 200, recovered.text
    replayed = httpx.post(f"{base}/v1/auth/client-token", data=form)
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client"
    fresh = httpx.post(f"{base}/v1/auth/client-token",
                       data=client_token_form(client_id, key, settings.client_token_url))
    assert fresh.status_code == 200, fresh.text
    new_access = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert httpx.post(f"{base}/v1/pins", json=issue_body("052"), headers=new_access,
                      timeout=30).status_code == 201

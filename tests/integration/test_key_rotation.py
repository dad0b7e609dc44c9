"""Access-token key rotation with `kid` overlap: after the signing key changes, tokens signed by
the retired key keep working until they expire, both keys are in the JWKS, and new tokens are
signed by the new key only."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import jwt
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.assertion import client_token_form
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.server import ServerThread, free_port


def _token(server: ServerThread, client_id: str, key: object, settings: Settings) -> str:
    response = httpx.post(f"{server.base_url}/v1/auth/client-token",
                          data=client_token_form(client_id, key, settings.client_token_url))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_retired_key_still_verifies_and_new_key_signs(
    settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
    softhsm_token_factory: Callable, make_client: Callable[..., tuple[str, object]],
) -> None:
    hsm = softhsm_token_factory("rotation")
    base = settings.model_copy(update={
        "pkcs11_module": hsm.module_path, "pkcs11_token_label": hsm.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin)})
    client_id, key = make_client("052")

    before = ServerThread(create_app(base.model_copy(update={"jwt_key_label": "rot-2025"}),
                                     database=database), free_port()).start()
    try:
        old_token = _token(before, client_id, key, settings)
    finally:
        before.stop()
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    rotated = base.model_copy(update={"jwt_key_label": "rot-2026",
                                      "jwt_previous_key_labels": ["rot-2025"]})
    after = ServerThread(create_app(rotated, database=database), free_port()).start()
    try:
        kids = [k["kid"] for k in httpx.get(f"{after.base_url}/.well-known/jwks.json"
                                            ).json()["keys"]]
        new_token = _token(after, client_id, key, settings)
        new_kid = jwt.get_unverified_header(new_token)["kid"]
        with after.client(old_token) as old_client:
            assert old_client.post("/v1/pins", json=issue_body("052")).status_code == 201
        with after.client(new_token) as new_client:
            assert new_client.post("/v1/pins", json=issue_body("052")).status_code == 201
    finally:
        after.stop()
    assert new_kid != old_kid
    assert kids == [new_kid, old_kid]

    retired_only = base.model_copy(update={"jwt_key_label": "rot-2027"})
    dropped = ServerThread(create_app(retired_only, database=database), free_port()).start()
    try:
        with dropped.client(old_token) as old_client:
            response = old_client.post("/v1/pins", json=issue_body("052"))
        assert response.status_code == 401  # once no longer listed, the old key verifies nothing
    finally:
        dropped.stop()

"""Rate limits of the authentication endpoints (extension, docs/decisions.md): a second server
on the session database with `auth_rate_limit=3`; the (limit+1)-th request in a minute answers
429 `rate_limited` problem+json with `Retry-After`. Counters live in the database, so the
session server (limit 600) and this one count the same (scope, key) together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.assertion import client_token_form
from idservice.auth.rate_limit import check_rate_limit
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.server import ServerThread, free_port

LIMIT = 3


@pytest.fixture(scope="module")
def limited_server(settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
                   softhsm_token_factory: Callable, server: ServerThread) -> Iterator[ServerThread]:
    token = softhsm_token_factory("rate-limit")
    limited = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "rate-limit-es256",
        "auth_rate_limit": LIMIT})
    thread = ServerThread(create_app(limited, database=database), free_port()).start()
    yield thread
    thread.stop()


def _fresh_window() -> None:
    """Start well inside a minute, so the fixed window cannot roll over during the test."""
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_client_token_is_limited_per_client_id(
        limited_server: ServerThread, make_client: Callable[..., tuple[str, object]],
        settings: Settings) -> None:
    _fresh_window()
    client_id, key = make_client("052")
    other_id, other_key = make_client("052")
    url = f"{limited_server.base_url}/v1/auth/client-token"
    for _ in range(LIMIT):
        response = httpx.post(url, data=client_token_form(client_id, key,
                                                          settings.client_token_url))
        assert response.status_code == 200, response.text
    _assert_limited(httpx.post(url, data=client_token_form(client_id, key,
                                                           settings.client_token_url)))
    # another client id has its own counter
    response = httpx.post(url, data=client_token_form(other_id, other_key,
                                                      settings.client_token_url))
    assert response.status_code == 200, response.text


def test_challenge_and_token_are_limited_per_source_ip(
        limited_server: ServerThread, service_db: Callable[..., list]) -> None:
    _fresh_window()
    service_db("DELETE FROM auth_rate_limit WHERE scope IN ('challenge', 'token')")
    base = limited_server.base_url
    for _ in range(LIMIT):
        assert httpx.post(f"{base}/v1/auth/challenge").status_code == 200
    _assert_limited(httpx.post(f"{base}/v1/auth/challenge"))
    body = {"nonce": "x" * 44, "auth_token": {}}
    for _ in range(LIMIT):
        assert httpx.post(f"{base}/v1/auth/token", json=body).status_code != 429
    _assert_limited(httpx.post(f"{base}/v1/auth/token", json=body))
    service_db("DELETE FROM auth_rate_limit WHERE scope IN ('challenge', 'token')")


def test_zero_turns_the_limit_off() -> None:
    # no database round trip at all: the pool is never touched
    asyncio.run(check_rate_limit(None, 0, "challenge", "127.0.0.1"))  # type: ignore[arg-type]
    assert Settings().auth_rate_limit == 600

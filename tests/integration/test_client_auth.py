"""Machine-client authentication (contract 3.2) and access tokens (3.3)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from idservice.auth.assertion import ASSERTION_FORM_TYPE, client_assertion, client_token_form
from idservice.db.pool import connect
from idservice.queries import auth as q
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.server import ServerThread


def _post(server: ServerThread, form: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/auth/client-token", data=form)


def test_client_token_has_contract_claims_and_verifies_with_jwks(
    server: ServerThread, make_client: Callable, settings: Settings
) -> None:
    client_id, key = make_client("052")
    response = _post(server, client_token_form(client_id, key, settings.client_token_url))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == settings.token_ttl
    assert body["scope"] == "registrar"
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"]
    jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json").json()
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, public, algorithms=["ES256"], audience=settings.origin)
    assert claims["iss"] == settings.token_issuer and claims["sub"] == client_id
    assert claims["roles"] == ["registrar"] and claims["jur"] == "052"
    assert claims["exp"] - claims["iat"] == settings.token_ttl and claims["jti"]


def test_replayed_assertion_is_refused(server: ServerThread, make_client: Callable,
                                       settings: Settings, service_db: Callable) -> None:
    client_id, key = make_client("052")
    form = client_token_form(client_id, key, settings.client_token_url)
    assert _post(server, form).status_code == 200
    replay = _post(server, form)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    assert "replayed" in replay.json()["error_description"]
    outcomes = [r["action"] for r in service_db(
        "SELECT action FROM audit_event WHERE actor_id = $1 ORDER BY id", client_id)]
    assert outcomes == ["auth.login", "auth.login_failed"]


@pytest.mark.parametrize("case", ["wrong-audience", "too-long-lived", "expired", "unknown-client",
                                  "other-key", "none-alg"])
def test_bad_assertions_are_invalid_client(server: ServerThread, make_client: Callable,
                                           settings: Settings, case: str) -> None:
    client_id, key = make_client("052")
    audience = settings.client_token_url
    if case == "wrong-audience":
        assertion = client_assertion(client_id, key, "https://elsewhere.example/token")
    elif case == "too-long-lived":
        assertion = client_assertion(client_id, key, audience, lifetime=3600)
    elif case == "expired":
        assertion = client_assertion(client_id, key, audience, now=time.time() - 1000)
    elif case == "unknown-client":
        assertion = client_assertion("nobody-" + client_id, key, audience)
    elif case == "other-key":
        _, other_key = make_client("052")
        assertion = client_assertion(client_id, other_key, audience)
    else:
        header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
        payload = base64.urlsafe_b64encode(json.dumps(
            {"iss": client_id, "sub": client_id, "aud": audience, "exp": time.time() + 60,
             "jti": "x"}).encode()).rstrip(b"=").decode()
        assertion = f"{header}.{payload}."
    response = _post(server, {"grant_type": "client_credentials",
                              "client_assertion_type": ASSERTION_FORM_TYPE,
                              "client_assertion": assertion})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_wrong_grant_type_is_unsupported_grant_type(server: ServerThread) -> None:
    response = _post(server, {"grant_type": "password", "username": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_disabled_client_token_stops_working_within_poll_interval(
    server: ServerThread, make_client: Callable, settings: Settings, admin_db: Callable
) -> None:
    client_id, key = make_client("052")
    token = _post(server, client_token_form(client_id, key, settings.client_token_url)
                  ).json()["access_token"]
    with server.client(token) as client:
        assert client.post("/v1/pins", json=issue_body("052")).status_code == 201
        admin_db("UPDATE client SET enabled = false WHERE id = $1", client_id)
        deadline = time.monotonic() + 10 * settings.revocation_poll_interval + 5
        status = 201
        while time.monotonic() < deadline and status != 401:
            time.sleep(0.2)
            status = client.post("/v1/pins", json=issue_body("052")).status_code
        assert status == 401
    again = _post(server, client_token_form(client_id, key, settings.client_token_url))
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"


def test_logout_revokes_the_presented_token(server: ServerThread,
                                            client_token: Callable[..., str]) -> None:
    token = client_token("052")
    other = client_token("052")
    with server.client(token) as client:
        assert client.post("/v1/auth/logout").status_code == 204
        after = client.post("/v1/pins", json=issue_body("052"))
        assert after.status_code == 401 and after.json()["code"] == "unauthenticated"
    with server.client(other) as client:
        assert client.post("/v1/pins", json=issue_body("052")).status_code == 201


def _status_of(server: ServerThread, token: str) -> int:
    """401 once the token is revoked; 403 (authenticated, wrong role) before: nothing written."""
    with server.client(token) as client:
        return client.get("/v1/audit/checkpoint").status_code


def _wait_for_status(server: ServerThread, token: str, wanted: int, seconds: float) -> float:
    started = time.monotonic()
    while (status := _status_of(server, token)) != wanted:
        assert time.monotonic() - started < seconds, f"still {status} after {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_logout_committed_out_of_order_stops_the_token_within_the_poll_interval(
        server: ServerThread, client_token: Callable[..., str], database: DatabaseTarget,
        settings: Settings) -> None:
    """Two logouts as another worker writes them (`REVOKE_TOKEN`): the first one inserted
    commits last, after this server's poller has seen the second. It must still be seen."""
    first, second = client_token("052"), client_token("052")
    assert _status_of(server, first) == _status_of(server, second) == 403

    async def main() -> float:
        early = await connect(database.service_url)
        late = await connect(database.service_url)
        try:
            slow = early.transaction()
            await slow.start()
            await early.execute(q.REVOKE_TOKEN, _jti(first), _expiry(first))
            async with late.transaction():
                await late.execute(q.REVOKE_TOKEN, _jti(second), _expiry(second))
            await asyncio.to_thread(_wait_for_status, server, second, 401, 30)
            await asyncio.sleep(2 * settings.revocation_poll_interval)  # more polls go by
            assert _status_of(server, first) == 403
            await slow.commit()
            return await asyncio.to_thread(_wait_for_status, server, first, 401,
                                           3 * settings.revocation_poll_interval + 5)
        finally:
            await early.close()
            await late.close()

    assert asyncio.run(main()) <= 2 * settings.revocation_poll_interval + 1


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def _expiry(token: str) -> datetime:
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    return datetime.fromtimestamp(exp, UTC)


def test_tampered_token_is_unauthenticated(server: ServerThread,
                                           client_token: Callable[..., str]) -> None:
    token = client_token("052")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["jur"] = "*"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with server.client(f"{header}.{forged}.{signature}") as client:
        response = client.post("/v1/pins", json=issue_body("079"))
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"

"""`idservice agent` (contract 6.2): a real signing agent on a loopback port, signing with a
SoftHSM officer token, in front of the officer-login test server (`officer_server.py`).

The agent is the one the CLI runs (`hsm.agent.SigningAgent` + `idservice.cli.agent.token_signer`),
served from a thread of the test process; every request goes over real HTTP."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509

from hsm.agent import SigningAgent
from idservice.cli.agent import token_signer
from tests.support.officer_server import (
    OfficerLoginEnv,
    officer_env_fixture,  # noqa: F401 - the fixture
)

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def agent(officer_env: OfficerLoginEnv) -> Iterator[SigningAgent]:
    token = officer_env.officer.token
    server = SigningAgent(allowed_origin=officer_env.origin,
                          sign_challenge=token_signer(token.module_path, token.token_label,
                                                      token.user_pin)).start()
    yield server
    server.stop()


def _sign(agent: SigningAgent, nonce: str, *, origin: str, header_origin: str | None,
          **kwargs: Any) -> httpx.Response:
    headers = {"Origin": header_origin} if header_origin else {}
    return httpx.post(f"{agent.url}/sign", json={"nonce": nonce, "origin": origin},
                      headers=headers, timeout=30, **kwargs)


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_agent_signature_is_accepted_by_the_server(agent: SigningAgent,
                                                   officer_env: OfficerLoginEnv) -> None:
    nonce = officer_env.challenge()
    response = _sign(agent, nonce, origin=officer_env.origin, header_origin=officer_env.origin)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == officer_env.origin
    token = response.json()
    assert set(token) == {"format", "unverifiedCertificate", "algorithm", "signature",
                          "appVersion"}
    assert token["format"] == "web-eid:1.0" and token["algorithm"] == "ES256"
    cert = x509.load_der_x509_certificate(base64.b64decode(token["unverifiedCertificate"]))
    officer_env.register(cert)
    login = officer_env.post_token(nonce, token)
    assert login.status_code == 200, login.text
    assert login.json()["access_token"]
    assert officer_env.officer.token.user_pin not in response.text


def test_wrong_origin_header_is_refused_without_signature(agent: SigningAgent,
                                                          officer_env: OfficerLoginEnv) -> None:
    for header_origin in (EVIL, None, f"{officer_env.origin}.evil.example"):
        response = _sign(agent, _nonce(), origin=officer_env.origin, header_origin=header_origin)
        assert response.status_code == 403, response.text
        assert "signature" not in response.text
        assert "access-control-allow-origin" not in response.headers


def test_origin_field_other_than_the_allowed_one_is_refused(agent: SigningAgent,
                                                            officer_env: OfficerLoginEnv) -> None:
    response = _sign(agent, _nonce(), origin=EVIL, header_origin=officer_env.origin)
    assert response.status_code == 403 and response.json()["error"] == "origin_mismatch"
    assert "signature" not in response.text


def test_preflight_answers_cors_only_for_the_allowed_origin(
        agent: SigningAgent, officer_env: OfficerLoginEnv) -> None:
    request = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type",
               "Access-Control-Request-Private-Network": "true"}
    allowed = httpx.options(f"{agent.url}/sign",
                            headers={**request, "Origin": officer_env.origin})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == officer_env.origin
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert "content-type" in allowed.headers["access-control-allow-headers"].lower()
    assert allowed.headers["access-control-allow-private-network"] == "true"
    other = httpx.options(f"{agent.url}/sign", headers={**request, "Origin": EVIL})
    assert other.status_code == 403
    assert not [h for h in other.headers if h.lower().startswith("access-control-")]


@pytest.mark.parametrize("nonce", [
    "", "not base64 at all, but exactly forty-four chars!",
    base64.b64encode(secrets.token_bytes(31)).decode(),  # 44 chars, 31 bytes
    base64.b64encode(secrets.token_bytes(48)).decode(),  # arbitrary data to sign
    base64.urlsafe_b64encode(b"\xff" * 32).decode(),  # base64url is not the server's alphabet
])
def test_malformed_nonce_is_400(agent: SigningAgent, officer_env: OfficerLoginEnv,
                                nonce: str) -> None:
    response = _sign(agent, nonce, origin=officer_env.origin, header_origin=officer_env.origin)
    assert response.status_code == 400 and response.json()["error"] == "invalid_nonce"


def test_other_bodies_hosts_and_methods_are_refused(agent: SigningAgent,
                                                    officer_env: OfficerLoginEnv) -> None:
    headers = {"Origin": officer_env.origin}
    extra = httpx.post(f"{agent.url}/sign", headers=headers, json={
        "nonce": _nonce(), "origin": officer_env.origin, "data": "c2lnbiBtZQ=="})
    assert extra.status_code == 400
    as_text = httpx.post(f"{agent.url}/sign", headers={**headers, "Content-Type": "text/plain"},
                         content=b'{"nonce": "x", "origin": "y"}')
    assert as_text.status_code == 415
    rebound = httpx.post(f"{agent.url}/sign",
                         json={"nonce": _nonce(), "origin": officer_env.origin},
                         headers={**headers, "Host": f"attacker.example:{agent.port}"})
    assert rebound.status_code == 403 and rebound.json()["error"] == "host_not_allowed"
    assert httpx.get(f"{agent.url}/sign", headers=headers).status_code == 405
    assert httpx.post(f"{agent.url}/other", headers=headers, json={}).status_code == 404
    localhost = httpx.options(f"http://localhost:{agent.port}/sign",
                              headers={**headers, "Access-Control-Request-Method": "POST"})
    assert localhost.status_code == 204


def test_agent_listens_on_loopback_only(agent: SigningAgent) -> None:
    assert agent.url.startswith("http://127.0.0.1:")
    assert agent._server.server_address[0] == "127.0.0.1"

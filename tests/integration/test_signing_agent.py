"""`idservice agent` (contract 6.2, 7): a real signing agent on a loopback port, signing with a
SoftHSM officer token, in front of the officer-login test server (`officer_server.py`).

The HTTP checks use the agent the CLI runs (`hsm.agent.SigningAgent` +
`idservice.cli.agent.token_signer`), served from a thread of the test process with an
unattended PIN; the officer's confirmation runs `idservice agent` itself on a real
pseudo-terminal (`pty.fork`), typing on it as an officer would. Every request is real HTTP."""

from __future__ import annotations

import base64
import contextlib
import os
import pty
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from hsm.agent import SigningAgent
from idservice.auth.client_registry import RegistryError
from idservice.cli.agent import token_signer
from tests.support.officer_server import (
    OfficerLoginEnv,
    officer_env_fixture,  # noqa: F401 - the fixture
)
from tests.support.server import free_port

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def agent(officer_env: OfficerLoginEnv) -> Iterator[SigningAgent]:
    token = officer_env.officer.token
    server = SigningAgent(allowed_origin=officer_env.origin,
                          sign_challenge=token_signer(token.module_path, token.token_label,
                                                      lambda _o, _n: token.user_pin)).start()
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


# -- the agent as an officer runs it: `idservice agent` on a terminal (a real pty) -----------

class _Terminal:
    """`idservice agent` on a pseudo-terminal: what it shows, and what the officer types."""

    def __init__(self, args: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the agent, its stdin/stdout/stderr on the pty
            os.execv(sys.executable, [sys.executable, "-m", "idservice.cli", "agent", *args])
        self.seen = ""

    def expect(self, text: str, timeout: float = 30, *, times: int = 1) -> str:
        """Wait until `text` has been shown `times` times in all."""
        deadline = time.monotonic() + timeout
        while self.seen.count(text) < times:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not shown; the terminal shows:\n{self.seen}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    self.seen += os.read(self.fd, 4096).decode("utf-8", "replace")
                except OSError:  # the agent exited
                    assert text in self.seen, f"{text!r} not shown:\n{self.seen}"
        return self.seen

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.05)
        os.close(self.fd)


def _sign_in_background(url: str, origin: str, nonce: str) -> tuple[threading.Thread, list]:
    """POST /sign from a thread (the agent answers once the officer has), as the web UI."""
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(httpx.post(
        f"{url}/sign", json={"nonce": nonce, "origin": origin}, headers={"Origin": origin},
        timeout=60)))
    thread.start()
    return thread, result


@pytest.fixture
def terminal(officer_env: OfficerLoginEnv) -> Iterator[tuple[_Terminal, str]]:
    token = officer_env.officer.token
    port = free_port()
    term = _Terminal(["--module", token.module_path, "--token-label", token.token_label,
                      "--allow-origin", officer_env.origin, "--port", str(port),
                      "--confirm-timeout", "3"])
    try:
        term.expect("signing agent for")
        term.expect("confirmed here with the token PIN")
        yield term, f"http://127.0.0.1:{port}"
    finally:
        term.close()


def test_each_signature_is_confirmed_on_the_terminal_with_the_pin(
    terminal: tuple[_Terminal, str], officer_env: OfficerLoginEnv,
) -> None:
    """Contract 7: the agent asks on its terminal for each signature (showing the origin),
    the officer enters the token PIN there; a refusal or no answer signs nothing; the PIN is
    asked again for the next signature (it was not kept), and never echoed."""
    term, url = terminal
    pin = officer_env.officer.token.user_pin
    origin = officer_env.origin

    # 1. Confirmed: a signature the server accepts.
    nonce = officer_env.challenge()
    thread, result = _sign_in_background(url, origin, nonce)
    term.expect(f"Login request from {origin}")
    term.expect("Enter the token PIN")
    term.type(pin)
    thread.join(timeout=60)
    [signed] = result
    assert signed.status_code == 200, signed.text
    cert = x509.load_der_x509_certificate(
        base64.b64decode(signed.json()["unverifiedCertificate"]))
    with contextlib.suppress(RegistryError):  # registered by an earlier test
        officer_env.register(cert)
    login = officer_env.post_token(nonce, signed.json())
    assert login.status_code == 200, login.text

    # 2. The next request asks again: refused with an empty answer, nothing is signed.
    thread, result = _sign_in_background(url, origin, officer_env.challenge())
    term.expect("Enter the token PIN", times=2)
    term.type("")
    thread.join(timeout=60)
    [refused] = result
    assert refused.status_code == 403 and refused.json()["error"] == "refused"
    assert "signature" not in refused.text
    term.expect("refused: nothing was signed")

    # 3. A wrong PIN is a token error said in words; 4. no answer in time is a refusal.
    thread, result = _sign_in_background(url, origin, officer_env.challenge())
    term.expect("Enter the token PIN", times=3)
    term.type("999999")
    thread.join(timeout=60)
    assert result[0].status_code == 502 and "wrong token PIN" in result[0].json()["detail"]
    started = time.monotonic()
    thread, result = _sign_in_background(url, origin, officer_env.challenge())
    thread.join(timeout=60)
    assert result[0].status_code == 403 and result[0].json()["error"] == "refused"
    assert 2.5 < time.monotonic() - started < 30
    term.expect("Enter the token PIN", times=4)
    assert pin not in term.seen and "999999" not in term.seen  # typed without echo


def test_pin_file_runs_unattended_and_warns(officer_env: OfficerLoginEnv,
                                            tmp_path: Path) -> None:
    token = officer_env.officer.token
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.user_pin + "\n")
    port = free_port()
    term = _Terminal(["--module", token.module_path, "--token-label", token.token_label,
                      "--allow-origin", officer_env.origin, "--port", str(port),
                      "--pin-file", str(pin_file)])
    try:
        term.expect("WARNING")
        term.expect("signed without asking")
        term.expect("unattended (--pin-file)")
        thread, result = _sign_in_background(f"http://127.0.0.1:{port}", officer_env.origin,
                                             officer_env.challenge())
        thread.join(timeout=60)
        assert result[0].status_code == 200, result[0].text
        assert "Enter the token PIN" not in term.seen
    finally:
        term.close()


def test_agent_without_a_terminal_or_pin_file_refuses_to_start(
        officer_env: OfficerLoginEnv) -> None:
    token = officer_env.officer.token
    started = subprocess.run(
        [sys.executable, "-m", "idservice.cli", "agent", "--module", token.module_path,
         "--token-label", token.token_label, "--allow-origin", officer_env.origin,
         "--port", str(free_port())], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60, check=False)
    assert started.returncode == 2
    assert "run it in a terminal" in " ".join(started.stderr.split())

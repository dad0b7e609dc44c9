"""Loopback signing agent (`idservice agent`, contract 6.2): the web UI asks it to sign a login
challenge with the officer's USB token, as the Web eID browser extension would.

`POST /sign` with `{"nonce": "<44-char base64>", "origin": "<the allowed origin>"}` answers the
`web-eid:1.0` auth token, or 403 `refused` when the officer declines to sign (the CLI asks on
its terminal for each signature, contract 7: `idservice/cli/agent.py`). What it will sign is
fixed: only `H(origin) || H(nonce)` for the one configured origin and a nonce of exactly 32
bytes in base64, never caller-chosen data; the token is built by the `sign_challenge` callable
the agent is given (the CLI wires it to `hsm.client.sign_with_token` and
`idservice.auth.webeid`), and only with the validated values.

Defences, in order: the socket is bound to 127.0.0.1 only; a `Host` header other than
`127.0.0.1:<port>` / `localhost:<port>` is refused (DNS rebinding); CORS is answered for the
configured origin only (preflight included, with Chrome's Private Network Access header); a
request whose `Origin` header is missing or differs is refused before its body is read; the
body's `origin` must equal the configured origin; the PIN is never part of any response or
log line. Errors are small JSON objects `{"error": code, "detail": text}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hsm.errors import HsmError

__all__ = ["LOOPBACK", "SignChallenge", "SigningAgent", "SigningRefused", "valid_nonce"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_MAX_BODY = 4096
_NONCE_BYTES = 32

SignChallenge = Callable[[str, str], Mapping[str, Any]]
"""`(origin, nonce) -> web-eid:1.0 token`: signs `H(origin) || H(nonce)` on the token, or
raises `SigningRefused` when the officer did not confirm."""


class SigningRefused(Exception):
    """The officer refused to sign this request, or did not answer in time."""


def valid_nonce(value: object) -> bool:
    """A server nonce: 32 random bytes in standard base64 with padding (44 characters)."""
    if not isinstance(value, str) or len(value) != 44:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == _NONCE_BYTES
    except (binascii.Error, ValueError):
        return False


class _AgentError(Exception):
    def __init__(self, status: HTTPStatus, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "idservice-agent/1.0"
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------
    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: Mapping[str, Any] | None,
              headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _cors(self) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": self.server.allowed_origin, "Vary": "Origin"}

    def _check_host(self) -> None:
        if self.headers.get("Host", "").lower() not in self.server.allowed_hosts:
            raise _AgentError(HTTPStatus.FORBIDDEN, "host_not_allowed",
                              "the agent only answers requests addressed to the loopback host")

    def _check_origin_header(self) -> None:
        if self.headers.get("Origin") != self.server.allowed_origin:
            raise _AgentError(HTTPStatus.FORBIDDEN, "origin_not_allowed",
                              "the Origin header is not the origin this agent serves")

    def _handle(self, action: Callable[[], None]) -> None:
        try:
            self._check_host()
            if self.path.split("?", 1)[0] != "/sign":
                raise _AgentError(HTTPStatus.NOT_FOUND, "not_found", "only /sign exists")
            action()
        except _AgentError as exc:
            # Refusals never carry CORS headers: another origin's page learns nothing.
            self.close_connection = True
            self._send(exc.status, {"error": exc.code, "detail": exc.detail})

    # -- methods ----------------------------------------------------------------------------
    def do_OPTIONS(self) -> None:
        self._handle(self._preflight)

    def do_POST(self) -> None:
        self._handle(self._sign)

    def do_GET(self) -> None:
        self._handle(self._method_not_allowed)

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _method_not_allowed(self) -> None:
        raise _AgentError(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "POST /sign")

    def _preflight(self) -> None:
        self._check_origin_header()
        if self.headers.get("Access-Control-Request-Method", "POST") != "POST":
            raise _AgentError(HTTPStatus.FORBIDDEN, "method_not_allowed", "POST /sign")
        headers = {**self._cors(), "Access-Control-Allow-Methods": "POST",
                   "Access-Control-Allow-Headers": "Content-Type",
                   "Access-Control-Max-Age": "600"}
        if self.headers.get("Access-Control-Request-Private-Network") == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"
        self._send(HTTPStatus.NO_CONTENT, None, headers)

    def _read_body(self) -> dict[str, Any]:
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise _AgentError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                              "send application/json")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise _AgentError(HTTPStatus.LENGTH_REQUIRED, "length_required",
                              "Content-Length is required") from None
        if not 0 <= length <= _MAX_BODY:
            raise _AgentError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large",
                              f"at most {_MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            raise _AgentError(HTTPStatus.BAD_REQUEST, "malformed_request",
                              "the body is not JSON") from None
        if not isinstance(body, dict) or set(body) != {"nonce", "origin"}:
            raise _AgentError(HTTPStatus.BAD_REQUEST, "malformed_request",
                              "the body must be exactly {\"nonce\", \"origin\"}")
        return body

    def _sign(self) -> None:
        self._check_origin_header()
        body = self._read_body()
        if body["origin"] != self.server.allowed_origin:
            raise _AgentError(HTTPStatus.FORBIDDEN, "origin_mismatch",
                              "the agent signs only for the origin it serves")
        if not valid_nonce(body["nonce"]):
            raise _AgentError(HTTPStatus.BAD_REQUEST, "invalid_nonce",
                              "nonce must be 32 bytes in base64 (44 characters)")
        try:
            with self.server.sign_lock:
                token = self.server.sign_challenge(self.server.allowed_origin, body["nonce"])
        except SigningRefused as exc:
            log.info("signing refused: %s", exc)
            raise _AgentError(HTTPStatus.FORBIDDEN, "refused", str(exc)) from exc
        except HsmError as exc:
            log.warning("signing failed: %s", exc)
            raise _AgentError(HTTPStatus.BAD_GATEWAY, "token_error", str(exc)) from exc
        log.info("signed a login challenge for %s", self.server.allowed_origin)
        self._send(HTTPStatus.OK, dict(token), self._cors())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    allowed_origin: str
    allowed_hosts: frozenset[str]
    sign_challenge: SignChallenge
    sign_lock: threading.Lock


class SigningAgent:
    """The agent's HTTP server on 127.0.0.1:`port` (0: any free port, see `.port`)."""

    def __init__(self, *, allowed_origin: str, sign_challenge: SignChallenge,
                 port: int = 0) -> None:
        origin = allowed_origin.rstrip("/")
        if not origin.startswith(("http://", "https://")) or "/" in origin.split("://", 1)[1]:
            raise ValueError("the allowed origin must be scheme://host[:port] without a path")
        self._server = _Server((LOOPBACK, port), _Handler)
        self._server.allowed_origin = origin
        self._server.sign_challenge = sign_challenge
        self._server.sign_lock = threading.Lock()
        self.port = int(self._server.server_address[1])
        self._server.allowed_hosts = frozenset(
            {f"{LOOPBACK}:{self.port}", f"localhost:{self.port}"})
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> SigningAgent:
        """Serve in a daemon thread (tests)."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="signing-agent")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

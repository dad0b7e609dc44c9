"""Pure ASGI middleware: request id on every log line and response, access log, metrics.

Pure ASGI (not BaseHTTPMiddleware) so streamed batch bodies pass through untouched.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idservice.logging import get_logger
from idservice.metrics import REQUEST_LATENCY

__all__ = ["RequestContextMiddleware"]

_log = get_logger("idservice.access")
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _GOOD_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            REQUEST_LATENCY.labels(scope["method"], path, str(status["code"])).observe(elapsed)
            _log.info("request", method=scope["method"], route=path, status=status["code"],
                      ms=round(elapsed * 1000, 2))
            structlog.contextvars.clear_contextvars()

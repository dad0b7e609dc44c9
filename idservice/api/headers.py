"""Security headers on every response (issue 9 item 15, contract 7: "every response carries a
Content-Security-Policy").

A response that set its own policy keeps it (the auditor UI, `web/pages.py`; the API docs,
`api/docs.py`); every other one, JSON, problem+json, NDJSON, text, a redirect, an error, gets
`API_CSP`: nothing may load or run, and no page may frame it. A browser that is shown an API
answer (an attacker's link to a JSON endpoint that reflects input) runs nothing from it.
`X-Content-Type-Options: nosniff` likewise, so a JSON body is never read as HTML or script.

Pure ASGI, added as the outermost of our middlewares (`app.py`). Starlette answers an unhandled
exception outside every middleware, so `api/problems.py` puts the same headers on its 500.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_CSP", "DEFAULT_HEADERS", "SecurityHeadersMiddleware"]

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DEFAULT_HEADERS: dict[str, str] = {
    "Content-Security-Policy": API_CSP,
    "X-Content-Type-Options": "nosniff",
}
_RAW = [(name.lower().encode(), value.encode()) for name, value in DEFAULT_HEADERS.items()]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in _RAW if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

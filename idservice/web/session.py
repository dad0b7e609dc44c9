"""The UI session: the access token from `/v1/auth/token` in an HttpOnly cookie.

The cookie holds the access token itself (no server-side session state, works across
workers): `HttpOnly` (scripts never read it back), `SameSite=Strict` (never sent on
cross-site requests), `Path=/ui`, `Secure` when the origin is https, `Max-Age` = the token's
remaining lifetime. Every UI request checks it exactly like the API checks a Bearer token
(`auth/bearer.authenticate`: signature, claims, revocation) and requires the `auditor` role.

CSRF: state-changing UI requests are POSTs that must carry the service's own `Origin` header and
a token derived from the session (HMAC-SHA-256 keyed with the access token), which only a page
rendered for that session knows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from fastapi import Request
from starlette.responses import Response

from idservice.auth.bearer import authenticate
from idservice.auth.policy import Action, authorize
from idservice.auth.principal import Principal
from idservice.errors import Forbidden, Unauthenticated
from idservice.services import Services

__all__ = ["COOKIE", "check_origin", "clear_cookie", "csrf_token", "principal_for",
           "session_token", "set_cookie", "valid_csrf"]

COOKIE = "idservice_ui"
_PATH = "/ui"


def session_token(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    return token or None


async def principal_for(svc: Services, token: str | None) -> Principal:
    """The auditor a session token belongs to; the API's checks, then the role."""
    if token is None:
        raise Unauthenticated("not logged in")
    principal = authenticate(svc.verifier, svc.revocation, token)
    authorize(principal, Action.AUDIT_EVENTS)
    return principal


def csrf_token(token: str) -> str:
    mac = hmac.new(token.encode(), b"idservice-ui-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def valid_csrf(token: str, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(csrf_token(token), submitted)


def check_origin(request: Request, origin: str) -> None:
    """State-changing UI requests must come from our own pages."""
    if request.headers.get("origin") != origin:
        raise Forbidden("cross-origin request refused")


def set_cookie(response: Response, token: str, max_age: int, origin: str) -> None:
    response.set_cookie(COOKIE, token, max_age=max(0, max_age), path=_PATH, httponly=True,
                        samesite="strict", secure=origin.startswith("https://"))


def clear_cookie(response: Response, origin: str) -> None:
    response.delete_cookie(COOKIE, path=_PATH, httponly=True, samesite="strict",
                           secure=origin.startswith("https://"))

"""The UI session: the access token from `/v1/auth/token` in an HttpOnly cookie, and the
access purpose the officer stated, remembered for that session.

The cookie holds the access token itself (no server-side session state, works across
workers): `HttpOnly` (scripts never read it back), `SameSite=Strict` (never sent on
cross-site requests), `Path=/ui`, `Secure` when the origin is https, `Max-Age` = the token's
remaining lifetime. Every UI request checks it exactly like the API checks a Bearer token
(`auth/bearer.authenticate`: signature, claims, revocation). The session is for people who
log in with a USB token and have a page here: operators with the `officer`, `auditor` or
`admin` role (the province administrator's reservations page); each page then checks the role
its service function requires, as the API does.

The purpose cookie (`idservice_purpose`, same attributes) carries the purpose text with an
HMAC keyed by the session's access token, so a purpose is remembered for one session only (a
purpose left from an earlier session, or one written by hand, is ignored and asked again).

CSRF: state-changing UI requests are POSTs that must carry the service's own `Origin` header and
a token derived from the session (HMAC-SHA-256 keyed with the access token), which only a page
rendered for that session knows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from idservice.auth.bearer import authenticate
from idservice.auth.policy import Action, authorize
from idservice.auth.principal import Principal
from idservice.errors import Forbidden, Unauthenticated
from idservice.services import Services

__all__ = ["COOKIE", "PURPOSE_COOKIE", "check_origin", "clear_cookie", "csrf_token",
           "principal_for", "safe_next", "session_purpose", "session_token", "set_cookie",
           "set_purpose", "valid_csrf"]

COOKIE = "idservice_ui"
PURPOSE_COOKIE = "idservice_purpose"
_PATH = "/ui"


def session_token(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    return token or None


async def principal_for(svc: Services, token: str | None) -> Principal:
    """The operator a session token belongs to: the API's checks, then a role with pages."""
    if token is None:
        raise Unauthenticated("not logged in")
    principal = authenticate(svc.verifier, svc.revocation, token)
    if principal.kind != "operator":
        raise Forbidden("the web pages are for officers, auditors and administrators")
    authorize(principal, Action.WEB_SESSION)
    return principal


def _mac(token: str, label: bytes, data: bytes = b"") -> str:
    mac = hmac.new(token.encode(), label + data, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_token(token: str) -> str:
    return _mac(token, b"idservice-ui-csrf")


def valid_csrf(token: str, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(csrf_token(token), submitted)


def check_origin(request: Request, origin: str) -> None:
    """State-changing UI requests must come from our own pages."""
    if request.headers.get("origin") != origin:
        raise Forbidden("cross-origin request refused")


def safe_next(value: str | None, default: str = "/ui/") -> str:
    """A local UI path to go back to after login or a language switch; anything else (another
    site, `//host`, a backslash trick) is replaced by `default`."""
    if not value or len(value) > 2000 or "\\" in value or any(ord(c) < 32 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not (parts.path == "/ui" or
                                            parts.path.startswith("/ui/")):
        return default
    return value


def _secure(origin: str) -> bool:
    return origin.startswith("https://")


def set_cookie(response: Response, token: str, max_age: int, origin: str) -> None:
    response.set_cookie(COOKIE, token, max_age=max(0, max_age), path=_PATH, httponly=True,
                        samesite="strict", secure=_secure(origin))


def clear_cookie(response: Response, origin: str) -> None:
    for name in (COOKIE, PURPOSE_COOKIE):
        response.delete_cookie(name, path=_PATH, httponly=True, samesite="strict",
                               secure=_secure(origin))


def set_purpose(response: Response, token: str, purpose: str, max_age: int,
                origin: str) -> None:
    data = purpose.encode()
    value = base64.urlsafe_b64encode(data).decode().rstrip("=") + "." + \
        _mac(token, b"idservice-ui-purpose:", data)
    response.set_cookie(PURPOSE_COOKIE, value, max_age=max(0, max_age), path=_PATH,
                        httponly=True, samesite="strict", secure=_secure(origin))


def session_purpose(request: Request, token: str) -> str | None:
    """The purpose remembered for this session, or None."""
    value = request.cookies.get(PURPOSE_COOKIE)
    if not value or value.count(".") != 1:
        return None
    encoded, mac = value.split(".")
    try:
        data = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        purpose = data.decode()
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(_mac(token, b"idservice-ui-purpose:", data), mac):
        return None
    return purpose or None

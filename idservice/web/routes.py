"""The web pages (issue 15; the auditor UI of the audit-log issue): server-rendered, in
Vietnamese by default. This module holds what every page shares (login, session, logout,
language, static files, the start page, the HTML 404); the pages themselves are
`web/officer_pages.py` (find a person, the record, corrections, the PIN notice) and
`web/audit_pages.py` (events, a PIN's access history, checkpoint) and `web/admin_pages.py` (the
province administrator's offline reservations).

Routes of the web pages only; they call the same services as the JSON API (`api/`) and share
its request plumbing (`http/`), never its routes.

- `GET /ui/login`: a page whose script (`web/static/login.js`) gets a challenge, has the local
  signing agent (`IDSERVICE_AGENT_URL`) sign it with the USB token, exchanges it at
  `POST /v1/auth/token` and hands the access token to `POST /ui/session`, which keeps it in an
  HttpOnly SameSite=Strict cookie (`web/session.py`), then goes to `next`.
- State-changing requests (`/ui/session`, `/ui/logout`, every form post) must come with the
  service's own `Origin`; the form posts also carry the session's CSRF token.

Every page has the security headers of `web/pages.py` (CSP without inline script) and every
value is HTML-escaped by the templates.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from idservice.auth.bearer import revoke_token
from idservice.http.bodies import json_body
from idservice.http.deps import Svc
from idservice.web import admin_pages, audit_pages, officer_pages, pages, session
from idservice.web.guard import Page, check_post, error_page, guarded, home_url, redirect
from idservice.web.i18n import LANG_COOKIE, LOCALES, locale_of, translations

__all__ = ["router", "stop_background"]

router = APIRouter(include_in_schema=False)


async def stop_background(app: FastAPI) -> None:
    """Cancel a running UI verification (the app's shutdown, before the pool closes)."""
    await audit_pages.stop_background(app)


@router.get("/ui")
@router.get("/ui/")
async def ui_root(request: Request, svc: Svc) -> Response:
    """The start page of the account's role: officers find persons, auditors read events."""

    async def handler(page: Page) -> Response:
        return redirect(home_url(page.principal))

    return await guarded(request, svc, handler)


@router.get("/ui/login")
async def login_page(request: Request, svc: Svc) -> Response:
    agent = svc.settings.agent_url
    locale = locale_of(request)
    return pages.render("login.html", {
        "agent_url": agent, "origin": svc.settings.origin,
        "next": session.safe_next(request.query_params.get("next")),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else "")},
        connect=agent, locale=locale)


@router.get("/ui/lang/{code}")
async def switch_language(request: Request, code: str) -> Response:
    """Remember the language in a cookie and go back where the switch was pressed."""
    target = session.safe_next(request.query_params.get("next"))
    response = redirect(target)
    if code in LOCALES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, path="/ui",
                            samesite="lax", secure=request.url.scheme == "https")
    return response


@router.get("/ui/static/{name}")
async def static_file(name: str) -> Response:
    found = pages.STATIC.get(name)
    if found is None:
        return pages.secure(Response("not found", status_code=404, media_type="text/plain"))
    body, media = found
    return pages.secure(Response(body, media_type=media))


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    access_token: str


@router.post("/ui/session")
async def create_session(request: Request, svc: Svc) -> Response:
    """Keep an officer's or auditor's access token (from `/v1/auth/token`) in the cookie."""
    session.check_origin(request, svc.settings.origin)
    body = await json_body(request, SessionRequest, 16 * 1024)
    principal = await session.principal_for(svc, body.access_token)
    response = Response(status_code=204)
    session.set_cookie(response, body.access_token,
                       principal.expires_at - int(svc.clock.now().timestamp()),
                       svc.settings.origin)
    return pages.secure(response)


@router.post("/ui/logout")
async def logout(request: Request, svc: Svc) -> Response:
    """Revoke the session's token as `POST /v1/auth/logout` does, and drop the cookies."""

    async def handler(page: Page) -> Response:
        await check_post(page)
        await revoke_token(svc.pool, svc.revocation, page.principal, page.rctx)
        response = redirect("/ui/login")
        session.clear_cookie(response, svc.settings.origin)
        return response

    return await guarded(request, svc, handler)


router.include_router(officer_pages.router)
router.include_router(audit_pages.router)
router.include_router(admin_pages.router)


@router.api_route("/ui/{rest:path}", methods=["GET", "HEAD", "POST"])
async def not_found(request: Request) -> Response:
    """Any other address under /ui: an HTML page with a way back, not the API's JSON."""
    gettext = translations(locale_of(request)).gettext
    return error_page(request, gettext(
        "There is no page at this address. Check the address, or go back to the start page."),
        404, title=gettext("Page not found"))

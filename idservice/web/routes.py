"""The auditors' web UI (issue "Tamper-evident audit log", item 6): server-rendered pages.

Routes of the web pages only; they call the same services as the JSON API (`api/`) and share
its request plumbing (`http/`), never its routes.

- `GET /ui/login`: a page whose script (`web/static/login.js`) gets a challenge, has the local
  signing agent (`IDSERVICE_AGENT_URL`) sign it with the USB token, exchanges it at
  `POST /v1/auth/token` and hands the access token to `POST /ui/session`, which keeps it in an
  HttpOnly SameSite=Strict cookie (`web/session.py`).
- `GET /ui/events` (search with the API's filters and cursor), `GET /ui/pins/{pin}` (a PIN's
  access history), `GET /ui/checkpoint` (latest signed checkpoint, last recorded verification,
  "Verify now"). Every read goes through `audit/reads.py`, so it is an `audit.read` event
  exactly as the same read through the API.
- State-changing requests (`/ui/session`, `/ui/logout`, `/ui/checkpoint/verify`) must come with
  the service's own `Origin`; the form posts also carry the session's CSRF token.

Every page has the security headers of `web/pages.py` (CSP without inline script) and every
value is HTML-escaped by the templates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import RedirectResponse, Response

from idservice.audit import reads
from idservice.audit.signed_note import CheckpointError
from idservice.auth.bearer import revoke_token
from idservice.auth.principal import Principal
from idservice.errors import Forbidden, InvalidField, ProblemError, Unauthenticated
from idservice.http.bodies import json_body
from idservice.http.deps import Svc, request_context
from idservice.services import Services
from idservice.web import pages, session
from idservice.web.verification import VerificationRunner

__all__ = ["router", "stop_background"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
ACTIONS = ("pin.issue", "person.read", "person.search", "pin.verify", "person.correct",
           "auth.login", "auth.login_failed", "auth.logout", "audit.read", "audit.verify")
_FIELDS = ("pin", "actor", "action", "since", "until")


@dataclass(frozen=True)
class _Session:
    principal: Principal
    token: str

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.token)

    def context(self, **values: Any) -> dict[str, Any]:
        return {"auditor": f"{self.principal.kind}:{self.principal.id}", "csrf": self.csrf,
                **values}


def _redirect(url: str) -> Response:
    return pages.secure(RedirectResponse(url, status_code=303))


def _runner(app: FastAPI) -> VerificationRunner:
    runner: VerificationRunner | None = getattr(app.state, "ui_verification", None)
    if runner is None:
        runner = app.state.ui_verification = VerificationRunner()
    return runner


async def stop_background(app: FastAPI) -> None:
    """Cancel a running UI verification (the app's shutdown, before the pool closes)."""
    runner: VerificationRunner | None = getattr(app.state, "ui_verification", None)
    if runner is not None:
        await runner.stop()


Handler = Callable[[Request, Services, _Session], Awaitable[Response]]


async def _guarded(request: Request, svc: Services, handler: Handler) -> Response:
    """Authenticate the session like the API (auditor only), then run the page handler; a
    refused session goes to the login page, a problem becomes an error page."""
    token = session.session_token(request)
    try:
        principal = await session.principal_for(svc, token)
    except Unauthenticated:
        response = _redirect("/ui/login")
        if token is not None:
            session.clear_cookie(response, svc.settings.origin)
        return response
    except Forbidden:
        response = pages.render("error.html", {"title": "For auditors only", "login": True,
                                               "error": "This account has no auditor role."},
                                status=403)
        session.clear_cookie(response, svc.settings.origin)
        return response
    assert token is not None
    current = _Session(principal, token)
    try:
        return await handler(request, svc, current)
    except ProblemError as exc:
        return pages.render("error.html", current.context(title=exc.title, error=exc.detail),
                            status=exc.status)


def _check_post(request: Request, svc: Services, current: _Session, csrf: str | None) -> None:
    session.check_origin(request, svc.settings.origin)
    if not session.valid_csrf(current.token, csrf):
        raise Forbidden("missing or wrong CSRF token: reload the page")


# -- login, session, static files --------------------------------------------------------------


@router.get("/ui")
@router.get("/ui/")
async def ui_root() -> Response:
    return _redirect("/ui/events")


@router.get("/ui/login")
async def login_page(svc: Svc) -> Response:
    agent = svc.settings.agent_url
    return pages.render("login.html", {"agent_url": agent, "origin": svc.settings.origin},
                        connect=agent)


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
    """Keep an auditor's access token (from `/v1/auth/token`) in the HttpOnly cookie."""
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
    """Revoke the session's token as `POST /v1/auth/logout` does, and drop the cookie."""

    async def handler(request: Request, svc: Services, current: _Session) -> Response:
        form = await request.form()
        csrf = form.get("csrf")
        _check_post(request, svc, current, csrf if isinstance(csrf, str) else None)
        await revoke_token(svc.pool, svc.revocation, current.principal,
                           request_context(request, current.principal))
        response = _redirect("/ui/login")
        session.clear_cookie(response, svc.settings.origin)
        return response

    return await _guarded(request, svc, handler)


# -- events and PIN history --------------------------------------------------------------------


def _opt(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _utc(value: str | None, field: str) -> str | None:
    """`datetime-local` inputs have no zone: the UI's times are UTC."""
    value = _opt(value)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField("must be a date and time", field=field) from None
    return value if parsed.tzinfo is not None else value + "+00:00"


def _limit(value: str | None) -> int:
    value = _opt(value)
    if value is None:
        return PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= reads.MAX_LIMIT:
        raise InvalidField(f"must be 1 .. {reads.MAX_LIMIT}", field="limit")
    return int(value)


async def _search(request: Request, svc: Services, current: _Session,
                  flt: reads.EventFilter, limit: int, after: str | None) -> dict[str, Any]:
    return await reads.search(svc.pool, current.principal,
                              request_context(request, current.principal), flt, limit, after)


@router.get("/ui/events")
async def events_page(request: Request, svc: Svc) -> Response:

    async def handler(request: Request, svc: Services, current: _Session) -> Response:
        params = request.query_params
        form = {name: params.get(name, "") for name in (*_FIELDS, "after", "limit")}
        form["limit"] = form["limit"] or str(PAGE_SIZE)
        values: dict[str, Any] = {"form": form, "actions": ACTIONS, "events": [],
                                  "searched": bool(params), "next_url": None}
        if not params:
            return pages.render("events.html", current.context(**values))
        try:
            flt = reads.parse_filter(
                pin=_opt(form["pin"]), actor=_opt(form["actor"]), action=_opt(form["action"]),
                since=_utc(form["since"], "since"), until=_utc(form["until"], "until"))
            page = await _search(request, svc, current, flt, _limit(form["limit"]),
                                 _opt(form["after"]))
        except InvalidField as exc:
            field = f" ({exc.field})" if exc.field else ""
            values.update(searched=False, error=f"{exc.detail}{field}")
            return pages.render("events.html", current.context(**values), status=422)
        values["events"] = page["events"]
        if page["next"] is not None:
            kept = {k: v for k, v in form.items() if v and k != "after"}
            values["next_url"] = "/ui/events?" + urlencode(
                {**kept, "after": page["next"], "search": "1"})
        return pages.render("events.html", current.context(**values))

    return await _guarded(request, svc, handler)


@router.get("/ui/pins")
async def pin_lookup(request: Request, svc: Svc) -> Response:
    """The header's PIN box: GET /ui/pins?pin=... -> /ui/pins/{pin}."""

    async def handler(request: Request, svc: Services, current: _Session) -> Response:
        pin = _opt(request.query_params.get("pin"))
        if pin is None:
            return _redirect("/ui/events")
        return _redirect("/ui/pins/" + quote(pin, safe=""))

    return await _guarded(request, svc, handler)


@router.get("/ui/pins/{pin}")
async def pin_page(request: Request, svc: Svc, pin: str) -> Response:

    async def handler(request: Request, svc: Services, current: _Session) -> Response:
        params = request.query_params
        flt = reads.parse_filter(pin=pin)
        limit = _limit(params.get("limit"))
        page = await _search(request, svc, current, flt, limit, _opt(params.get("after")))
        next_url = None
        if page["next"] is not None:
            next_url = f"/ui/pins/{quote(pin, safe='')}?" + urlencode(
                {"after": page["next"], "limit": limit})
        return pages.render("pin.html", current.context(
            pin=pin, events=page["events"], searched=True, next_url=next_url))

    return await _guarded(request, svc, handler)


# -- checkpoint status and verification -------------------------------------------------------


def _checkpoint_view(svc: Services, note: str, created_at: datetime | None) -> dict[str, Any]:
    lines = note.split("\n")
    view: dict[str, Any] = {"note": note, "created_at": created_at,
                            "origin": lines[0] if lines else "",
                            "size": lines[1] if len(lines) > 1 else "",
                            "root": lines[2] if len(lines) > 2 else ""}
    if svc.audit_signer is None:
        view.update(signature_ok=False, signature="not checked: the key is not available")
        return view
    verifier = svc.audit_signer.verifier
    try:
        checkpoint = verifier.verify(note)
    except CheckpointError as exc:
        view.update(signature_ok=False, signature=f"INVALID: {exc}")
        return view
    view.update(signature_ok=True, size=checkpoint.size,
                signature=f"valid, signed by {verifier.name} (key ID {checkpoint.key_id.hex()})")
    return view


@router.get("/ui/checkpoint")
async def checkpoint_page(request: Request, svc: Svc) -> Response:

    async def handler(request: Request, svc: Services, current: _Session) -> Response:
        status = await reads.checkpoint_status(svc.pool, current.principal,
                                               request_context(request, current.principal))
        note = status["note"]
        runner = _runner(request.app)
        return pages.render("checkpoint.html", current.context(
            checkpoint=_checkpoint_view(svc, note, status["created_at"]) if note else None,
            verification=status["verification"], running=runner.running,
            refresh=runner.running or runner.recently_finished(),
            running_since=runner.started_at, rows_done=runner.rows_done))

    return await _guarded(request, svc, handler)


@router.post("/ui/checkpoint/verify")
async def verify_now(request: Request, svc: Svc) -> Response:

    async def handler(request: Request, svc: Services, current: _Session) -> Response:
        form = await request.form()
        csrf = form.get("csrf")
        _check_post(request, svc, current, csrf if isinstance(csrf, str) else None)
        _runner(request.app).start(svc, request_context(request, current.principal))
        return _redirect("/ui/checkpoint")

    return await _guarded(request, svc, handler)

"""Every page behind the session: who is asking, in which language, and what a refusal looks
like (an HTML page that says what to do and links back, never JSON or a stack trace).

`guarded` authenticates the session cookie as the API authenticates a Bearer token, checks the
role the page needs (the role its service function requires, so the page refuses early with a
clear message instead of "requires role auditor"), then runs the page. A missing or ended
session goes to the login page with the current address in `next`, so the typed search (kept
in the query string) comes back after login.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from idservice.audit.events import RequestContext
from idservice.auth.policy import Action, allows
from idservice.auth.principal import Principal
from idservice.errors import Forbidden, ProblemError, Unauthenticated
from idservice.http.deps import request_context
from idservice.services import Services
from idservice.web import pages, session
from idservice.web.i18n import N_, Locale, locale_of, translations
from idservice.web.messages import describe

__all__ = ["ADMIN_PAGES", "AUDIT_PAGES", "NAV", "OFFICER_PAGES", "Page", "check_post",
           "error_page", "guarded", "home_url", "redirect"]

# The header's links, by the role that opens them (the first one the account may open is its
# start page). A page is offered to whoever may do what it shows (auth/policy.py).
OFFICER_PAGES, AUDIT_PAGES = Action.PERSON_READ, Action.AUDIT_EVENTS
ADMIN_PAGES = Action.RESERVATION_ADMIN  # the province administrator's reservations (contract 8)
NAV: tuple[tuple[Action, str, str], ...] = (
    (OFFICER_PAGES, "/ui/persons", N_("Find a person")),
    (AUDIT_PAGES, "/ui/events", N_("Audit events")),
    (AUDIT_PAGES, "/ui/checkpoint", N_("Checkpoint")),
    (ADMIN_PAGES, "/ui/reservations", N_("Offline reservations")),
)
_BACK: dict[Action, str] = {
    OFFICER_PAGES: N_("Back to the search"),
    AUDIT_PAGES: N_("Back to the audit events"),
    ADMIN_PAGES: N_("Back to the reservations"),
}

_ROLE_PAGES: dict[Action, str] = {
    OFFICER_PAGES: N_(
        "This page is for officers (role officer). Your account has no officer role: "
        "use the pages in the menu above, or ask your administrator."),
    AUDIT_PAGES: N_(
        "This page is for auditors (role auditor). Your account is not an auditor's: "
        "use the pages in the menu above, or ask your administrator."),
    ADMIN_PAGES: N_(
        "This page is for the province administrator (role admin). Your account is not an "
        "administrator's: use the pages in the menu above, or ask your administrator."),
}


def redirect(url: str) -> Response:
    return pages.secure(RedirectResponse(url, status_code=303))


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def login_url(request: Request) -> str:
    """The login page, coming back here afterwards (GET pages only: a form post cannot be
    replayed, so it comes back to the start page)."""
    target = _here(request) if request.method == "GET" else "/ui/"
    return "/ui/login?" + urlencode({"next": session.safe_next(target)})


@dataclass(frozen=True)
class Page:
    request: Request
    svc: Services
    principal: Principal
    token: str
    locale: Locale

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.token)

    @property
    def rctx(self) -> RequestContext:
        return request_context(self.request, self.principal)

    def _(self, message: str) -> str:
        return translations(self.locale).gettext(message)

    def has(self, action: Action) -> bool:
        return allows(self.principal, action)

    def context(self, **values: Any) -> dict[str, Any]:
        nav = [(url, label) for role, url, label in NAV if self.has(role)]
        return {"user": self.principal.id, "roles": sorted(self.principal.roles),
                "jurisdiction": self.principal.jurisdiction, "csrf": self.csrf, "nav": nav,
                "here": _here(self.request), **values}

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        return pages.render(template, self.context(**values), status=status,
                            locale=self.locale)

    def error(self, message: str, status: int, *, title: str | None = None,
              back: tuple[str, str] | None = None) -> Response:
        return self.render("error.html", status=status, title=title or self._("Not possible"),
                           message=message, back=back)


def error_page(request: Request, message: str, status: int, *, title: str,
               login: bool = False) -> Response:
    """An error page outside a session (no header menu)."""
    locale = locale_of(request)
    return pages.render("error.html", {"title": title, "message": message, "back": None,
                                       "login": login, "here": _here(request)},
                        status=status, locale=locale)


Handler = Callable[[Page], Awaitable[Response]]


async def guarded(request: Request, svc: Services, handler: Handler, *,
                  action: Action | None = None) -> Response:
    token = session.session_token(request)
    locale = locale_of(request)
    gettext = translations(locale).gettext
    try:
        principal = await session.principal_for(svc, token)
    except Unauthenticated:
        response = redirect(login_url(request))
        if token is not None:
            session.clear_cookie(response, svc.settings.origin)
        return response
    except Forbidden:
        response = error_page(request, gettext(
            "This account has no page here: the web pages are for officers, auditors and "
            "province administrators. Ask your administrator for the right role."), 403,
            title=gettext("No access"), login=True)
        session.clear_cookie(response, svc.settings.origin)
        return response
    assert token is not None
    page = Page(request, svc, principal, token, locale)
    if action is not None and not page.has(action):
        return page.error(page._(_ROLE_PAGES[action]), 403, title=page._("Not for your role"),
                          back=_home(page))
    try:
        return await handler(page)
    except ProblemError as exc:
        return page.error(describe(exc, page._), exc.status, back=_home(page))


def _start(principal: Principal) -> tuple[Action, str]:
    """The first page of the menu this account may open (a session needs one of them)."""
    for action, url, _label in NAV:
        if allows(principal, action):
            return action, url
    return AUDIT_PAGES, "/ui/events"


def _home(page: Page) -> tuple[str, str]:
    action, url = _start(page.principal)
    return url, page._(_BACK[action])


def home_url(principal: Principal) -> str:
    return _start(principal)[1]


async def check_post(page: Page) -> dict[str, str]:
    """A form post from our own page of this session: the Origin and the CSRF token. Returns
    the form's text fields."""
    if page.request.headers.get("origin") != page.svc.settings.origin:
        raise Forbidden("cross-origin request refused", field="csrf")
    form = await page.request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not session.valid_csrf(page.token, fields.get("csrf")):
        raise Forbidden("missing or wrong CSRF token: reload the page", field="csrf")
    return fields

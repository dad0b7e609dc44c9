"""The officers' pages (issue 15, items 1-5 and 4a): find a person, the record, corrections,
undoing an erroneous death registration, the printable PIN notice.

Each page calls the service the JSON API calls (`persons/access.py`, `persons/corrections.py`,
`persons/notice.py`, `persons/history.py`, `audit/reads.py`), so every action is audited
exactly as through the API, with the same role, purpose and jurisdiction rules.

The purpose comes first. No record, no search result and no correction form is shown before
the officer has stated why (`web/purposes.py`); it is remembered for the session in a cookie
bound to the session's token (`web/session.py`), and shown on every page that reads. A request
without one (typed or crafted) gets the purpose form and nothing else: the service is not even
called. Searches are GET forms, so an ended session sends the officer to the login page with
the whole search in `next`, and it comes back filled after login.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from idservice.audit import reads
from idservice.auth.directory import operator_directory
from idservice.auth.policy import Action, covers
from idservice.errors import (
    Forbidden,
    InvalidField,
    NoChange,
    NotFound,
    ProblemError,
    PurposeRequired,
)
from idservice.http.deps import Svc
from idservice.persons import access, corrections, history
from idservice.persons.notice import issue_notice
from idservice.pin.format import is_well_formed, parse_pin
from idservice.web import correction_forms as cf
from idservice.web import session
from idservice.web.formats import parse_day, show_time
from idservice.web.guard import (
    AUDIT_PAGES,
    OFFICER_PAGES,
    Page,
    check_post,
    guarded,
    redirect,
)
from idservice.web.i18n import translations
from idservice.web.messages import describe
from idservice.web.purposes import PURPOSES, purpose_text

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_SEARCH_FIELDS = ("pin", "full_name", "date_of_birth", "province_code")
_ACCESS_ROWS = 20  # "who accessed it" on the record page: the newest events


# -- purpose ----------------------------------------------------------------------------------


def _stated(params: Any) -> str | None:
    """A purpose stated with this request (the purpose fields of a form), or None."""
    if "purpose" not in params:
        return None
    return purpose_text(params.get("purpose"), params.get("purpose_detail"),
                        translations("vi").gettext)


def _purpose(page: Page, params: Any) -> tuple[str | None, bool]:
    """(the purpose for this request, whether it was stated now and must be remembered)."""
    stated = _stated(params)
    if stated is not None:
        return stated, True
    return session.session_purpose(page.request, page.token), False


def _remember(page: Page, response: Response, purpose: str, new: bool) -> Response:
    if new:
        session.set_purpose(response, page.token, purpose,
                            page.principal.expires_at - int(page.svc.clock.now().timestamp()),
                            page.svc.settings.origin)
    return response


def _purpose_values(page: Page, params: Any) -> dict[str, Any]:
    return {"purposes": PURPOSES, "chosen": params.get("purpose", ""),
            "purpose_detail": params.get("purpose_detail", ""),
            "current_purpose": session.session_purpose(page.request, page.token)}


def _ask_purpose(page: Page, params: Any, exc: ProblemError | None = None) -> Response:
    """The purpose form instead of the page asked for (nothing of the record is read)."""
    error = describe(exc or PurposeRequired("purpose required", field="purpose"), page._)
    hidden = {k: v for k, v in params.items() if k not in ("purpose", "purpose_detail")}
    return page.render("purpose.html", status=exc.status if exc else 400, error=error,
                       action=page.request.url.path, hidden=hidden,
                       **_purpose_values(page, params))


# -- helpers ----------------------------------------------------------------------------------


def _province_names(page: Page) -> dict[str, str]:
    """Code -> the name of that code today (codes were reused by the 2025 mergers)."""
    names: dict[str, str] = {}
    for province in page.svc.persons.provinces.all():
        names[province.pin_code] = province.name
    return names


def _registered_in(page: Page, registration: dict[str, Any]) -> str:
    """The province a registration was made in, by its code on its registration date."""
    code = registration["province_code"]
    try:
        return page.svc.persons.provinces.valid_on(
            code, date.fromisoformat(registration["registered_on"])).name
    except (ValueError, KeyError):
        return _province_names(page).get(code, "")


def _outside(page: Page, pin: str) -> Response:
    return page.error(page._(
        "This record belongs to province {code}, outside your jurisdiction ({jur}). Ask an "
        "officer of that province.").format(code=pin[:3], jur=page.principal.jurisdiction),
        403, back=("/ui/persons", page._("Back to the search")))


def _purpose_for_pin(page: Page, params: Any, pin: str) -> Response | tuple[str, bool]:
    """The purpose for a page about one PIN of the officer's jurisdiction, or the page to show
    instead (ask for the purpose, or outside the jurisdiction): one rule for the correction,
    undo-death and notice pages."""
    try:
        purpose, new = _purpose(page, params)
    except ProblemError as exc:
        return _ask_purpose(page, params, exc)
    if purpose is None:
        return _ask_purpose(page, params)
    if not covers(page.principal, Action.PERSON_READ, parse_pin(pin).province_code):
        return _outside(page, pin)
    return purpose, new


def _bad_pin(page: Page) -> Response:
    return page.error(describe(InvalidField("bad PIN", field="pin"), page._), 422,
                      back=("/ui/persons", page._("Back to the search")))


async def _read(page: Page, pin: str, purpose: str) -> dict[str, Any]:
    return await access.read(page.svc.persons, page.principal, page.rctx, pin, purpose)


def _record_url(pin: str) -> str:
    return "/ui/persons/" + quote(pin, safe="")


def _death_in(page: Page, person: dict[str, Any]) -> str:
    """The province of a deceased person's death registration, by its code on that date."""
    death = person.get("death")
    registration = death.get("registration") if isinstance(death, dict) else None
    return _registered_in(page, registration) if isinstance(registration, dict) else ""


# -- find a person ----------------------------------------------------------------------------


@router.get("/ui/persons")
async def search_page(request: Request, svc: Svc) -> Response:

    async def handler(page: Page) -> Response:
        params = request.query_params
        form = {k: params.get(k, "") for k in _SEARCH_FIELDS}
        provinces = _province_names(page)
        jur = page.principal.jurisdiction
        values: dict[str, Any] = {
            "form": form, "results": None, "registered": {},
            "provinces": sorted(provinces.items()),
            "province_names": provinces, "fixed_province": None if jur == "*" else jur,
            **_purpose_values(page, params)}
        if "search" not in params:
            return page.render("search.html", **values)
        try:
            purpose, new = _purpose(page, params)
            if purpose is None:
                raise PurposeRequired("purpose required", field="purpose")
        except ProblemError as exc:
            return page.render("search.html", status=exc.status, error=describe(exc, page._),
                               purpose_missing=True, **values)
        try:
            pin = "".join(form["pin"].split())
            if pin:
                if not is_well_formed(pin):
                    raise InvalidField("bad PIN", field="pin")
                return _remember(page, redirect(_record_url(pin)), purpose, new)
            name = " ".join(form["full_name"].split())
            if not name:
                raise InvalidField("a PIN or a name", field="search")
            dob = None
            if form["date_of_birth"].strip():
                try:
                    dob = parse_day(form["date_of_birth"])
                except ValueError:
                    raise InvalidField("bad date", field="date_of_birth") from None
            province = form["province_code"].strip() or None
            results = await access.search(svc.persons, page.principal, page.rctx,
                                          full_name=name, date_of_birth=dob,
                                          province_code=province, purpose=purpose)
        except ProblemError as exc:
            message = (page._("Type a PIN, or a full name (with the date of birth if you know "
                              "it), then search.")
                       if exc.field == "search" else describe(exc, page._))
            response = page.render("search.html", status=exc.status, error=message, **values)
            return _remember(page, response, purpose, new)
        values.update(results=results, purpose=purpose, limit=access.SEARCH_LIMIT,
                      registered={p["pin"]: _registered_in(page, p["registration"])
                                  for p in results},
                      current_purpose=purpose)
        response = page.render("search.html", **values)
        return _remember(page, response, purpose, new)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


# -- the record -------------------------------------------------------------------------------


@router.get("/ui/persons/{pin}")
async def record_page(request: Request, svc: Svc, pin: str) -> Response:

    async def handler(page: Page) -> Response:
        if not is_well_formed(pin):
            return _bad_pin(page)
        params = request.query_params
        try:
            purpose, new = _purpose(page, params)
        except ProblemError as exc:
            return _ask_purpose(page, params, exc)
        if purpose is None:
            return _ask_purpose(page, params)
        if not covers(page.principal, Action.PERSON_READ, parse_pin(pin).province_code):
            with contextlib.suppress(Forbidden):  # the service refuses and records it
                await _read(page, pin, purpose)
            return _outside(page, pin)
        person = await _read(page, pin, purpose)
        entries = await history.corrections(svc.persons, page.principal, page.rctx, pin,
                                            purpose)
        parents = [(p, person.get(p)) for p in ("father", "mother")]
        linkable = await history.linkable_pins(
            svc.persons, page.principal,
            [p.get("pin") for _, p in parents if p] + [person.get("replaced_by")])
        accesses, names = None, {}
        if page.has(AUDIT_PAGES):
            names = (await operator_directory(svc.pool)).names
            accesses = await reads.browse(svc.pool, page.principal, page.rctx,
                                          reads.parse_filter(pin=pin), _ACCESS_ROWS)
        replaces = sorted({e["pin"] for e in entries if e["earlier_pin"] and e["new_pin"] == pin})
        response = page.render(
            "record.html", person=person, purpose=purpose, history=entries, parents=parents,
            linkable=linkable, accesses=accesses, replaces=replaces, kinds=cf.KINDS,
            labels=cf.FIELD_LABELS, registered_in=_registered_in(page, person["registration"]),
            names=names, death_in=_death_in(page, person))
        return _remember(page, response, purpose, new)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


# -- corrections ------------------------------------------------------------------------------


def _kind_or_none(kind: str) -> cf.Kind | None:
    return cf.KINDS.get(kind)


def _correction_form(page: Page, pin: str, kind: str, person: dict[str, Any],
                     values: dict[str, str], purpose: str, *, error: str | None = None,
                     reason: str = "", status: int = 200) -> Response:
    return page.render("correct_form.html", status=status, pin=pin, kind=kind,
                       spec=cf.KINDS[kind], person=person, values=values, purpose=purpose,
                       error=error, reason=reason, labels=cf.FIELD_LABELS)


@router.get("/ui/persons/{pin}/correct/{kind}")
async def correction_form(request: Request, svc: Svc, pin: str, kind: str) -> Response:

    async def handler(page: Page) -> Response:
        if not is_well_formed(pin):
            return _bad_pin(page)
        if _kind_or_none(kind) is None:
            raise NotFound("no such correction form")
        asked = _purpose_for_pin(page, request.query_params, pin)
        if isinstance(asked, Response):
            return asked
        purpose, new = asked
        person = await _read(page, pin, purpose)
        if person["status"] == "cancelled":
            raise InvalidField(f"replaced by {person['replaced_by']}", field="pin")
        response = _correction_form(page, pin, kind, person, cf.form_values(kind, person),
                                    purpose)
        return _remember(page, response, purpose, new)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


@router.post("/ui/persons/{pin}/correct/{kind}")
async def correction_review(request: Request, svc: Svc, pin: str, kind: str) -> Response:
    """The confirmation page: what changes, and whether a new PIN will replace this one."""

    async def handler(page: Page) -> Response:
        fields = await check_post(page)
        if not is_well_formed(pin):
            return _bad_pin(page)
        if _kind_or_none(kind) is None:
            raise NotFound("no such correction form")
        purpose = session.session_purpose(request, page.token)
        if purpose is None:
            return _ask_purpose(page, {})
        if not covers(page.principal, Action.PERSON_READ, parse_pin(pin).province_code):
            return _outside(page, pin)
        person = await _read(page, pin, purpose)
        reason = fields.get("reason", "")
        try:
            changes = cf.changes_from_form(kind, fields, person)
            cf.validated(changes, reason)
        except InvalidField as exc:
            return _correction_form(page, pin, kind, person, fields, purpose,
                                    error=describe(exc, page._), reason=reason,
                                    status=exc.status)
        return page.render(
            "correct_confirm.html", pin=pin, kind=kind, spec=cf.KINDS[kind], person=person,
            rows=history.field_changes(changes, person), reissue=cf.will_reissue(changes, person),
            changes_json=json.dumps(changes, ensure_ascii=False), reason=reason,
            values=fields, labels=cf.FIELD_LABELS, purpose=purpose)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


@router.post("/ui/persons/{pin}/correct/{kind}/confirm")
async def correction_apply(request: Request, svc: Svc, pin: str, kind: str) -> Response:

    async def handler(page: Page) -> Response:
        fields = await check_post(page)
        if not is_well_formed(pin):
            return _bad_pin(page)
        if _kind_or_none(kind) is None:
            raise NotFound("no such correction form")
        try:
            changes = json.loads(fields.get("changes", ""))
        except ValueError:
            raise InvalidField("not a correction of this page", field="changes") from None
        if not isinstance(changes, dict):
            raise InvalidField("not a correction of this page", field="changes")
        req = cf.validated(changes, fields.get("reason"))
        result = await corrections.correct(svc.persons, page.principal, page.rctx, pin, req)
        return page.render("corrected.html", pin=pin, result=result,
                           reissued=result["pin"] != pin)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


# -- undoing an erroneous death registration (contract 9) -------------------------------------

_UNDO_DEATH = {"status": "active"}


def _not_deceased(page: Page, pin: str) -> Response:
    return page.error(page._(
        "This person is not registered as deceased: there is no death registration to undo. "
        "Go back to the record."), 409, back=(_record_url(pin), page._("Back to the record")))


def _undo_form(page: Page, pin: str, person: dict[str, Any], purpose: str, *,
               reason: str = "", error: str | None = None, status: int = 200) -> Response:
    return page.render("undo_death_form.html", status=status, pin=pin, person=person,
                       purpose=purpose, reason=reason, error=error, hide_undo=True,
                       death_in=_death_in(page, person))


@router.get("/ui/persons/{pin}/undo-death")
async def undo_death_form(request: Request, svc: Svc, pin: str) -> Response:
    """The death registration as recorded, and the reason to undo it (required)."""

    async def handler(page: Page) -> Response:
        if not is_well_formed(pin):
            return _bad_pin(page)
        asked = _purpose_for_pin(page, request.query_params, pin)
        if isinstance(asked, Response):
            return asked
        purpose, new = asked
        person = await _read(page, pin, purpose)
        if person["status"] != "deceased":
            return _remember(page, _not_deceased(page, pin), purpose, new)
        return _remember(page, _undo_form(page, pin, person, purpose), purpose, new)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


@router.post("/ui/persons/{pin}/undo-death")
async def undo_death_review(request: Request, svc: Svc, pin: str) -> Response:
    """The confirmation page: the record becomes active again; nothing changes yet."""

    async def handler(page: Page) -> Response:
        fields = await check_post(page)
        if not is_well_formed(pin):
            return _bad_pin(page)
        purpose = session.session_purpose(request, page.token)
        if purpose is None:
            return _ask_purpose(page, {})
        if not covers(page.principal, Action.PERSON_READ, parse_pin(pin).province_code):
            return _outside(page, pin)
        person = await _read(page, pin, purpose)
        if person["status"] != "deceased":
            return _not_deceased(page, pin)
        reason = fields.get("reason", "")
        try:
            req = cf.validated(_UNDO_DEATH, reason)
        except InvalidField as exc:
            message = (page._("The reason is required: write why this death registration is "
                              "wrong, then review again.")
                       if exc.field == "reason" else describe(exc, page._))
            return _undo_form(page, pin, person, purpose, reason=reason, error=message,
                              status=exc.status)
        return page.render("undo_death_confirm.html", pin=pin, person=person,
                           reason=req.reason)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


@router.post("/ui/persons/{pin}/undo-death/confirm")
async def undo_death_apply(request: Request, svc: Svc, pin: str) -> Response:
    """The correction `{"changes": {"status": "active"}, "reason"}` (audited `person.correct`)."""

    async def handler(page: Page) -> Response:
        fields = await check_post(page)
        if not is_well_formed(pin):
            return _bad_pin(page)
        try:
            req = cf.validated(_UNDO_DEATH, fields.get("reason"))
        except InvalidField as exc:
            if exc.field != "reason":
                raise
            return page.error(page._(
                "The reason is required: go back to the record, open \u201cUndo this death "
                "registration\u201d again and write why it is wrong."), exc.status,
                back=(_record_url(pin), page._("Back to the record")))
        try:
            await corrections.correct(svc.persons, page.principal, page.rctx, pin, req)
        except NoChange:
            return _not_deceased(page, pin)
        return page.render("undo_death_done.html", pin=pin)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)


# -- the PIN notice ---------------------------------------------------------------------------


def _qr_svg(token: str) -> Markup:
    """The QR code as inline SVG (the CSP allows no data: image); segno writes only path data
    from the token's base64url characters."""
    qr = segno.make(token, error="m", micro=False)
    return Markup(qr.svg_inline(scale=3, border=4, dark="#000", light="#fff",  # noqa: S704
                                title=None, svgclass="qr", lineclass=None,
                                omitsize=True))


@router.get("/ui/persons/{pin}/notice")
async def notice_page(request: Request, svc: Svc, pin: str) -> Response:

    async def handler(page: Page) -> Response:
        if not is_well_formed(pin):
            return _bad_pin(page)
        asked = _purpose_for_pin(page, request.query_params, pin)
        if isinstance(asked, Response):
            return asked
        purpose, new = asked
        notice = await issue_notice(svc.persons, svc.keystore, svc.token_key.label,
                                    svc.token_key.kid, svc.settings.origin, page.principal,
                                    page.rctx, pin, purpose)
        person = notice["person"]
        registration = person["registration"]
        response = page.render(
            "notice.html", person=person, token=notice["token"], qr=_qr_svg(notice["token"]),
            province=_registered_in(page, registration),
            back=_record_url(pin), claims=notice["claims"],
            printed=show_time(datetime.fromtimestamp(notice["claims"]["iat"], UTC)))
        return _remember(page, response, purpose, new)

    return await guarded(request, svc, handler, action=OFFICER_PAGES)

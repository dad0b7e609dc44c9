"""The auditors' pages: events (newest first, with previous / first / total), export, a PIN's
access history beside the person's name and status, the checkpoint and "Verify now".

Every read goes through `audit/reads.py` (and `persons/history.summary_for_auditor` for the
name and status on a PIN's page), so it is an `audit.read` event exactly as the same read
through the API. Times are shown in Vietnam time and the time filters are typed in Vietnam time
(`web/formats.py`); the export buttons download what `GET /v1/audit/export` sends for the same
filter (`audit/export_format.py`, one writer).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response, StreamingResponse

from idservice.audit import reads
from idservice.audit.export_format import ExportFormat, export_headers, render_export
from idservice.audit.signed_note import CheckpointError
from idservice.auth.directory import Directory, operator_directory
from idservice.errors import InvalidField
from idservice.http.deps import Svc
from idservice.persons import history
from idservice.pin.format import is_well_formed
from idservice.web import formats, pages
from idservice.web.guard import (
    AUDIT_PAGES,
    Page,
    check_post,
    guarded,
    redirect,
)
from idservice.web.i18n import N_
from idservice.web.messages import describe
from idservice.web.verification import VerificationRunner

__all__ = ["ACTIONS", "router", "stop_background"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
# The actions the service writes (contract 5 and its extensions), for the Action list.
ACTIONS = ("pin.issue", "pin.verify", "pin.notice", "person.read", "person.search",
           "person.history", "person.correct", "auth.login", "auth.login_failed",
           "auth.logout", "auth.rate_limited", "audit.read", "audit.verify")
_FIELDS = ("pin", "actor", "action", "since", "until")


def _runner(app: FastAPI) -> VerificationRunner:
    runner: VerificationRunner | None = getattr(app.state, "ui_verification", None)
    if runner is None:
        runner = app.state.ui_verification = VerificationRunner()
    return runner


async def stop_background(app: FastAPI) -> None:
    runner: VerificationRunner | None = getattr(app.state, "ui_verification", None)
    if runner is not None:
        await runner.stop()


def _opt(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _vietnam(value: str | None, field: str) -> str | None:
    """A `datetime-local` filter typed in Vietnam time, as RFC 3339 for `parse_filter`."""
    value = _opt(value)
    if value is None:
        return None
    try:
        return formats.parse_vietnam_time(value).isoformat()
    except ValueError:
        raise InvalidField("must be a date and time", field=field) from None


def _limit(value: str | None) -> int:
    value = _opt(value)
    if value is None:
        return PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= reads.MAX_LIMIT:
        raise InvalidField(f"must be 1 .. {reads.MAX_LIMIT}", field="limit")
    return int(value)


class _Ambiguous(Exception):
    def __init__(self, ids: list[str]) -> None:
        super().__init__("several operators have this name")
        self.ids = ids


def _actor(value: str | None, directory: Directory) -> str | None:
    """The actor filter: `TYPE:ID`, an id, or an operator's name (diacritics and case
    ignored); a name shared by several operators must be chosen among them."""
    value = _opt(value)
    if value is None or ":" in value or value in directory.names:
        return value
    ids = directory.ids_named(value)
    if len(ids) == 1:
        return f"operator:{ids[0]}"
    if len(ids) > 1:
        raise _Ambiguous(ids)
    return value  # a client id, or nobody: the search says "no events"


def _filter(form: dict[str, str], directory: Directory) -> reads.EventFilter:
    flt = reads.parse_filter(pin=_opt(form["pin"]), actor=_actor(form["actor"], directory),
                             action=_opt(form["action"]),
                             since=_vietnam(form["since"], "since"),
                             until=_vietnam(form["until"], "until"))
    return flt


def _export_urls(form: dict[str, str]) -> dict[str, str]:
    kept = {k: form[k] for k in _FIELDS if form.get(k)}
    return {fmt: "/ui/events/export?" + urlencode({**kept, "format": fmt})
            for fmt in ("csv", "ndjson")}


@router.get("/ui/events")
async def events_page(request: Request, svc: Svc) -> Response:

    async def handler(page: Page) -> Response:
        params = request.query_params
        form = {name: params.get(name, "") for name in (*_FIELDS, "limit")}
        form["limit"] = form["limit"] or str(PAGE_SIZE)
        directory = await operator_directory(svc.pool)
        values: dict[str, Any] = {
            "form": form, "actions": ACTIONS, "events": [], "searched": False,
            "names": directory.names, "choices": [], "exports": _export_urls(form),
            "older_url": None, "newer_url": None, "first_url": None, "total": None}
        try:
            flt = _filter(form, directory)
            if flt.since is not None and flt.until is not None and flt.since >= flt.until:
                values["error"] = page._(
                    "The start ({since}) is after the end ({until}), so no event can match: "
                    "swap the two dates, or clear one of them.").format(
                        since=formats.show_time(flt.since), until=formats.show_time(flt.until))
                return page.render("events.html", status=422, **values)
            limit = _limit(form["limit"])
            result = await reads.browse(svc.pool, page.principal, page.rctx, flt, limit,
                                        before=_opt(params.get("before")),
                                        after=_opt(params.get("after")))
        except _Ambiguous as exc:
            values.update(choices=[(i, directory.name(i)) for i in exc.ids],
                          error=page._("Several operators have this name: choose one below."))
            return page.render("events.html", status=422, **values)
        except InvalidField as exc:
            values["error"] = describe(exc, page._)
            return page.render("events.html", status=422, **values)
        kept = {k: v for k, v in form.items() if v}
        base = "/ui/events?"
        first = base + urlencode(kept)
        values.update(
            searched=True, events=result["events"], total=result["total"],
            capped=result["total_capped"],
            older_url=base + urlencode({**kept, "before": result["older"]})
            if result["older"] else None,
            newer_url=base + urlencode({**kept, "after": result["newer"]})
            if result["newer"] else None,
            first_url=first if result["newer"] else None)
        return page.render("events.html", **values)

    return await guarded(request, svc, handler, action=AUDIT_PAGES)


@router.get("/ui/events/export")
async def export_events(request: Request, svc: Svc) -> Response:
    """The current filter's events as CSV (with a byte-order mark) or NDJSON, downloaded."""

    async def handler(page: Page) -> Response:
        params = request.query_params
        fmt_text = params.get("format", "csv")
        if fmt_text not in ("csv", "ndjson"):
            raise InvalidField("format must be csv or ndjson", field="format")
        fmt: ExportFormat = "csv" if fmt_text == "csv" else "ndjson"
        form = {name: params.get(name, "") for name in _FIELDS}
        directory = await operator_directory(svc.pool)
        try:
            flt = _filter(form, directory)
        except _Ambiguous:
            raise InvalidField("several operators have this name", field="actor") from None
        rows = await reads.export(svc.pool, page.principal, page.rctx, flt, fmt)
        media, headers = export_headers(fmt)
        return pages.secure(StreamingResponse(render_export(rows, fmt), media_type=media,
                                              headers=headers))

    return await guarded(request, svc, handler, action=AUDIT_PAGES)


@router.get("/ui/pins")
async def pin_lookup(request: Request, svc: Svc) -> Response:
    """The header's PIN box: GET /ui/pins?pin=... -> /ui/pins/{pin}."""

    async def handler(page: Page) -> Response:
        pin = "".join((request.query_params.get("pin") or "").split())
        if not pin:
            return redirect("/ui/events")
        return redirect("/ui/pins/" + quote(pin, safe=""))

    return await guarded(request, svc, handler, action=AUDIT_PAGES)


@router.get("/ui/pins/{pin}")
async def pin_page(request: Request, svc: Svc, pin: str) -> Response:

    async def handler(page: Page) -> Response:
        params = request.query_params
        if not is_well_formed(pin):
            return page.error(describe(InvalidField("bad PIN", field="pin"), page._), 422,
                              back=("/ui/events", page._("Back to the audit events")))
        person = await history.summary_for_auditor(svc.persons, page.principal, page.rctx, pin)
        limit = _limit(params.get("limit"))
        result = await reads.browse(svc.pool, page.principal, page.rctx,
                                    reads.parse_filter(pin=pin), limit,
                                    before=_opt(params.get("before")),
                                    after=_opt(params.get("after")))
        directory = await operator_directory(svc.pool)
        base = f"/ui/pins/{quote(pin, safe='')}?"
        return page.render(
            "pin.html", pin=pin, person=person, events=result["events"], searched=True,
            total=result["total"], capped=result["total_capped"], names=directory.names,
            older_url=base + urlencode({"before": result["older"], "limit": limit})
            if result["older"] else None,
            newer_url=base + urlencode({"after": result["newer"], "limit": limit})
            if result["newer"] else None,
            first_url=base + urlencode({"limit": limit}) if result["newer"] else None)

    return await guarded(request, svc, handler, action=AUDIT_PAGES)


# -- checkpoint status and verification -------------------------------------------------------

_NOT_CHECKED = N_("not checked: the key is not available")


def _checkpoint_view(page: Page, note: str, created_at: datetime | None) -> dict[str, Any]:
    svc = page.svc
    lines = note.split("\n")
    view: dict[str, Any] = {"note": note, "created_at": created_at,
                            "origin": lines[0] if lines else "",
                            "size": lines[1] if len(lines) > 1 else "",
                            "root": lines[2] if len(lines) > 2 else ""}
    if svc.audit_signer is None:
        view.update(signature_ok=False, signature=page._(_NOT_CHECKED))
        return view
    verifier = svc.audit_signer.verifier
    try:
        checkpoint = verifier.verify(note)
    except CheckpointError as exc:
        view.update(signature_ok=False,
                    signature=page._("INVALID: {problem}").format(problem=exc))
        return view
    view.update(signature_ok=True, size=checkpoint.size,
                signature=page._("valid, signed by {name} (key ID {key})").format(
                    name=verifier.name, key=checkpoint.key_id.hex()))
    return view


@router.get("/ui/checkpoint")
async def checkpoint_page(request: Request, svc: Svc) -> Response:

    async def handler(page: Page) -> Response:
        status = await reads.checkpoint_status(svc.pool, page.principal, page.rctx)
        note = status["note"]
        runner = _runner(request.app)
        return page.render(
            "checkpoint.html",
            checkpoint=_checkpoint_view(page, note, status["created_at"]) if note else None,
            verification=status["verification"], running=runner.running,
            refresh=runner.running or runner.recently_finished(),
            running_since=runner.started_at, rows_done=runner.rows_done)

    return await guarded(request, svc, handler, action=AUDIT_PAGES)


@router.post("/ui/checkpoint/verify")
async def verify_now(request: Request, svc: Svc) -> Response:

    async def handler(page: Page) -> Response:
        await check_post(page)
        _runner(request.app).start(svc, page.rctx)
        return redirect("/ui/checkpoint")

    return await guarded(request, svc, handler, action=AUDIT_PAGES)

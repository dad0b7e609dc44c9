"""The citizen's page: who used my record, when and why (issue 14 item 5, contract 11).

Server-rendered, Vietnamese, no script at all (works without JavaScript), the security headers
and CSP of `web/pages.py`, templates of their own under `templates/citizen/`. A portal opens a
session for the citizen it authenticated (`POST /datatracker/v2/pageLink`, then the browser
follows the single-use link; `datatracker/sessions.py`):

- `GET /citizen/usage?ticket=...`: swaps the ticket for the session cookie (`idservice_citizen`,
  HttpOnly, SameSite=Lax so it comes along on the portal's link, Path=/citizen) and redirects
  to `/citizen/usage` without the ticket.
- `GET /citizen/usage[?trang=N]`: the usages, newest first, Vietnam time (dd/mm/yyyy HH:mm),
  organisation, system, why, and a "Kiểm chứng" (verify) link per entry; 20 per page.
- `GET /citizen/usage/proof?auditIndex=N`: the proof of one entry, checked here with the
  standalone verifier against the log's published key, with everything needed to check it
  independently; `.../proof.json` downloads it.

Every view calls the same service functions as the API, acting as the portal, so the caller
rules and the `citizen.report` audit events are exactly the API's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from idservice.clock import CIVIL_TIMEZONE
from idservice.datatracker import service, sessions
from idservice.datatracker.service import Period, ProofNotReady
from idservice.datatracker.usage import describe
from idservice.datatracker.verifier import ProofError, verify_proof
from idservice.errors import Forbidden, NotFound, ProblemError, Unauthenticated
from idservice.http.deps import Svc, request_context
from idservice.services import Services
from idservice.web import pages

__all__ = ["COOKIE", "PAGE_SIZE", "router"]

router = APIRouter(include_in_schema=False)

COOKIE = "idservice_citizen"
_PATH = "/citizen"
PAGE_SIZE = 20
_MAX_INDEX = 2**53 - 1

_PROBLEMS: dict[type[ProblemError], tuple[str, str]] = {
    Unauthenticated: ("Phiên xem đã kết thúc",
                      "Đường dẫn đã được dùng, đã hết hạn, hoặc phiên xem đã kết thúc. Vui lòng "
                      "quay lại Cổng dịch vụ công và mở lại trang này."),
    Forbidden: ("Không được xem",
                "Bạn chỉ xem được thông tin của chính mình, hoặc của con chưa đủ 18 tuổi có "
                "ghi tên bạn là cha hoặc mẹ. Vui lòng quay lại Cổng dịch vụ công."),
    NotFound: ("Không tìm thấy",
               "Không có lượt sử dụng thông tin nào như vậy trong hồ sơ của bạn."),
    ProofNotReady: ("Chưa kiểm chứng được",
                    "Lượt sử dụng này vừa được ghi nhận và chưa có trong bản ký xác nhận của "
                    "nhật ký. Vui lòng thử lại sau ít phút."),
}


def vietnam_time(value: str) -> str:
    """An RFC 3339 UTC time as the citizen reads it: Vietnam time, dd/mm/yyyy HH:mm."""
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.astimezone(CIVIL_TIMEZONE).strftime("%d/%m/%Y %H:%M")


def vietnam_date(value: str) -> str:
    return datetime.strptime(value, "%Y-%m-%d").strftime("%d/%m/%Y")


def _error(exc: ProblemError) -> Response:
    title, text = next((v for k, v in _PROBLEMS.items() if isinstance(exc, k)),
                       ("Có lỗi xảy ra", "Hệ thống chưa xử lý được yêu cầu. Vui lòng thử lại "
                        "sau, hoặc quay lại Cổng dịch vụ công."))
    return pages.render("citizen/error.html", {"title": title, "text": text},
                        status=exc.status)


Handler = Callable[[Request, Services, sessions.CitizenSession], Awaitable[Response]]


async def _guarded(request: Request, svc: Services, handler: Handler) -> Response:
    """The page session of the cookie, acting as its portal (revocation checked like a token),
    then the page; every problem becomes a page in Vietnamese."""
    try:
        current = await sessions.load(svc.persons, request.cookies.get(COOKIE))
        svc.revocation.check(current.portal)
        return await handler(request, svc, current)
    except ProblemError as exc:
        return _error(exc)


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 7 \
        and int(value) >= 1 else 1


@router.get("/citizen/usage")
async def usage_page(request: Request, svc: Svc) -> Response:
    ticket = request.query_params.get("ticket")
    if ticket is not None:
        return await _redeem(svc, ticket)

    async def handler(request: Request, svc: Services,
                      current: sessions.CitizenSession) -> Response:
        number = _page_number(request.query_params.get("trang"))
        report = await service.find_usage(
            svc.persons, current.portal, request_context(request, current.portal),
            requester=current.requester, subject=current.subject, period=Period(),
            offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE, channel="page")
        rows = [{**u, "when": vietnam_time(u["logtime"]),
                 "hidden_until": vietnam_date(u["hiddenUntil"]) if "hiddenUntil" in u else None}
                for u in report["usages"]]
        total = report["totalUsages"]
        return pages.render("citizen/usage.html", {
            "usages": rows, "total": total, "page": number,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "own": current.requester == current.subject, "subject": current.subject,
            "session_end": current.expires_at.astimezone(CIVIL_TIMEZONE).strftime("%H:%M")})

    return await _guarded(request, svc, handler)


async def _redeem(svc: Services, ticket: str) -> Response:
    try:
        secret, current = await sessions.redeem(svc.persons, ticket)
    except ProblemError as exc:
        return _error(exc)
    response = pages.secure(RedirectResponse("/citizen/usage", status_code=303))
    max_age = int((current.expires_at - svc.clock.now()).total_seconds())
    response.set_cookie(COOKIE, secret, max_age=max(0, max_age), path=_PATH, httponly=True,
                        samesite="lax", secure=svc.settings.origin.startswith("https://"))
    return response


def _index(request: Request) -> int:
    value = request.query_params.get("auditIndex", "")
    if not (value.isascii() and value.isdigit() and len(value) <= 16) \
            or int(value) > _MAX_INDEX:
        raise NotFound("no such usage")
    return int(value)


async def _proof(request: Request, svc: Services,
                 current: sessions.CitizenSession) -> dict[str, Any]:
    return await service.proof(svc.persons, current.portal,
                               request_context(request, current.portal),
                               requester=current.requester, index=_index(request),
                               subject=current.subject, channel="page")


@router.get("/citizen/usage/proof")
async def proof_page(request: Request, svc: Svc) -> Response:

    async def handler(request: Request, svc: Services,
                      current: sessions.CitizenSession) -> Response:
        found = await _proof(request, svc, current)
        event = found["event"]
        values: dict[str, Any] = {
            "index": found["leaf_index"], "tree_size": found["tree_size"],
            "hashes": found["hashes"], "checkpoint": found["checkpoint"], "event": event,
            "when": vietnam_time(event["at"]),
            "action": describe(event["action"], event["purpose"], event["details"]),
            "verified": False, "problem": None, "key_id": None, "root": None}
        if svc.audit_signer is None:
            values["problem"] = "khóa ký của nhật ký chưa sẵn sàng"
        else:
            key = svc.audit_signer.verifier
            try:
                checked = verify_proof(found, key.public_pem().encode(), key_name=key.name,
                                       pin=current.subject)
                values.update(verified=True, key_id=checked.key_id.hex(),
                              root=found["checkpoint"].split("\n")[2])
            except ProofError as exc:
                values["problem"] = str(exc)
        return pages.render("citizen/proof.html", values)

    return await _guarded(request, svc, handler)


@router.get("/citizen/usage/proof.json")
async def proof_download(request: Request, svc: Svc) -> Response:

    async def handler(request: Request, svc: Services,
                      current: sessions.CitizenSession) -> Response:
        found = await _proof(request, svc, current)
        body = json.dumps(found, ensure_ascii=False, indent=2).encode()
        return pages.secure(Response(body, media_type="application/json", headers={
            "Content-Disposition":
                f'attachment; filename="bang-chung-{found["leaf_index"]}.json"'}))

    return await _guarded(request, svc, handler)


@router.get("/citizen/static/citizen.css")
async def stylesheet() -> Response:
    body, media = pages.STATIC["citizen.css"]
    return pages.secure(Response(body, media_type=media))


"""The province administrator's page (issue 15 item 4, contract 8): the offline offices'
reservations of the province, and the release of one when a laptop is lost.

Thin adapters over `persons/reservations.py`, the functions the JSON API calls: the list
(`list_for_admin`: the administrator's province only, `*` sees every province), one
reservation (`get`: 403 for another province), and its release (`release`: audited
`pin.release`, a refusal audited as `refused`). A release is a form post with the Origin and
the session's CSRF token (`guard.check_post`), after a confirmation page that says what
releasing does and what the office must do next.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from idservice.errors import Forbidden, NotFound
from idservice.http.deps import Svc
from idservice.persons import reservations
from idservice.web.guard import ADMIN_PAGES, Page, check_post, guarded

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_ID_MAX = 64  # as the API cuts a reservation id from the address
_LIST = "/ui/reservations"


def _shown(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A reservation as the pages show it: times as instants, and its state
    (`open`, `expired`, `released`)."""
    issued = datetime.fromtimestamp(body["iat"], UTC)
    expires = datetime.fromtimestamp(body["exp"], UTC)
    state = ("released" if body["released_at"] is not None
             else "expired" if now >= expires else "open")
    return {**body, "issued": issued, "expires": expires, "state": state,
            "url": f"{_LIST}/{quote(body['reservation_id'], safe='')}/release"}


def _unknown(page: Page) -> Response:
    return page.error(page._("No reservation has this number: go back to the list of "
                             "reservations and choose one there."), 404,
                      back=(_LIST, page._("Back to the reservations")))


def _elsewhere(page: Page) -> Response:
    return page.error(page._("This reservation belongs to an office of another province: only "
                             "that province's administrator can see or release it. Go back to "
                             "the reservations of your province."), 403,
                      back=(_LIST, page._("Back to the reservations")))


@router.get("/ui/reservations")
async def reservations_page(request: Request, svc: Svc) -> Response:

    async def handler(page: Page) -> Response:
        now = svc.clock.now()
        found = await reservations.list_for_admin(svc.persons, page.principal)
        return page.render("reservations.html", items=[_shown(r, now) for r in found],
                           limit=reservations.LIST_LIMIT)

    return await guarded(request, svc, handler, action=ADMIN_PAGES)


@router.get("/ui/reservations/{reservation_id}/release")
async def release_confirm(request: Request, svc: Svc, reservation_id: str) -> Response:
    """The confirmation page: the reservation, and what releasing it does."""

    async def handler(page: Page) -> Response:
        try:
            body = await reservations.get(svc.persons, page.principal,
                                          reservation_id[:_ID_MAX])
        except NotFound:
            return _unknown(page)
        except Forbidden:
            return _elsewhere(page)
        return page.render("reservation_release.html", r=_shown(body, svc.clock.now()))

    return await guarded(request, svc, handler, action=ADMIN_PAGES)


@router.post("/ui/reservations/{reservation_id}/release")
async def release_apply(request: Request, svc: Svc, reservation_id: str) -> Response:

    async def handler(page: Page) -> Response:
        await check_post(page)
        try:
            body = await reservations.release(svc.persons, page.principal, page.rctx,
                                              reservation_id[:_ID_MAX])
        except NotFound:
            return _unknown(page)
        except Forbidden:  # audited by the service as a refused `pin.release`
            return _elsewhere(page)
        return page.render("reservation_released.html", r=_shown(body, svc.clock.now()))

    return await guarded(request, svc, handler, action=ADMIN_PAGES)

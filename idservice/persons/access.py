"""Reads, searches and verifications of person records, each audited in its transaction."""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Callable
from datetime import date
from typing import Any, Literal, TypeVar

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Principal, Role
from idservice.errors import Forbidden, InvalidField, NotFound, PurposeRequired
from idservice.persons.context import PersonsContext
from idservice.persons.models import VerifyRequest
from idservice.persons.names import check_text, fold_name
from idservice.persons.views import person_view
from idservice.pin.format import is_well_formed
from idservice.queries import persons as q

__all__ = ["SEARCH_LIMIT", "check_purpose", "check_record", "read", "same_name", "search",
           "verify"]

SEARCH_LIMIT = 100
T = TypeVar("T")


def check_purpose(purpose: str | None) -> str:
    if purpose is None or not purpose.strip():
        raise PurposeRequired("state the purpose of this access in `purpose`", field="purpose")
    try:
        return check_text(purpose, max_length=500)
    except ValueError as exc:
        raise InvalidField(f"purpose {exc}", field="purpose") from exc


def check_pin(pin: str, field: str = "pin") -> str:
    if not is_well_formed(pin):
        raise InvalidField("must be a well-formed PIN: 12 ASCII digits", field=field)
    return pin


async def _audit_denied(ctx: PersonsContext, rctx: RequestContext, event: AuditEvent) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await record(conn, rctx, [event])


async def _in_jurisdiction(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str, action: str,
    purpose: str, details: dict[str, Any],
) -> None:
    """Refuse (audited) a PIN outside the caller's jurisdiction (contract 3.3, 7)."""
    if not principal.covers(pin[:3]):
        await _audit_denied(ctx, rctx, AuditEvent(action, "forbidden", pin=pin, purpose=purpose,
                                                  details=details))
        raise Forbidden(f"jurisdiction {principal.jurisdiction} does not cover this PIN")


async def read(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    purpose: str | None, *, roles: tuple[Role, ...] = ("officer",),
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record, audited as `person.read`. `roles` and `details` are for the interfaces
    that read on other terms (OSIA Data Access: `reader` clients, `details.osia`)."""
    principal.require_role(*roles)
    purpose = check_purpose(purpose)
    check_pin(pin)
    details = details or {}
    await _in_jurisdiction(ctx, principal, rctx, pin, "person.read", purpose, details)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.GET_PERSON, pin)
        outcome = "found" if row is not None else "not_found"
        await record(conn, rctx, [AuditEvent("person.read", outcome, pin=pin, purpose=purpose,
                                             details=details)])
    if row is None:
        raise NotFound("no person with this PIN")
    return person_view(row)


async def check_record(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    purpose: str | None, judge: Callable[[dict[str, Any]], tuple[bool, T]], *,
    roles: tuple[Role, ...], details: dict[str, Any],
) -> T:
    """Verification on a record's attributes without handing the record out (OSIA match and
    verify): `judge` sees the record and returns (matched, answer); audited as `pin.verify`
    with outcome match/no_match, in the caller's jurisdiction, with a purpose, like a read."""
    principal.require_role(*roles)
    purpose = check_purpose(purpose)
    check_pin(pin)
    await _in_jurisdiction(ctx, principal, rctx, pin, "pin.verify", purpose, details)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.GET_PERSON, pin)
        if row is None:
            await record(conn, rctx, [AuditEvent("pin.verify", "not_found", pin=pin,
                                                 purpose=purpose, details=details)])
        else:
            matched, answer = judge(person_view(row))
            await record(conn, rctx, [AuditEvent("pin.verify", "match" if matched else
                                                 "no_match", pin=pin, purpose=purpose,
                                                 details=details)])
    if row is None:
        raise NotFound("no person with this PIN")
    return answer


def _normal_name(value: str) -> bytes:
    """Verification compares names with case and spacing ignored, diacritics significant."""
    return " ".join(unicodedata.normalize("NFC", value).casefold().split()).encode()


def same_name(recorded: str, given: str) -> bool:
    """Name equality as verification sees it (constant time over the normalised bytes)."""
    return hmac.compare_digest(_normal_name(recorded), _normal_name(given))


async def verify(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, req: VerifyRequest
) -> bool:
    principal.require_role("registrar", "officer")
    check_pin(req.pin)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.VERIFY, req.pin)
        match = False
        if row is not None:
            match = (same_name(row["full_name"], req.full_name)
                     and row["date_of_birth"] == req.date_of_birth)
        await record(conn, rctx, [AuditEvent("pin.verify", "match" if match else "no_match",
                                             pin=req.pin)])
    return match


async def search(
    ctx: PersonsContext,
    principal: Principal,
    rctx: RequestContext,
    *,
    full_name: str | None,
    date_of_birth: date | None,
    province_code: str | None,
    purpose: str | None,
    match: Literal["folded", "exact"] = "folded",
) -> list[dict[str, Any]]:
    principal.require_role("officer")
    purpose = check_purpose(purpose)
    if full_name is None:
        raise InvalidField("full_name is required", field="full_name")
    try:
        full_name = check_text(full_name)
    except ValueError as exc:
        raise InvalidField(f"full_name {exc}", field="full_name") from exc
    if province_code is not None and not (len(province_code) == 3 and province_code.isdigit()
                                          and province_code.isascii()):
        raise InvalidField("province_code must be 3 digits", field="province_code")
    if principal.jurisdiction != "*":
        if province_code not in (None, principal.jurisdiction):
            raise Forbidden(f"jurisdiction {principal.jurisdiction} does not cover "
                            f"province {province_code}", field="province_code")
        province_code = principal.jurisdiction
    criteria = {"full_name": full_name,
                "date_of_birth": date_of_birth.isoformat() if date_of_birth else None,
                "province_code": province_code, "match": match}
    folded = fold_name(full_name)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if match == "exact":
            rows = await conn.fetch(q.SEARCH_EXACT, full_name, date_of_birth, province_code,
                                    SEARCH_LIMIT, folded)
        else:
            rows = await conn.fetch(q.SEARCH_FOLDED, folded, date_of_birth, province_code,
                                    SEARCH_LIMIT)
        events = [AuditEvent("person.search", "found", pin=r["pin"], purpose=purpose,
                             details={"criteria": criteria}) for r in rows]
        if not events:
            events = [AuditEvent("person.search", "not_found", purpose=purpose,
                                 details={"criteria": criteria})]
        await record(conn, rctx, events)
    return [person_view(r) for r in rows]

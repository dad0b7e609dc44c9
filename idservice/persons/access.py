"""Reads, searches and verifications of person records, each audited in its transaction."""

from __future__ import annotations

import hmac
import unicodedata
from datetime import date
from typing import Any, Literal

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Principal
from idservice.errors import Forbidden, InvalidField, NotFound, ProblemError, PurposeRequired
from idservice.persons.context import PersonsContext
from idservice.persons.covert import Covert, parse_covert
from idservice.persons.models import VerifyRequest
from idservice.persons.names import check_text, fold_name
from idservice.persons.views import person_view
from idservice.pin.format import is_well_formed
from idservice.queries import persons as q

__all__ = ["SEARCH_LIMIT", "check_purpose", "read", "search", "verify"]

SEARCH_LIMIT = 100


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


async def _covert(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                  hidden_until: str | None, legal_basis: str | None,
                  refused: AuditEvent) -> dict[str, Any]:
    """The details a covert read or search adds to its events ({} for an ordinary one). A
    refused attempt to hide an access is itself recorded: auditors want to see those."""
    try:
        covert: Covert | None = parse_covert(principal, hidden_until, legal_basis,
                                             today=ctx.clock.today(),
                                             max_days=ctx.max_hidden_days)
    except ProblemError as exc:
        outcome = "forbidden" if isinstance(exc, Forbidden) else "refused"
        await _audit_denied(ctx, rctx, AuditEvent(
            refused.action, outcome, pin=refused.pin, purpose=refused.purpose,
            details={"code": exc.code, "covert": True}))
        raise
    return covert.details() if covert else {}


async def read(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    purpose: str | None, *, hidden_until: str | None = None, legal_basis: str | None = None,
) -> dict[str, Any]:
    principal.require_role("officer")
    purpose = check_purpose(purpose)
    check_pin(pin)
    covert = await _covert(ctx, principal, rctx, hidden_until, legal_basis,
                           AuditEvent("person.read", "refused", pin=pin, purpose=purpose))
    if not principal.covers(pin[:3]):
        await _audit_denied(ctx, rctx, AuditEvent("person.read", "forbidden", pin=pin,
                                                  purpose=purpose))
        raise Forbidden(f"jurisdiction {principal.jurisdiction} does not cover this PIN")
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.GET_PERSON, pin)
        outcome = "found" if row is not None else "not_found"
        await record(conn, rctx, [AuditEvent("person.read", outcome, pin=pin, purpose=purpose,
                                             details=covert)])
    if row is None:
        raise NotFound("no person with this PIN")
    return person_view(row)


def _normal_name(value: str) -> bytes:
    """Verification compares names with case and spacing ignored, diacritics significant."""
    return " ".join(unicodedata.normalize("NFC", value).casefold().split()).encode()


async def verify(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, req: VerifyRequest
) -> bool:
    principal.require_role("registrar", "officer")
    check_pin(req.pin)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.VERIFY, req.pin)
        match = False
        if row is not None:
            same_name = hmac.compare_digest(_normal_name(row["full_name"]),
                                            _normal_name(req.full_name))
            same_dob = row["date_of_birth"] == req.date_of_birth
            match = same_name and same_dob
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
    hidden_until: str | None = None,
    legal_basis: str | None = None,
) -> list[dict[str, Any]]:
    principal.require_role("officer")
    purpose = check_purpose(purpose)
    covert = await _covert(ctx, principal, rctx, hidden_until, legal_basis,
                           AuditEvent("person.search", "refused", purpose=purpose))
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
                             details={"criteria": criteria, **covert}) for r in rows]
        if not events:
            events = [AuditEvent("person.search", "not_found", purpose=purpose,
                                 details={"criteria": criteria, **covert})]
        await record(conn, rctx, events)
    return [person_view(r) for r in rows]

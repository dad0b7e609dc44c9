"""Reads, searches and verifications of person records, each audited in its transaction (a
verification: its event is committed before the answer leaves, `verify`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Literal, TypeVar

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.auth.rate_limit import limit_refusal
from idservice.errors import InvalidField, NotFound, PurposeRequired
from idservice.persons.context import PersonsContext
from idservice.persons.covert import parse_covert
from idservice.persons.models import VerifyRequest
from idservice.persons.names import check_text, fold_name
from idservice.persons.refusals import refusals_recorded
from idservice.persons.rules import check_province_exists
from idservice.persons.verification import Verification, verify_alone
from idservice.persons.views import person_view
from idservice.pin.format import is_well_formed
from idservice.queries import persons as q

__all__ = ["SEARCH_LIMIT", "check_purpose", "check_record", "read", "search", "verify"]

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


async def _covert(ctx: PersonsContext, principal: Principal, rctx: RequestContext, action: str,
                  *, pin: str | None, purpose: str, hidden_until: str | None,
                  legal_basis: str | None) -> dict[str, Any]:
    """The details a covert read or search adds to its events ({} for an ordinary one). A
    refused attempt to hide an access is itself recorded (`details.covert`): auditors want to
    see those."""
    async with refusals_recorded(ctx, rctx, action, pin=pin, purpose=purpose, covert=True):
        covert = parse_covert(principal, hidden_until, legal_basis, today=ctx.clock.today(),
                              max_days=ctx.max_hidden_days)
    return covert.details() if covert else {}


async def read(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    purpose: str | None, *, action: Action = Action.PERSON_READ,
    details: dict[str, Any] | None = None, hidden_until: str | None = None,
    legal_basis: str | None = None,
) -> dict[str, Any]:
    """The record, audited as `person.read`. `action` and `details` are for the interfaces
    that read on other terms (OSIA Data Access: `reader` clients, `details.osia`);
    `hidden_until` and `legal_basis` make it a covert read (contract 11, persons/covert.py)."""
    authorize(principal, action)
    purpose = check_purpose(purpose)
    check_pin(pin)
    details = {**(details or {}),
               **await _covert(ctx, principal, rctx, "person.read", pin=pin, purpose=purpose,
                               hidden_until=hidden_until, legal_basis=legal_basis)}
    async with refusals_recorded(ctx, rctx, "person.read", pin=pin, purpose=purpose, **details):
        require_jurisdiction(principal, action, pin=pin)
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q.GET_PERSON, pin)
            if row is None:
                raise NotFound("no person with this PIN: check the number")
            await record(conn, rctx, [AuditEvent("person.read", "found", pin=pin,
                                                 purpose=purpose, details=details)])
    return person_view(row)


async def check_record(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    purpose: str | None, judge: Callable[[dict[str, Any]], tuple[bool, T]], *,
    action: Action, details: dict[str, Any],
) -> T:
    """Verification on a record's attributes without handing the record out (OSIA match and
    verify): `judge` sees the record and returns (matched, answer); audited as `pin.verify`
    with outcome match/no_match, in the caller's jurisdiction, with a purpose, like a read."""
    authorize(principal, action)
    purpose = check_purpose(purpose)
    check_pin(pin)
    async with refusals_recorded(ctx, rctx, "pin.verify", pin=pin, purpose=purpose, **details):
        require_jurisdiction(principal, action, pin=pin)
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q.GET_PERSON, pin)
            if row is None:
                raise NotFound("no person with this PIN: check the number")
            matched, answer = judge(person_view(row))
            await record(conn, rctx, [AuditEvent("pin.verify", "match" if matched else
                                                 "no_match", pin=pin, purpose=purpose,
                                                 details=details)])
    return answer


async def verify(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, req: VerifyRequest, *,
    limit: int,
) -> bool:
    """The caller's count (at most `limit` a minute, 0 = none), the record's name and birth
    date, then the `pin.verify` event, committed before the answer leaves (a verification
    that cannot be audited is not answered): persons/verification.py, with the other
    verifications of this worker waiting at the same moment when `ctx.verifier` is set."""
    authorize(principal, Action.PIN_VERIFY)
    check_pin(req.pin)
    v = Verification(req.pin, req.full_name, req.date_of_birth,
                     f"{principal.kind}:{principal.id}"[:128], limit, rctx)
    answer = await (ctx.verifier.submit(v) if ctx.verifier is not None
                    else verify_alone(ctx.pool, v))
    if answer.retry_after is not None:
        raise limit_refusal(limit, "PIN verifications", answer.retry_after)
    return answer.match


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
    authorize(principal, Action.PERSON_SEARCH)
    purpose = check_purpose(purpose)
    covert = await _covert(ctx, principal, rctx, "person.search", pin=None, purpose=purpose,
                           hidden_until=hidden_until, legal_basis=legal_basis)
    if full_name is None:
        raise InvalidField("full_name is required", field="full_name")
    try:
        full_name = check_text(full_name)
    except ValueError as exc:
        raise InvalidField(f"full_name {exc}", field="full_name") from exc
    if province_code is not None and not (len(province_code) == 3 and province_code.isdigit()
                                          and province_code.isascii()):
        raise InvalidField("province_code must be 3 digits", field="province_code")
    if province_code is not None:
        check_province_exists(ctx.provinces, province_code, "province_code")
        require_jurisdiction(principal, Action.PERSON_SEARCH, province_code=province_code,
                             field="province_code")
    if principal.jurisdiction != "*":  # a province's officer searches only that province
        province_code = principal.jurisdiction
    criteria = {"full_name": full_name,
                "date_of_birth": date_of_birth.isoformat() if date_of_birth else None,
                "province_code": province_code, "match": match}
    folded = fold_name(full_name)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if match == "exact":
            rows = await conn.fetch(q.SEARCH_EXACT, folded, date_of_birth, province_code,
                                    SEARCH_LIMIT, full_name)
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

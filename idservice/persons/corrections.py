"""Corrections of person records, with history (contract section 4).

Name, place or parent corrections keep the PIN. A change of sex or birth year changes what the
PIN encodes (G and YY), so it issues a new PIN in the right bucket, cancels the old one with
`replaced_by`, and keeps the old record, never freeing its number.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Principal
from idservice.errors import InvalidField, NotFound, ProblemError
from idservice.persons.access import check_pin
from idservice.persons.allocation import claim_pins
from idservice.persons.context import PersonsContext
from idservice.persons.models import CorrectionRequest, IssueRequest
from idservice.persons.refusals import refusals_recorded
from idservice.persons.rows import PersonRow
from idservice.persons.rules import check_birth_year, check_child
from idservice.persons.views import canonical_json, load_record, person_view
from idservice.pin.format import parse_pin
from idservice.queries import persons as q

__all__ = ["correct"]

_CHILD_FIELDS = ("full_name", "other_names", "sex", "date_of_birth", "place_of_birth",
                 "home_town", "ethnicity", "nationality")


def _apply(old: dict[str, Any], changes: dict[str, Any]) -> IssueRequest:
    new = json.loads(json.dumps(old))
    for key, value in changes.items():
        if key in _CHILD_FIELDS:
            new["child"][key] = value
        else:
            new[key] = value
    try:
        return IssueRequest.model_validate_json(json.dumps(new))
    except ValidationError as exc:  # pragma: no cover - each change was validated already
        raise InvalidField(str(exc.errors()[0]["msg"]), field="changes") from exc


async def correct(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    req: CorrectionRequest,
) -> dict[str, Any]:
    """Apply a correction; every refusal once the PIN is known is audited (contract 7)."""
    principal.require_role("officer")
    check_pin(pin)
    changes = req.changes.as_dict()
    if req.changes.date_of_birth is not None:  # needs no record: refused before any lookup
        check_birth_year(req.changes.date_of_birth, field="changes.date_of_birth")
    async with refusals_recorded(ctx, rctx, "person.correct", pin=pin):
        principal.require_jurisdiction(parse_pin(pin).province_code, field="pin")
        return await _correct(ctx, rctx, pin, req.reason, changes)


async def _correct(ctx: PersonsContext, rctx: RequestContext, pin: str, reason: str,
                   changes: dict[str, Any]) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(q.GET_PERSON_FOR_UPDATE, pin)
        if current is None:
            raise NotFound("no person with this PIN: check the number")
        if current["status"] == "cancelled":
            raise InvalidField(f"this PIN was replaced by {current['replaced_by']}; correct that "
                               "record instead", field="pin")
        old = load_record(current["record"])
        new_req = _apply(old, changes)
        check_child(new_req.child, new_req.registration.registered_on, prefix="changes")
        row = PersonRow.of(new_req, canonical_json(new_req.model_dump(mode="json")))
        actor = rctx.actor
        if row.prefix == parse_pin(pin).prefix:  # sex and birth year unchanged: same PIN
            await conn.execute(q.PERSON_UPDATE, pin, row.composite())
            await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, reason,
                               canonical_json(changes), canonical_json(old), None)
            await record(conn, rctx, [AuditEvent(
                "person.correct", "corrected", pin=pin,
                details={"fields": sorted(changes), "reason": reason})])
            updated = await conn.fetchrow(q.GET_PERSON, pin)
            assert updated is not None
            return person_view(updated)

        [claim] = await claim_pins(conn, ctx, [row])
        if isinstance(claim, ProblemError):
            raise claim
        new_pin = claim.pin
        await conn.execute(q.CANCEL, pin, new_pin)
        await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, reason,
                           canonical_json(changes), canonical_json(old), new_pin)
        await record(conn, rctx, [
            AuditEvent("person.correct", "reissued", pin=pin,
                       details={"fields": sorted(changes), "reason": reason,
                                "new_pin": new_pin}),
            AuditEvent("pin.issue", "issued", pin=new_pin, details={"replaces": pin}),
        ])
        reissued = await conn.fetchrow(q.GET_PERSON, new_pin)
        assert reissued is not None
        view = person_view(reissued)
        view["replaces"] = pin
        return view

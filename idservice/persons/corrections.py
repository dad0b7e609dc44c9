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
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.errors import InvalidField, NotFound, PinSpaceExhaustedError, Unavailable
from idservice.persons.access import check_pin
from idservice.persons.bucket_store import PgBucketStore
from idservice.persons.context import PersonsContext
from idservice.persons.models import CorrectionRequest, IssueRequest
from idservice.persons.names import fold_name
from idservice.persons.rules import check_child
from idservice.persons.views import canonical_json, load_record, person_view
from idservice.pin.allocator import AllocationContention, PinSpaceExhausted, allocate
from idservice.pin.format import bucket_prefix
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
    authorize(principal, Action.PERSON_CORRECT)
    check_pin(pin)
    require_jurisdiction(principal, Action.PERSON_CORRECT, pin=pin, field="pin")
    changes = req.changes.as_dict()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.GET_PERSON_FOR_UPDATE, pin)
        if row is None:
            raise NotFound("no person with this PIN")
        if row["status"] == "cancelled":
            raise InvalidField(f"this PIN was replaced by {row['replaced_by']}; correct that "
                               "record instead", field="pin")
        old = load_record(row["record"])
        new_req = _apply(old, changes)
        check_child(new_req.child, new_req.registration.registered_on, prefix="changes")
        new_record = new_req.model_dump(mode="json")
        child = new_req.child
        old_child = old["child"]
        reissue = (child.sex != old_child["sex"]
                   or child.date_of_birth.year != int(old_child["date_of_birth"][:4]))
        folded = [fold_name(n) for n in child.other_names]
        actor = rctx.actor
        if not reissue:
            await conn.execute(q.UPDATE_RECORD, pin, canonical_json(new_record), child.full_name,
                               fold_name(child.full_name), folded)
            await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, req.reason,
                               canonical_json(changes), canonical_json(old), None)
            await record(conn, rctx, [AuditEvent(
                "person.correct", "corrected", pin=pin,
                details={"fields": sorted(changes), "reason": req.reason})])
            current = await conn.fetchrow(q.GET_PERSON, pin)
            assert current is not None
            return person_view(current)

        prefix = bucket_prefix(pin[:3], child.date_of_birth.year, child.sex)
        reg = new_req.registration
        columns = [reg.authority, reg.number, reg.registered_on, reg.province_code,
                   child.full_name, fold_name(child.full_name), folded, child.sex,
                   child.date_of_birth, canonical_json(new_record)]
        store = PgBucketStore(conn, prefix, columns, ctx.allocator)
        try:
            await allocate(store, ctx.rng, ctx.allocator, bucket=prefix)
        except PinSpaceExhausted as exc:
            raise PinSpaceExhaustedError(f"all numbers of bucket {prefix} are used") from exc
        except AllocationContention as exc:
            raise Unavailable("too much contention for free numbers; retry") from exc
        assert store.claimed is not None
        new_pin: str = store.claimed["pin"]
        await conn.execute(q.CANCEL, pin, new_pin)
        await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, req.reason,
                           canonical_json(changes), canonical_json(old), new_pin)
        await record(conn, rctx, [
            AuditEvent("person.correct", "reissued", pin=pin,
                       details={"fields": sorted(changes), "reason": req.reason,
                                "new_pin": new_pin}),
            AuditEvent("pin.issue", "issued", pin=new_pin, details={"replaces": pin}),
        ])
        current = await conn.fetchrow(q.GET_PERSON, new_pin)
        assert current is not None
        view = person_view(current)
        view["replaces"] = pin
        return view

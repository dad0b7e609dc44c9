"""Corrections of person records, with history (contract section 4).

Name, place or parent corrections keep the PIN. A change of sex or birth year changes what the
PIN encodes (G and YY), so it issues a new PIN in the right bucket, cancels the old one with
`replaced_by`, and keeps the old record, never freeing its number.

Contract 7: the changes are merged into the record (`merge`), never erase by accident; a
correction that changes nothing is `no_change`; the `person.correct` event carries `before`
and `after` of every field that changed (`differences`). The history row keeps the request's
changes and the whole previous record.

Contract 9: `{"status": "active"}` undoes an erroneous death registration (the record is
active again, its `death` kept in the history and the event); a deceased person's record may
be corrected in place, but a change of sex or birth year, which would reissue the PIN of a
deceased person, is refused `person_deceased` (undo the death first if it was wrong).

Notifications (contract 9), queued in the correction's transaction: `changeOfName` /
`updatePerson` (`correction_events`); a reissued PIN `birthCancellation` (old PIN) then
`changeOfGender` (new PIN, `previousUin` = old); an undone death `updatePerson`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import ValidationError

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import InvalidField, NoChange, NotFound, PersonDeceased, ProblemError
from idservice.notify.events import NotifyEvent, Topic
from idservice.notify.outbox import enqueue
from idservice.persons.access import check_pin
from idservice.persons.allocation import claim_pins
from idservice.persons.context import PersonsContext
from idservice.persons.models import Child, CorrectionRequest, IssueRequest, Parent
from idservice.persons.refusals import refusals_recorded
from idservice.persons.rows import PersonRow
from idservice.persons.rules import check_birth_year, check_child
from idservice.persons.views import canonical_json, load_record, person_view
from idservice.pin.format import parse_pin
from idservice.queries import persons as q

__all__ = ["correct", "correction_events", "differences", "merge"]

_PARENTS = ("father", "mother")


def merge(record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The record with `changes` applied (contract 7): child fields flat, a parent merged field
    by field into the recorded one (or created from them), null clears a field, a parent given
    as null is removed. Everything not named stays as it was."""
    new = copy.deepcopy(record)
    for key, value in changes.items():
        if key not in _PARENTS:
            new["child"][key] = value
        elif value is None:
            new[key] = None
        else:
            new[key] = {**(record.get(key) or {}), **value}
    return new


def differences(old: dict[str, Any], new: dict[str, Any]
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`before` and `after` of every field that differs, shaped like `changes` (child fields
    flat; a parent's changed fields, or the whole parent where it was added or removed)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for key in Child.model_fields:
        if old["child"].get(key) != new["child"].get(key):
            before[key], after[key] = old["child"].get(key), new["child"].get(key)
    for parent in _PARENTS:
        was, now = old.get(parent), new.get(parent)
        if was == now:
            continue
        if was is None or now is None:
            before[parent], after[parent] = was, now
            continue
        changed = [f for f in Parent.model_fields if was.get(f) != now.get(f)]
        before[parent] = {f: was.get(f) for f in changed}
        after[parent] = {f: now.get(f) for f in changed}
    return before, after


def correction_events(pin: str, after: dict[str, Any]) -> list[NotifyEvent]:
    """The notifications of a correction that keeps the PIN (contract 9): `changeOfName` when
    the full name changed, `updatePerson` when anything else did (both when both did)."""
    events = []
    if "full_name" in after:
        events.append(NotifyEvent(Topic.CHANGE_OF_NAME, pin))
    if any(field != "full_name" for field in after):
        events.append(NotifyEvent(Topic.UPDATE_PERSON, pin))
    return events


def _validated(record: dict[str, Any]) -> IssueRequest:
    try:
        return IssueRequest.model_validate_json(json.dumps(record))
    except ValidationError as exc:  # only a parent created without its name gets here
        error = exc.errors()[0]
        loc = [str(part) for part in error["loc"]]
        field = ".".join(["changes", *loc]) if loc and loc[0] in _PARENTS else "changes"
        raise InvalidField(f"{field}: a parent added by a correction needs its full_name",
                           field=field) from exc


async def correct(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    req: CorrectionRequest,
) -> dict[str, Any]:
    """Apply a correction; every refusal once the PIN is known is audited (contract 7)."""
    authorize(principal, Action.PERSON_CORRECT)
    check_pin(pin)
    changes = req.changes.as_dict()
    if req.changes.date_of_birth is not None:  # needs no record: refused before any lookup
        check_birth_year(req.changes.date_of_birth, field="changes.date_of_birth")
    async with refusals_recorded(ctx, rctx, "person.correct", pin=pin):
        require_jurisdiction(principal, Action.PERSON_CORRECT, pin=pin, field="pin")
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
        if "status" in changes:
            return await _undo_death(conn, rctx, pin, reason, current)
        old = load_record(current["record"])
        new_req = _validated(merge(old, changes))
        new_record = new_req.record()
        before, after = differences(old, new_record)
        if not after:
            raise NoChange("this correction changes nothing: the record already says so",
                           field="changes")
        check_child(new_req.child, new_req.registration.registered_on, prefix="changes")
        row = PersonRow.of(new_req, canonical_json(new_record))
        details = {"fields": sorted(after), "reason": reason, "before": before, "after": after}
        actor = rctx.actor
        if row.prefix == parse_pin(pin).prefix:  # sex and birth year unchanged: same PIN
            await conn.execute(q.PERSON_UPDATE, pin, row.composite())
            await enqueue(conn, correction_events(pin, after))
            await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, reason,
                               canonical_json(changes), canonical_json(old), None)
            await record(conn, rctx, [AuditEvent("person.correct", "corrected", pin=pin,
                                                 details=details)])
            updated = await conn.fetchrow(q.GET_PERSON, pin)
            assert updated is not None
            return person_view(updated)

        if current["status"] == "deceased":
            raise PersonDeceased(
                "this person is registered as deceased: a change of sex or birth year would "
                "issue a new PIN; if the death registration is wrong, undo it first with "
                '{"changes": {"status": "active"}, "reason": "..."}', field="changes")
        [claim] = await claim_pins(conn, ctx, [row])
        if isinstance(claim, ProblemError):
            raise claim
        new_pin = claim.pin
        await conn.execute(q.CANCEL, pin, new_pin)
        await enqueue(conn, [NotifyEvent(Topic.BIRTH_CANCELLATION, pin),
                             NotifyEvent(Topic.CHANGE_OF_GENDER, new_pin, previous_uin=pin)])
        await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, reason,
                           canonical_json(changes), canonical_json(old), new_pin)
        await record(conn, rctx, [
            AuditEvent("person.correct", "reissued", pin=pin,
                       details={**details, "new_pin": new_pin}),
            AuditEvent("pin.issue", "issued", pin=new_pin, details={"replaces": pin}),
        ])
        reissued = await conn.fetchrow(q.GET_PERSON, new_pin)
        assert reissued is not None
        view = person_view(reissued)
        view["replaces"] = pin
        return view


async def _undo_death(conn: Conn, rctx: RequestContext, pin: str, reason: str,
                      current: Any) -> dict[str, Any]:
    """An erroneous death registration undone (contract 9): `person.correct`, history."""
    if current["status"] != "deceased":
        raise NoChange("this person is not registered as deceased: nothing to undo",
                       field="changes.status")
    death = load_record(current["death"]) if current["death"] is not None else None
    changes = {"status": "active"}
    await conn.execute(q.SET_ALIVE, pin)
    await enqueue(conn, [NotifyEvent(Topic.UPDATE_PERSON, pin)])
    actor = rctx.actor
    await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, reason,
                       canonical_json(changes),
                       canonical_json({**load_record(current["record"]), "status": "deceased",
                                       "death": death}), None)
    await record(conn, rctx, [AuditEvent(
        "person.correct", "corrected", pin=pin,
        details={"fields": ["status"], "reason": reason,
                 "before": {"status": "deceased", "death": death},
                 "after": {"status": "active"}})])
    updated = await conn.fetchrow(q.GET_PERSON, pin)
    assert updated is not None
    return person_view(updated)

"""Death registration (contract 9): `POST /v1/persons/{pin}/death`.

The caller's jurisdiction is the death registration's province (a registrar registers the
deaths of its province, whoever issued the PIN), checked before anything is looked up.
Death registration keys (`province_code`, `authority`, `number`) are a key space of their own
(table death_registration, migration 0042): the same key and body again answers the record as
it is (a replay never re-applies, even after the death was undone), other content is
`registration_conflict`. Then, on the locked person row: unknown PIN 404, cancelled PIN
`pin_cancelled` (with `replaced_by`), already deceased under another key `already_deceased`,
a death before the birth `invalid_field`. Every refusal once the PIN is named is audited
(`refusals_recorded`); the death writes `person.death`, a history row, and the record keeps
the registration under `death`, and the `death` notification is queued in the same
transaction (`notify/outbox.py`). Undoing it is a correction (`corrections.py`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.db.types import Conn
from idservice.errors import (
    AlreadyDeceased,
    InvalidField,
    NotFound,
    PinCancelled,
    RegistrationConflict,
)
from idservice.notify.events import NotifyEvent, Topic
from idservice.notify.outbox import enqueue
from idservice.persons.access import check_pin
from idservice.persons.context import PersonsContext
from idservice.persons.models import DeathRequest
from idservice.persons.refusals import refusals_recorded
from idservice.persons.rules import check_province_exists
from idservice.persons.views import body_digest, canonical_json, load_record, person_view
from idservice.pin.provinces import ProvinceNotValidOn, UnknownProvince
from idservice.queries import persons as q

__all__ = ["check_death", "register_death"]


def check_death(req: DeathRequest, today: date) -> None:
    """The rules that need no record: `date_of_death <= registered_on <= today`."""
    reg = req.registration
    if reg.registered_on > today:
        raise InvalidField("registered_on must not be in the future",
                           field="registration.registered_on")
    if req.date_of_death > reg.registered_on:
        raise InvalidField("date_of_death must not be after registration.registered_on",
                           field="date_of_death")


async def register_death(
    ctx: PersonsContext, principal: Principal, rctx: RequestContext, pin: str,
    req: DeathRequest,
) -> dict[str, Any]:
    authorize(principal, Action.PERSON_DEATH)
    check_pin(pin)
    reg = req.registration
    check_province_exists(ctx.provinces, reg.province_code, "registration.province_code")
    require_jurisdiction(principal, Action.PERSON_DEATH, province_code=reg.province_code,
                         field="registration.province_code")
    check_death(req, ctx.clock.today())
    try:
        ctx.provinces.valid_on(reg.province_code, reg.registered_on)
    except (UnknownProvince, ProvinceNotValidOn) as exc:
        raise InvalidField(str(exc), field="registration.province_code") from exc
    body = req.model_dump(mode="json")
    digest = body_digest(canonical_json({"pin": pin, **body}))
    key = (reg.province_code, reg.authority, reg.number)
    details: dict[str, Any] = {"registration": {
        "province_code": reg.province_code, "authority": reg.authority, "number": reg.number}}
    async with refusals_recorded(ctx, rctx, "person.death", pin=pin, **details), \
            ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute(q.LOCK_DEATH_REGISTRATION, *key)
        known = await conn.fetchrow(q.FIND_DEATH_REGISTRATION, *key)
        if known is not None:
            if known["pin"] != pin or bytes(known["body_sha256"]) != digest:
                raise RegistrationConflict(
                    "this death registration (province, authority, number) was already used "
                    "with other content; send the same content again, or check the number",
                    field="registration")
            current = await _person(conn, pin)
            await record(conn, rctx, [AuditEvent("person.death", "replayed", pin=pin,
                                                 details=details)])
            return person_view(current)
        current = await _person(conn, pin)
        if current["status"] == "cancelled":
            raise PinCancelled(
                f"this PIN was replaced by {current['replaced_by']}: register the death "
                "under the new PIN", field="pin", extra={"replaced_by": current["replaced_by"]})
        if current["status"] == "deceased":
            raise AlreadyDeceased(
                "this person is already registered as deceased under another death "
                "registration; if that one was wrong, an officer undoes it by a correction",
                field="pin")
        dob = date.fromisoformat(load_record(current["record"])["child"]["date_of_birth"])
        if req.date_of_death < dob:
            raise InvalidField("date_of_death must not be before the person's date_of_birth",
                               field="date_of_death")
        death = body
        await conn.execute(q.INSERT_DEATH_REGISTRATION, *key, digest, pin)
        await conn.execute(q.SET_DECEASED, pin, canonical_json(death))
        actor = rctx.actor
        await conn.execute(q.INSERT_HISTORY, pin, actor.type, actor.id, "death registration",
                           canonical_json({"status": "deceased", "death": death}),
                           canonical_json(load_record(current["record"])), None)
        await enqueue(conn, [NotifyEvent(Topic.DEATH, pin)])
        await record(conn, rctx, [AuditEvent("person.death", "registered", pin=pin,
                                             details={**details,
                                                      "date_of_death": body["date_of_death"]})])
        updated = await _person(conn, pin)
    return person_view(updated)


async def _person(conn: Conn, pin: str) -> Any:
    row = await conn.fetchrow(q.GET_PERSON_FOR_UPDATE, pin)
    if row is None:
        raise NotFound("no person with this PIN: check the number")
    return row

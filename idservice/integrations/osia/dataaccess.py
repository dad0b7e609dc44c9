"""OSIA Data Access (contract 10): read, match and verify a person's attributes.

Thin: the record is read by `persons.access.read` / `check_record` (roles, purpose, PIN format,
jurisdiction, the audit event in the access's transaction); this module picks the attributes
and compares values (`person_attributes`). Who may call, and under which purpose:
- an operator with role `officer`, stating `purpose` (an extension query parameter);
- a client with role `reader`, under the purpose it was registered with
  (`idservice clients add --purpose`); a reader without one is refused (403).
Reads are audited as `person.read`, match and verify as `pin.verify`; `details.osia` names the
operation and `details.attributes` the attribute names involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from idservice.audit.events import RequestContext
from idservice.auth.policy import Action, authorize
from idservice.auth.principal import Principal
from idservice.errors import Forbidden
from idservice.integrations.osia import person_attributes as pa
from idservice.persons import access
from idservice.persons.context import PersonsContext
from idservice.queries import integrations as q

__all__ = ["MATCH", "READ", "VERIFY", "match", "read", "verify"]

READ, MATCH, VERIFY = "readPersonAttributes", "matchPersonAttributes", "verifyPersonAttributes"


async def _purpose(ctx: PersonsContext, principal: Principal, stated: str | None) -> str | None:
    """The purpose the access is made under: a reader client's registered one, or the one an
    officer states (checked by `persons.access` like any read's)."""
    if principal.kind != "client":
        authorize(principal, Action.PERSON_READ)
        return stated
    authorize(principal, Action.OSIA_READER)
    registered: str | None = await ctx.pool.fetchval(q.CLIENT_PURPOSE, principal.id)
    if registered is None:
        raise Forbidden("this reader client has no registered purpose; an administrator "
                        "registers one with `idservice clients add --purpose`")
    return registered


def _details(operation: str, names: Sequence[str]) -> dict[str, Any]:
    return {"osia": operation, "attributes": list(names)}


async def read(ctx: PersonsContext, principal: Principal, rctx: RequestContext, uin: str,
               names: Sequence[str], stated_purpose: str | None) -> dict[str, Any]:
    purpose = await _purpose(ctx, principal, stated_purpose)
    attributes = pa.select(names)
    view = await access.read(ctx, principal, rctx, uin, purpose, action=Action.OSIA_DATA_ACCESS,
                             details=_details(READ, [a.name for a in attributes]))
    return pa.read_values(view, attributes)


async def match(ctx: PersonsContext, principal: Principal, rctx: RequestContext, uin: str,
                given: Mapping[str, object], stated_purpose: str | None
                ) -> list[dict[str, Any]]:
    purpose = await _purpose(ctx, principal, stated_purpose)
    checked = pa.check_match_request(given)

    def judge(view: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
        errors = pa.match(view, checked)
        return not errors, errors

    return await access.check_record(ctx, principal, rctx, uin, purpose, judge,
                                     action=Action.OSIA_DATA_ACCESS,
                                     details=_details(MATCH, list(checked)))


async def verify(ctx: PersonsContext, principal: Principal, rctx: RequestContext, uin: str,
                 body: object, stated_purpose: str | None) -> bool:
    purpose = await _purpose(ctx, principal, stated_purpose)
    expressions = pa.parse_expressions(body)

    def judge(view: dict[str, Any]) -> tuple[bool, bool]:
        result = pa.evaluate(view, expressions)
        return result, result

    names = list(dict.fromkeys(e.attribute.name for e in expressions))
    return await access.check_record(ctx, principal, rctx, uin, purpose, judge,
                                     action=Action.OSIA_DATA_ACCESS,
                                     details=_details(VERIFY, names))

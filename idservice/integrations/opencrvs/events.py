"""OpenCRVS v1.9 `EventDocument`s: the REGISTER action and the declaration, computed as
OpenCRVS computes an event's state. Pure: no I/O.

Sources (opencrvs-core v1.9, packages/commons/src/events/): `EventDocument.ts` (id, type,
createdAt, updatedAt, actions, trackingId), `ActionDocument.ts` (per action: id, type, status
Requested/Accepted/Rejected, createdAt, createdAtLocation, declaration, originalActionId,
APPROVE_CORRECTION's requestId), `utils.ts` (`aggregateActionDeclarations`: accepted actions
except REQUEST_CORRECTION, PRINT_CERTIFICATE and REJECT_CORRECTION, sorted by createdAt, their
declarations deep-merged in order, an accepted action completed with the declaration of the
requested action it confirms (`getCompleteActionDeclaration`), an APPROVE_CORRECTION applying
its request's declaration; `deepMerge`: objects merge, arrays and other values replace;
`state/index.ts` `deepDropNulls`), `utils.ts` `getPendingAction` (the requested action not yet
confirmed). Core posts the bare event to `/trigger/events/{event}/actions/REGISTER`
(events/src/router/event/actions/actionConfirmationRequest.ts); its OpenAPI description says
`{"event": EventDocument}`: both are accepted.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from idservice.clock import CIVIL_TIMEZONE
from idservice.integrations.opencrvs.errors import OpenCrvsRefusal

__all__ = ["BIRTH_EVENT", "declaration", "event_document", "register_action",
           "registered_on"]

BIRTH_EVENT = "birth"  # opencrvs-core commons/src/events/Constants.ts BIRTH_EVENT
_EXCLUDED = frozenset({"REQUEST_CORRECTION", "PRINT_CERTIFICATE", "REJECT_CORRECTION"})


def event_document(body: object) -> dict[str, Any]:
    """The EventDocument, bare or wrapped as `{"event": ...}`, with the fields we read."""
    if isinstance(body, dict) and isinstance(body.get("event"), dict) and "actions" not in body:
        body = body["event"]
    if not isinstance(body, dict):
        raise OpenCrvsRefusal("the body must be an EventDocument (JSON object)")
    for key in ("id", "type", "trackingId"):
        if not isinstance(body.get(key), str) or not 0 < len(body[key]) <= 200:
            raise OpenCrvsRefusal(f"event.{key} is required (a string of 1-200 characters)")
    if body["type"] != BIRTH_EVENT:
        raise OpenCrvsRefusal(f"only '{BIRTH_EVENT}' events are registered here, "
                              f"not {body['type'][:64]!r}")
    actions = body.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise OpenCrvsRefusal("event.actions must be a list of actions")
    return body


def register_action(event: dict[str, Any]) -> dict[str, Any]:
    """The REGISTER action being confirmed: the requested one no action confirms yet, else
    the last one not rejected (a retry after acceptance)."""
    actions: list[dict[str, Any]] = event["actions"]
    confirmed = {a.get("originalActionId") for a in actions if a.get("originalActionId")}
    registers = [a for a in actions if a.get("type") == "REGISTER"]
    pending = [a for a in registers
               if a.get("status") == "Requested" and a.get("id") not in confirmed]
    candidates = pending or [a for a in registers if a.get("status") != "Rejected"]
    if not candidates:
        raise OpenCrvsRefusal("the event has no REGISTER action to confirm")
    return candidates[-1]


def registered_on(action: dict[str, Any]) -> date:
    """The REGISTER action's date, on Vietnam's civil calendar (as `Clock.today()`)."""
    created = action.get("createdAt")
    try:
        if not isinstance(created, str):
            raise ValueError(created)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError(created)
    except ValueError:
        raise OpenCrvsRefusal("the REGISTER action's createdAt must be an RFC 3339 date-time "
                              "with its offset") from None
    return at.astimezone(CIVIL_TIMEZONE).date()


def _merge(current: Any, incoming: Any) -> Any:
    """lodash `mergeWith` as `deepMerge` customises it."""
    if isinstance(current, dict) and isinstance(incoming, dict):
        merged = dict(current)
        for key, value in incoming.items():
            merged[key] = _merge(merged[key], value) if key in merged else value
        return merged
    return incoming


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def _own(action: dict[str, Any]) -> dict[str, Any]:
    declaration = action.get("declaration")
    return declaration if isinstance(declaration, dict) else {}


def _complete(event: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """An accepted action's declaration with that of the requested action it confirms."""
    original_id = action.get("originalActionId")
    if original_id:
        for original in event["actions"]:
            if original.get("id") == original_id and original.get("status") == "Requested":
                merged: dict[str, Any] = _merge(_own(original), _own(action))
                return merged
    return _own(action)


def declaration(event: dict[str, Any], register: dict[str, Any]) -> dict[str, Any]:
    """The event's declaration as it will stand once `register` is accepted."""
    accepted = [a for a in event["actions"]
                if a.get("status") == "Accepted" and a.get("type") not in _EXCLUDED]
    accepted.sort(key=lambda a: str(a.get("createdAt", "")))  # stable, as localeCompare
    by_id = {a.get("id"): a for a in event["actions"] if a.get("status") == "Accepted"}
    state: dict[str, Any] = {}
    for action in accepted:
        if action.get("type") == "APPROVE_CORRECTION":
            request = by_id.get(action.get("requestId"))
            if request is None:
                continue
            action = request
        state = _merge(state, _complete(event, action))
    if register.get("status") != "Accepted":  # the registrar's edits when registering
        state = _merge(state, _own(register))
    result: dict[str, Any] = _drop_nulls(state)
    return result

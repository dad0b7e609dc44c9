"""OpenCRVS route (contract 10): `POST /integrations/opencrvs/v1/register`, called by the
forwarding handler of a country configuration (`examples/opencrvs/`) with the body OpenCRVS
core sends to `/trigger/events/birth/actions/REGISTER`.

Answers as OpenCRVS reads an action confirmation (core events/src/router/event/actions/
actionConfirmationRequest.ts): 200 `{"registrationNumber", "declaration": {"child.nid"}}`
accepts the REGISTER action, 400 `{"reason"}` rejects it. Every error under the prefix is
`{"reason"}`: a refusal of the event is 400, while 401/403 (the client's set-up) and 5xx
(retry) keep their status, which the forwarding handler does not turn into a rejection.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from idservice.api.problems import scope_errors
from idservice.errors import MalformedRequest, ProblemError, Unauthenticated
from idservice.http.bodies import check_media_type, read_body, validate_model
from idservice.http.deps import Caller, Svc, request_context
from idservice.integrations.opencrvs.mapping import opencrvs_message
from idservice.integrations.opencrvs.register import confirm_registration, registration_request
from idservice.metrics import ISSUANCES
from idservice.persons.models import IssueRequest

__all__ = ["PREFIX", "install", "render_error", "router"]

PREFIX = "/integrations/opencrvs"
router = APIRouter(prefix=PREFIX, tags=["opencrvs"])


def render_error(error: ProblemError) -> Response:
    status = error.status if error.status in (401, 403) or error.status >= 500 else 400
    message = opencrvs_message(error.detail)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} \
        if isinstance(error, Unauthenticated) else None
    return JSONResponse({"reason": message}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    app.include_router(router)
    scope_errors(app, PREFIX + "/", render_error)


_REASON = {"type": "object", "required": ["reason"], "additionalProperties": False,
           "properties": {"reason": {"type": "string"}}}
_ACTION = {"type": "object", "required": ["type"], "properties": {
    "id": {"type": "string"}, "type": {"type": "string"},
    "status": {"type": "string", "enum": ["Requested", "Accepted", "Rejected"]},
    "createdAt": {"type": "string", "format": "date-time"},
    "createdAtLocation": {"type": ["string", "null"]},
    "declaration": {"type": "object"}, "originalActionId": {"type": ["string", "null"]}}}
_EVENT = {"type": "object", "required": ["id", "type", "actions", "trackingId"],
          "description": "OpenCRVS v1.9 EventDocument (fields not listed are ignored)",
          "properties": {"id": {"type": "string"}, "type": {"type": "string",
                                                            "enum": ["birth"]},
                         "trackingId": {"type": "string"},
                         "createdAt": {"type": "string"}, "updatedAt": {"type": "string"},
                         "actions": {"type": "array", "items": _ACTION}}}
_BODY = {"oneOf": [_EVENT, {"type": "object", "required": ["event"],
                            "properties": {"event": _EVENT}}]}
_CONFIRMATION = {"type": "object", "required": ["registrationNumber", "declaration"],
                 "additionalProperties": False, "properties": {
                     "registrationNumber": {"type": "string",
                                            "description": "the event's trackingId"},
                     "declaration": {"type": "object", "required": ["child.nid"],
                                     "additionalProperties": False,
                                     "properties": {"child.nid": {
                                         "type": "string", "pattern": "^[0-9]{12}$"}}}}}


def _reason(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _REASON}}}


@router.post("/v1/register", response_class=JSONResponse, openapi_extra={
    "x-error-format": "reason",
    "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY}}}},
    responses={200: {"description": "registered: OpenCRVS accepts the REGISTER action",
                     "content": {"application/json": {"schema": _CONFIRMATION}}},
               400: _reason("refused: OpenCRVS rejects the REGISTER action with `reason`"),
               401: _reason("no, bad, expired or revoked access token"),
               403: _reason("not a registrar, or a client for every province (*)"),
               500: _reason("unexpected error; retry"),
               503: _reason("database or HSM unavailable; nothing was done; retry")})
async def register_birth(request: Request, svc: Svc, caller: Caller) -> JSONResponse:
    check_media_type(request, "application/json")
    raw = await read_body(request, svc.settings.max_body_bytes)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedRequest("body is not valid JSON (UTF-8)") from None
    event_id, registration_number, issue_body = registration_request(caller, body)
    req = validate_model(IssueRequest, issue_body)
    confirmation = await confirm_registration(svc.persons, caller,
                                              request_context(request, caller), event_id,
                                              registration_number, req)
    if confirmation.outcome.created:
        ISSUANCES.labels(req.registration.province_code).inc()
    return JSONResponse(confirmation.body())

"""OSIA routes under `/osia` (contract 10): UIN Generation and Data Access (Notification, contract
9: `osia_notification.py`).

HTTP only: the body is read and checked for its JSON shape here, then handed to the adapters
in `integrations/osia/`, which call the same services as our own API. Every error under
`/osia` is OSIA's `Error {code, message}` (`render_error`, installed for the prefix by
`install`), or an empty body for 401/403/404 where the specs document none; never
problem+json. The operations are documented in our OpenAPI document as the OSIA specs
(`uin.yaml` 1.2.0, `dataaccess.yaml` 1.3.0) define them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from idservice.api.osia_notification import router as notification_router
from idservice.api.osia_openapi import ERROR_SCHEMA as _ERROR
from idservice.api.osia_openapi import error_responses as _error_responses
from idservice.api.problems import scope_errors
from idservice.auth.policy import Action, authorize
from idservice.errors import MalformedRequest, ProblemError, Unauthenticated
from idservice.http.bodies import check_media_type, error_message, read_body, validate_model
from idservice.http.deps import (
    BEARER_REQUIRED,
    Caller,
    Svc,
    caller_of,
    request_context,
    services_of,
)
from idservice.integrations.osia import dataaccess, uin
from idservice.integrations.osia.codes import (
    BODYLESS,
    PROBLEM_CODES,
    OsiaCode,
    OsiaError,
    osia_status,
)
from idservice.integrations.osia.person_attributes import ATTRIBUTE_NAMES
from idservice.integrations.osia.uin_attributes import (
    UIN_ATTRIBUTES,
    attribute_for_field,
    osia_message,
    to_issue_body,
)
from idservice.metrics import ISSUANCES
from idservice.persons.models import IssueRequest
from idservice.persons.names import check_text

__all__ = ["PREFIX", "install", "render_error", "router"]

PREFIX = "/osia"
router = APIRouter(prefix=PREFIX, tags=["osia"])

MAX_ATTRIBUTE_NAMES = 100
# Parameters whose errors have a code of their own (else INVALID_PARAMETER).
_PARAMETER_CODES = {"transactionId": OsiaCode.INVALID_TRANSACTION_ID}
_PARAMETER_NAMES = {"pin": "uin", "registration": "registration"}  # our field -> OSIA name


def _code(error: ProblemError) -> int:
    if isinstance(error, OsiaError):
        return error.osia_code
    if error.code in ("invalid_field", "malformed_request") and error.field is not None:
        if error.field in _PARAMETER_CODES:
            return _PARAMETER_CODES[error.field]
        attribute = attribute_for_field(error.field)
        if attribute is not None:
            return int(attribute.code)
    fallback = OsiaCode.INTERNAL if error.status >= 500 else OsiaCode.INVALID_PARAMETER
    return int(PROBLEM_CODES.get(error.code, fallback))


def _message(error: ProblemError) -> str:
    """The message with our field names as OSIA names them, led by the attribute at fault."""
    message = osia_message(error.detail)
    attribute = attribute_for_field(error.field) if error.field else None
    name = attribute.name if attribute is not None else \
        _PARAMETER_NAMES.get(error.field or "", error.field)
    if name and not isinstance(error, OsiaError) and name not in message:
        message = f"{name}: {message}"
    return message


def render_error(error: ProblemError) -> Response:
    """Our problem as OSIA answers it: 401/403/404 empty (as the specs document them), any
    other refusal 400 and any failure 500 with `Error {code, message}`."""
    status = osia_status(error.status)
    if status in BODYLESS:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} \
            if isinstance(error, Unauthenticated) else None
        return Response(status_code=status, headers=headers)
    return JSONResponse({"code": _code(error), "message": _message(error)}, status_code=status)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(notification_router)
    scope_errors(app, PREFIX + "/", render_error)


async def _json(request: Request, svc: Svc) -> Any:
    check_media_type(request, "application/json")
    raw = await read_body(request, svc.settings.max_body_bytes)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedRequest("body is not valid JSON (UTF-8)") from None


async def _attributes(request: Request, svc: Svc) -> dict[str, object]:
    body = await _json(request, svc)
    if not isinstance(body, dict):
        raise OsiaError(OsiaCode.MALFORMED_REQUEST, "body must be a JSON object of attributes")
    return body


# -- OpenAPI: the operations as the OSIA specs document them ---------------------------------

_SCALAR = [{"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}]


def _json_body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {"x-error-format": "osia", "requestBody": {"required": True, "content": {
        "application/json": {"schema": schema, "example": example}}}}


_UIN_BODY = {
    "type": "object", "additionalProperties": False,
    "description": "Flat attributes (contract 10). `fullName`, or `lastName` + `middleName` + "
                   "`firstName` (family name first); `gender` ISO/IEC 5218 (1 male, 2 female).",
    "properties": {a.name: ({"oneOf": [{"type": "string"}, {"type": "integer"}]}
                            if a.name in ("gender", "registrationNumber", "registrationBook")
                            else {"type": "string"}) for a in UIN_ATTRIBUTES}}
_UIN_EXAMPLE = {"registrationAuthority": "UBND xã Nhơn Lý", "registrationNumber": "12/2024",
                "registrationDate": "2024-03-10", "registrationProvince": "052",
                "lastName": "Nguyễn", "middleName": "Thị Minh", "firstName": "Anh",
                "gender": 2, "dateOfBirth": "2024-03-02", "placeOfBirth": "Quy Nhơn"}

_TRANSACTION_ID_TEXT = ("The id of the transaction: the same id and attributes answer the same "
                        "UIN; other attributes are refused (1100)")
# Read from the query string by `generate_uin` itself (FastAPI's parameter machinery costs more
# than the rest of the adapter: issue 12's speed), documented here as FastAPI documented it.
_TRANSACTION_ID_PARAMETER = {
    "name": "transactionId", "in": "query", "required": True,
    "schema": {"type": "string", "description": _TRANSACTION_ID_TEXT, "title": "Transactionid"},
    "description": _TRANSACTION_ID_TEXT}
Uin = Annotated[str, Path(description="Unique Identity Number (the PIN)",
                          examples=["052324000001"])]
Purpose = Annotated[str | None, Query(
    max_length=2000, description="extension: the purpose of an officer's access (required "
    "for officers; a reader client's registered purpose is used instead)")]


@router.post("/v1/uin", operation_id="generateUIN", response_class=JSONResponse,
             openapi_extra={**_json_body(_UIN_BODY, _UIN_EXAMPLE), **BEARER_REQUIRED,
                            "parameters": [_TRANSACTION_ID_PARAMETER]},
             responses={200: {"description": "UIN is generated (or was, for this "
                                             "transaction)",
                              "content": {"application/json": {"schema": {"type": "string"}}}},
                        **_error_responses(401, 403)})
async def generate_uin(request: Request) -> JSONResponse:
    # The caller and services read here, not by FastAPI's dependencies (http/deps.py).
    caller = caller_of(request)
    svc = services_of(request)
    transaction_id = request.query_params.get("transactionId")
    if transaction_id is None:  # as (and where) FastAPI's check of a required parameter was
        raise MalformedRequest(error_message({"type": "missing", "loc": ("transactionId",)}),
                               field="transactionId")
    authorize(caller, Action.PIN_ISSUE)
    try:
        transaction_id = check_text(transaction_id, max_length=200)
    except ValueError as exc:
        raise OsiaError(OsiaCode.INVALID_TRANSACTION_ID, f"transactionId {exc}") from None
    attributes = await _attributes(request, svc)
    province = caller.jurisdiction if caller.jurisdiction != "*" else None
    body = to_issue_body(attributes, default_province=province)
    req = validate_model(IssueRequest, body)
    outcome = await uin.generate_uin(svc.persons, caller, request_context(request, caller),
                                     transaction_id, req)
    if outcome.created:
        ISSUANCES.labels(req.registration.province_code).inc()
    return JSONResponse(outcome.pin)


_VALUES = {"type": "object", "additionalProperties": {"oneOf": [*_SCALAR, _ERROR]}}


@router.get("/v1/persons/{uin}", operation_id="readPersonAttributes",
            openapi_extra={"x-error-format": "osia"},
            responses={200: {"description": "Requested attribute values (strings), or an Error "
                                            "(1026) for an attribute the record has no value for",
                             "content": {"application/json": {"schema": _VALUES}}},
                       **_error_responses(401, 403, 404)})
async def read_person_attributes(
    request: Request, svc: Svc, caller: Caller, uin: Uin,
    attribute_names: Annotated[list[str], Query(
        alias="attributeNames", description=f"one of {', '.join(ATTRIBUTE_NAMES)}")],
    purpose: Purpose = None,
) -> JSONResponse:
    if len(attribute_names) > MAX_ATTRIBUTE_NAMES:
        raise OsiaError(OsiaCode.INVALID_PARAMETER,
                        f"attributeNames: at most {MAX_ATTRIBUTE_NAMES} names")
    return JSONResponse(await dataaccess.read(svc.persons, caller,
                                              request_context(request, caller), uin,
                                              attribute_names, purpose))


_MATCH_BODY = {"type": "object", "additionalProperties": {"oneOf": _SCALAR}}
_MATCHING_ERROR = {"type": "array", "items": {
    "type": "object", "additionalProperties": False,
    "properties": {"attributeName": {"type": "string"},
                   "errorCode": {"type": "integer", "format": "int32", "enum": [0, 1]}}}}


@router.post("/v1/persons/{uin}/match", operation_id="matchPersonAttributes",
             openapi_extra=_json_body(_MATCH_BODY, {"fullName": "Nguyễn Thị Minh Anh",
                                                    "dateOfBirth": "2024-03-02"}),
             responses={200: {"description": "The attributes that do not match (0: no value "
                                             "recorded, 1: another value); empty: all match",
                              "content": {"application/json": {"schema": _MATCHING_ERROR}}},
                        **_error_responses(401, 403, 404)})
async def match_person_attributes(request: Request, svc: Svc, caller: Caller, uin: Uin,
                                  purpose: Purpose = None) -> JSONResponse:
    given = await _attributes(request, svc)
    errors = await dataaccess.match(svc.persons, caller, request_context(request, caller), uin,
                                    given, purpose)
    return JSONResponse(errors)


_EXPRESSIONS = {"type": "array", "items": {
    "type": "object", "required": ["attributeName", "operator", "value"],
    "additionalProperties": False,
    "properties": {"attributeName": {"type": "string"},
                   "operator": {"type": "string", "enum": ["<", ">", "=", ">=", "<="]},
                   "value": {"oneOf": _SCALAR}}}}


@router.post("/v1/persons/{uin}/verify", operation_id="verifyPersonAttributes",
             openapi_extra=_json_body(_EXPRESSIONS, [
                 {"attributeName": "dateOfBirth", "operator": "<", "value": "2008-01-01"}]),
             responses={200: {"description": "true when every expression holds",
                              "content": {"application/json": {"schema": {"type": "boolean"}}}},
                        **_error_responses(401, 403, 404)})
async def verify_person_attributes(request: Request, svc: Svc, caller: Caller, uin: Uin,
                                   purpose: Purpose = None) -> JSONResponse:
    body = await _json(request, svc)
    result = await dataaccess.verify(svc.persons, caller, request_context(request, caller), uin,
                                     body, purpose)
    return JSONResponse(result)

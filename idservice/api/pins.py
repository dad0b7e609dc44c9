"""PIN issuance and verification routes (contract section 4)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from idservice.api.ndjson import NdjsonStream, start_ndjson
from idservice.api.openapi import (
    ISSUE_EXAMPLE,
    BatchLineDoc,
    IssuedDoc,
    VerifyResultDoc,
    json_body_doc,
    ndjson_body_doc,
    problem_doc,
    stream_response_doc,
)
from idservice.auth.policy import Action, authorize
from idservice.errors import ProblemError
from idservice.http.bodies import check_media_type, json_body, parse_model
from idservice.http.deps import (
    BEARER_REQUIRED,
    Caller,
    Svc,
    caller_of,
    request_context,
    services_of,
)
from idservice.logging import get_logger
from idservice.metrics import ISSUANCES
from idservice.persons import batch, issuance
from idservice.persons.access import verify
from idservice.persons.context import PersonsContext
from idservice.persons.models import IssueRequest, VerifyRequest
from idservice.pin.format import parse_pin

__all__ = ["router"]

router = APIRouter(tags=["pins"])
_log = get_logger(__name__)


# The two hottest routes read their caller themselves (http/deps.py: `caller_of`).
@router.post("/v1/pins", status_code=201,
             openapi_extra={**json_body_doc(IssueRequest, ISSUE_EXAMPLE), **BEARER_REQUIRED},
             responses={201: {"model": IssuedDoc, "description": "issued"},
                        200: {"model": IssuedDoc,
                              "description": "replay of an earlier identical registration"},
                        **problem_doc(409)})
async def issue_pin(request: Request) -> JSONResponse:
    caller = caller_of(request)
    svc = services_of(request)
    authorize(caller, Action.PIN_ISSUE)
    req = await json_body(request, IssueRequest, svc.settings.max_body_bytes)
    outcome = await issuance.issue(svc.persons, caller, request_context(request, caller), req)
    if outcome.created:
        ISSUANCES.labels(req.registration.province_code).inc()
    return JSONResponse(outcome.body(), status_code=201 if outcome.created else 200)


@router.post("/v1/pins/verify", response_class=JSONResponse, openapi_extra={**json_body_doc(
    VerifyRequest, {"pin": "052324000001", "full_name": "Nguyễn Thị Minh Anh",
                    "date_of_birth": "2024-03-02"}), **BEARER_REQUIRED},
             responses={200: {"model": VerifyResultDoc}, **problem_doc(429)})
async def verify_pin(request: Request) -> JSONResponse:
    caller = caller_of(request)
    svc = services_of(request)
    authorize(caller, Action.PIN_VERIFY)
    req = await json_body(request, VerifyRequest, svc.settings.max_body_bytes)
    return JSONResponse({"match": await verify(svc.persons, caller,
                                               request_context(request, caller), req,
                                               limit=svc.auth_limits.verify_limit)})


# `json.dumps(answer, ensure_ascii=False)` without building its encoder for every line.
_encode_answer = json.JSONEncoder(ensure_ascii=False).encode


def _line_result(line: int, result: issuance.IssueOutcome | ProblemError) -> dict[str, Any]:
    if isinstance(result, ProblemError):
        return {"line": line, "error": result.to_problem()}
    return {"line": line, "pin": result.pin, "status": result.status,
            "replayed": not result.created}


@router.post("/v1/pins:batch", openapi_extra=ndjson_body_doc(IssueRequest, ISSUE_EXAMPLE),
             response_class=Response,
             responses=stream_response_doc(BatchLineDoc, "application/x-ndjson",
                                           "one result object per input line"))
async def issue_batch(request: Request, svc: Svc, caller: Caller) -> NdjsonStream:
    authorize(caller, Action.PIN_ISSUE_BATCH)
    check_media_type(request, "application/x-ndjson", "application/jsonl", "application/json-lines")
    ctx: PersonsContext = svc.persons
    rctx = request_context(request, caller)

    async def process(lines: list[batch.BatchLine]) -> bytes:
        results = await batch.issue_chunk(ctx, rctx, lines)
        out = bytearray()
        issued: Counter[str] = Counter()  # per province: one metrics update per chunk
        for line, result in results:
            if not isinstance(result, ProblemError) and result.created:
                issued[parse_pin(result.pin).province_code] += 1
            out += _encode_answer(_line_result(line, result)).encode() + b"\n"
        for province, count in issued.items():
            ISSUANCES.labels(province).inc(count)
        return bytes(out)

    return start_ndjson(
        request, body_limit=svc.settings.max_batch_body_bytes,
        line_limit=svc.settings.max_body_bytes, chunk_lines=svc.settings.batch_chunk_lines,
        parse=lambda raw: issuance.prepare(ctx, caller, parse_model(IssueRequest, raw)),
        process=process)

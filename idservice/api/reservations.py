"""Reservations for offline registration offices and their sync (contract 8)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from idservice.api.ndjson import NdjsonStream, start_ndjson
from idservice.api.openapi import (
    json_body_doc,
    ndjson_body_doc,
    problem_doc,
    stream_response_doc,
)
from idservice.errors import ProblemError
from idservice.http.bodies import check_media_type, json_body, parse_model
from idservice.http.deps import Caller, Svc, request_context
from idservice.metrics import ISSUANCES
from idservice.persons import offline, reservations
from idservice.persons.issuance import IssueOutcome
from idservice.pin.format import parse_pin

__all__ = ["router"]

router = APIRouter(tags=["reservations"])


@router.post("/v1/reservations", status_code=201,
             openapi_extra=json_body_doc(reservations.ReservationRequest, {
                 "buckets": [{"sex": "M", "birth_year": 2026, "count": 40},
                             {"sex": "F", "birth_year": 2026, "count": 40}], "days": 90}),
             responses=problem_doc(409))
async def reserve(request: Request, svc: Svc, caller: Caller) -> JSONResponse:
    req = await json_body(request, reservations.ReservationRequest, svc.settings.max_body_bytes)
    body = await reservations.reserve(
        svc.persons, caller, request_context(request, caller), req,
        reservations.ReservationSigner(svc.keystore, svc.token_key),
        svc.settings.reservation_max_open)
    return JSONResponse(body, status_code=201)


@router.get("/v1/reservations/{reservation_id}", responses=problem_doc(404))
async def get_reservation(reservation_id: str, svc: Svc, caller: Caller) -> dict[str, Any]:
    return await reservations.get(svc.persons, caller, reservation_id[:64])


@router.post("/v1/reservations/{reservation_id}/release", responses=problem_doc(404))
async def release(reservation_id: str, request: Request, svc: Svc,
                  caller: Caller) -> dict[str, Any]:
    return await reservations.release(svc.persons, caller, request_context(request, caller),
                                      reservation_id[:64])


def _line_result(line: int, result: IssueOutcome | ProblemError) -> dict[str, Any]:
    if isinstance(result, ProblemError):
        return {"line": line, "error": result.to_problem()}
    return {"line": line, "pin": result.pin, "status": 201 if result.created else 200}


class SyncLineDoc(BaseModel):
    """One answer line of a sync: the PIN and 201 (stored) or 200 (already stored), or the
    problem of that line."""

    line: int | None
    pin: str | None = None
    status: int | None = None
    error: dict[str, Any] | None = None


@router.post("/v1/reservations/{reservation_id}/issued",
             openapi_extra=ndjson_body_doc(offline.OfflineLine), response_class=Response,
             responses={**stream_response_doc(SyncLineDoc, "application/x-ndjson",
                                              "one result object per input line"),
                        **problem_doc(404)})
async def sync_issued(reservation_id: str, request: Request, svc: Svc,
                      caller: Caller) -> NdjsonStream:
    check_media_type(request, "application/x-ndjson", "application/jsonl", "application/json-lines")
    ctx = svc.persons
    target = await offline.open_sync(ctx, caller, reservation_id[:64])
    rctx = request_context(request, caller)

    def parse(raw: bytes) -> offline.OfflinePrepared:
        return offline.prepare_line(ctx, caller, target, parse_model(offline.OfflineLine, raw))

    async def process(lines: list[offline.SyncLine]) -> bytes:
        out = bytearray()
        for line, result in await offline.sync_chunk(ctx, rctx, target, lines):
            if isinstance(result, IssueOutcome) and result.created:
                ISSUANCES.labels(parse_pin(result.pin).province_code).inc()
            out += json.dumps(_line_result(line, result), ensure_ascii=False).encode() + b"\n"
        return bytes(out)

    return start_ndjson(
        request, body_limit=svc.settings.max_batch_body_bytes,
        line_limit=svc.settings.max_body_bytes, chunk_lines=svc.settings.batch_chunk_lines,
        parse=parse, process=process)

"""PIN issuance and verification routes (contract section 4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

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
from idservice.api.problems import DB_UNAVAILABLE
from idservice.audit.events import RequestContext
from idservice.auth.policy import Action, authorize
from idservice.errors import PayloadTooLarge, ProblemError, Unavailable
from idservice.http.bodies import check_media_type, json_body, parse_model
from idservice.http.deps import Caller, Svc, request_context
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


@router.post("/v1/pins", status_code=201, openapi_extra=json_body_doc(IssueRequest, ISSUE_EXAMPLE),
             responses={201: {"model": IssuedDoc, "description": "issued"},
                        200: {"model": IssuedDoc,
                              "description": "replay of an earlier identical registration"},
                        **problem_doc(409)})
async def issue_pin(request: Request, svc: Svc, caller: Caller) -> JSONResponse:
    authorize(caller, Action.PIN_ISSUE)
    req = await json_body(request, IssueRequest, svc.settings.max_body_bytes)
    outcome = await issuance.issue(svc.persons, caller, request_context(request, caller), req)
    if outcome.created:
        ISSUANCES.labels(req.registration.province_code).inc()
    return JSONResponse(outcome.body(), status_code=201 if outcome.created else 200)


@router.post("/v1/pins/verify", openapi_extra=json_body_doc(VerifyRequest, {
    "pin": "052324000001", "full_name": "Nguyễn Thị Minh Anh", "date_of_birth": "2024-03-02"}),
             responses={200: {"model": VerifyResultDoc}, **problem_doc(429)})
async def verify_pin(request: Request, svc: Svc, caller: Caller) -> dict[str, bool]:
    authorize(caller, Action.PIN_VERIFY)
    req = await json_body(request, VerifyRequest, svc.settings.max_body_bytes)
    return {"match": await verify(svc.persons, caller, request_context(request, caller), req,
                                  limit=svc.auth_limits.verify_limit)}


class _NdjsonStream(Response):
    """Streams result lines from a queue filled by the worker that reads the request.

    Reading and answering are decoupled so a client that sends its whole body before reading
    the answer never deadlocks against our writes (results wait in memory, not in the socket).
    Starlette's StreamingResponse would also listen for a disconnect on `receive`, competing
    with the request-body reader; this response only sends.
    """

    media_type = "application/x-ndjson"

    def __init__(self, queue: asyncio.Queue[bytes | None], worker: asyncio.Task[None]) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        self.queue = queue
        self.worker = worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")]})
        while (item := await self.queue.get()) is not None:
            await send({"type": "http.response.body", "body": item, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await self.worker


def _line_result(line: int, result: issuance.IssueOutcome | ProblemError) -> dict[str, Any]:
    if isinstance(result, ProblemError):
        return {"line": line, "error": result.to_problem()}
    return {"line": line, "pin": result.pin, "status": result.status,
            "replayed": not result.created}


async def _read_lines(request: Request, limit: int) -> AsyncIterator[tuple[int, bytes]]:
    buffer = b""
    number = 0
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"batch body larger than {limit} bytes")
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            number += 1
            yield number, raw
    if buffer.strip():
        yield number + 1, buffer


async def _run_batch(
    request: Request, svc: Svc, caller: Caller, rctx: RequestContext,
    queue: asyncio.Queue[bytes | None],
) -> None:
    """Read, check and issue chunk by chunk. One chunk is in the database while the next is
    read and parsed (two stages overlap); answers still leave in line order."""
    ctx: PersonsContext = svc.persons
    chunk: list[batch.BatchLine] = []
    size = svc.settings.batch_chunk_lines
    pending: asyncio.Task[bytes] | None = None

    async def process(lines: list[batch.BatchLine]) -> bytes:
        results = await batch.issue_chunk(ctx, rctx, lines)
        out = bytearray()
        for line, result in results:
            if not isinstance(result, ProblemError) and result.created:
                ISSUANCES.labels(parse_pin(result.pin).province_code).inc()
            out += json.dumps(_line_result(line, result), ensure_ascii=False).encode() + b"\n"
        return bytes(out)

    async def hand_over(lines: list[batch.BatchLine]) -> None:
        nonlocal pending
        if pending is not None:
            queue.put_nowait(await pending)
            pending = None
        if lines:
            pending = asyncio.create_task(process(lines))

    try:
        async for number, raw in _read_lines(request, svc.settings.max_batch_body_bytes):
            if not raw.strip():
                continue
            item: issuance.PreparedIssue | ProblemError
            try:
                if len(raw) > svc.settings.max_body_bytes:
                    raise PayloadTooLarge("line larger than the single-request limit")
                item = issuance.prepare(ctx, caller, parse_model(IssueRequest, raw))
            except ProblemError as problem:
                item = problem
            chunk.append((number, item))
            if len(chunk) >= size:
                await hand_over(chunk)
                chunk = []
        await hand_over(chunk)
        await hand_over([])
    except Exception as exc:  # report and stop: lines already answered stay answered
        if pending is not None:  # let the chunk in flight finish: it is one transaction
            with contextlib.suppress(Exception):
                queue.put_nowait(await pending)
        if isinstance(exc, ProblemError):
            fatal = exc
        elif isinstance(exc, DB_UNAVAILABLE):
            fatal = Unavailable()
        else:
            _log.exception("batch_failed", error=type(exc).__name__)
            fatal = ProblemError()
        queue.put_nowait(json.dumps({"line": None, "error": fatal.to_problem()}).encode() + b"\n")
    finally:
        queue.put_nowait(None)


@router.post("/v1/pins:batch", openapi_extra=ndjson_body_doc(IssueRequest, ISSUE_EXAMPLE),
             response_class=Response,
             responses=stream_response_doc(BatchLineDoc, "application/x-ndjson",
                                           "one result object per input line"))
async def issue_batch(request: Request, svc: Svc, caller: Caller) -> _NdjsonStream:
    authorize(caller, Action.PIN_ISSUE_BATCH)
    check_media_type(request, "application/x-ndjson", "application/jsonl", "application/json-lines")
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    worker = asyncio.create_task(
        _run_batch(request, svc, caller, request_context(request, caller), queue))
    return _NdjsonStream(queue, worker)

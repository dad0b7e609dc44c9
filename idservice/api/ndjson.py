"""NDJSON request streams answered line by line (contract 4 batch, contract 8 sync).

One pipeline for both: lines are read as they arrive (body and line sizes bounded), each is
parsed into an item or the problem found in it, items are grouped in chunks, and one chunk is in
the database while the next is read and parsed (two stages overlap); answers leave in line
order through a queue the response drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from idservice.api.problems import DB_UNAVAILABLE
from idservice.errors import PayloadTooLarge, ProblemError, Unavailable
from idservice.logging import get_logger

__all__ = ["NdjsonStream", "read_lines", "run_ndjson", "start_ndjson"]

_log = get_logger(__name__)
Item = TypeVar("Item")
# Handles one chunk of (line number, item or its problem) and answers its NDJSON lines.
Process = Callable[[list[tuple[int, Item | ProblemError]]], Coroutine[Any, Any, bytes]]


class NdjsonStream(Response):
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


async def read_lines(request: Request, limit: int) -> AsyncIterator[tuple[int, bytes]]:
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


class _Pipeline(Generic[Item]):
    def __init__(self, request: Request, *, body_limit: int, line_limit: int, chunk_lines: int,
                 parse: Callable[[bytes], Item],
                 process: Process[Item],
                 queue: asyncio.Queue[bytes | None]) -> None:
        self.request, self.body_limit, self.line_limit = request, body_limit, line_limit
        self.chunk_lines, self.parse, self.process, self.queue = chunk_lines, parse, process, queue

    async def run(self) -> None:
        chunk: list[tuple[int, Item | ProblemError]] = []
        pending: asyncio.Task[bytes] | None = None

        async def hand_over(lines: list[tuple[int, Item | ProblemError]]) -> None:
            nonlocal pending
            if pending is not None:
                self.queue.put_nowait(await pending)
                pending = None
            if lines:
                pending = asyncio.create_task(self.process(lines))

        try:
            async for number, raw in read_lines(self.request, self.body_limit):
                if not raw.strip():
                    continue
                item: Item | ProblemError
                try:
                    if len(raw) > self.line_limit:
                        raise PayloadTooLarge("line larger than the single-request limit")
                    item = self.parse(raw)
                except ProblemError as problem:
                    item = problem
                chunk.append((number, item))
                if len(chunk) >= self.chunk_lines:
                    await hand_over(chunk)
                    chunk = []
            await hand_over(chunk)
            await hand_over([])
        except Exception as exc:  # report and stop: lines already answered stay answered
            if pending is not None:  # let the chunk in flight finish: it is one transaction
                with contextlib.suppress(Exception):
                    self.queue.put_nowait(await pending)
            if isinstance(exc, ProblemError):
                fatal = exc
            elif isinstance(exc, DB_UNAVAILABLE):
                fatal = Unavailable()
            else:
                _log.exception("batch_failed", error=type(exc).__name__)
                fatal = ProblemError()
            self.queue.put_nowait(
                json.dumps({"line": None, "error": fatal.to_problem()}).encode() + b"\n")
        finally:
            self.queue.put_nowait(None)


async def run_ndjson(request: Request, *, body_limit: int, line_limit: int, chunk_lines: int,
                     parse: Callable[[bytes], Item],
                     process: Process[Item],
                     queue: asyncio.Queue[bytes | None]) -> None:
    """Read, parse and process chunk by chunk into `queue` (None at the end)."""
    await _Pipeline(request, body_limit=body_limit, line_limit=line_limit,
                    chunk_lines=chunk_lines, parse=parse, process=process, queue=queue).run()


def start_ndjson(request: Request, *, body_limit: int, line_limit: int, chunk_lines: int,
                 parse: Callable[[bytes], Item],
                 process: Process[Item],
                 ) -> NdjsonStream:
    """The streamed response of an NDJSON request, its worker already started."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    worker = asyncio.create_task(run_ndjson(
        request, body_limit=body_limit, line_limit=line_limit, chunk_lines=chunk_lines,
        parse=parse, process=process, queue=queue))
    return NdjsonStream(queue, worker)

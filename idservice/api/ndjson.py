"""NDJSON streaming for `POST /v1/pins:batch` (contract 4) and the offline offices' sync
`POST /v1/reservations/{id}/issued` (contract 8): the request's lines in, the answers out. One
pipeline for both (`start_ndjson`); each route brings only how a line is parsed and how a chunk
of parsed lines is processed.

- `read_lines` splits the body into lines in linear time: each byte is looked at once and
  copied at most once into its line (re-joining the whole buffer for every chunk made one
  64 MiB line cost ~26 s of event-loop CPU). A line longer than the single-request limit is
  reported the moment it passes the limit, without waiting for its newline (contract 7, "Batch
  lines"), and the rest of it is dropped as it arrives: it is never held in memory.
- `Answers` holds the answer lines waiting to be sent, up to a byte budget: when the client
  reads its answers slower than it sends lines, the reader waits, so the request body is no
  longer read and TCP flow control slows the client down (backpressure); memory per batch stays
  bounded.
- `NdjsonStream` sends the answers as they come.
- `start_ndjson` runs the two stages: lines are parsed into items (or the problem found in
  them) and grouped in chunks; one chunk is in the database while the next is read and parsed,
  and answers still leave in line order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from idservice.api.problems import DB_UNAVAILABLE
from idservice.errors import PayloadTooLarge, ProblemError, Unavailable
from idservice.logging import get_logger

__all__ = ["MAX_PENDING_ANSWER_BYTES", "Answers", "NdjsonStream", "Process", "read_lines",
           "start_ndjson"]

_log = get_logger(__name__)
Item = TypeVar("Item")
Process = Callable[[list[tuple[int, Item | ProblemError]]], Coroutine[Any, Any, bytes]]
"""Handles one chunk of (line number, parsed item or the problem of its line) in one
transaction and returns its answer lines."""

MAX_PENDING_ANSWER_BYTES = 16 * 1024 * 1024
"""About 150,000 answer lines: a client that sends more than that before it reads any answer
stalls (it must read while it sends, as curl and bench/issuance.py do)."""


async def read_lines(chunks: AsyncIterator[bytes], line_limit: int,
                     body_limit: int) -> AsyncIterator[tuple[int, bytes | None]]:
    """`(line number, line without its newline)` for each line of the body, 1-based; `None`
    instead of the line for one longer than `line_limit`, yielded as soon as it passes the
    limit. Raises `PayloadTooLarge` once the whole body passes `body_limit`. A last line without
    a newline counts if it holds more than white space."""
    number = 0
    parts: list[bytes] = []  # the current line's pieces (each chunk's share copied once)
    size = 0
    skipping = False  # inside a line already refused: drop bytes up to its newline
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > body_limit:
            raise PayloadTooLarge(f"batch body larger than {body_limit} bytes")
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if skipping:
                skipping = False
            else:
                number += 1
                if size + end - start > line_limit:
                    yield number, None
                else:
                    parts.append(chunk[start:end])
                    yield number, b"".join(parts)
            parts, size = [], 0
            start = end + 1
        rest = len(chunk) - start
        if rest == 0 or skipping:
            continue
        if size + rest > line_limit:
            number += 1
            yield number, None
            parts, size, skipping = [], 0, True
        else:
            parts.append(chunk[start:] if start else chunk)
            size += rest
    if parts and (last := b"".join(parts)).strip():
        yield number + 1, last


class Answers:
    """A queue of answer bytes (None: the end) holding at most about `limit` bytes: `put`
    waits while the queue is over its budget (one item may overshoot it)."""

    def __init__(self, limit: int = MAX_PENDING_ANSWER_BYTES) -> None:
        self._items: collections.deque[bytes | None] = collections.deque()
        self._bytes = 0
        self._limit = limit
        self._changed = asyncio.Condition()

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    async def put(self, item: bytes | None) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._bytes < self._limit)
            self._items.append(item)
            self._bytes += len(item or b"")
            self._changed.notify_all()

    async def get(self) -> bytes | None:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            item = self._items.popleft()
            self._bytes -= len(item or b"")
            self._changed.notify_all()
            return item


class NdjsonStream(Response):
    """Streams answer lines from `answers`, filled by `worker` (the task reading the request).

    Reading and answering are decoupled so a client that sends a part of its body before
    reading the answers does not deadlock against our writes (answers wait in `answers`, up to
    its budget). Starlette's StreamingResponse would also listen for a disconnect on
    `receive`, competing with the request-body reader; this response only sends. If sending
    fails (the client is gone), the worker is cancelled: nobody would read what it answers.
    """

    media_type = "application/x-ndjson"

    def __init__(self, answers: Answers, worker: asyncio.Task[None]) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        self.answers = answers
        self.worker = worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/x-ndjson")]})
            while (item := await self.answers.get()) is not None:
                await send({"type": "http.response.body", "body": item, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BaseException:
            self.worker.cancel()
            raise
        await self.worker


async def _run(request: Request, answers: Answers, *, body_limit: int, line_limit: int,
               chunk_lines: int, parse: Callable[[bytes], Item], process: Process[Item]) -> None:
    """Read, parse and process chunk by chunk into `answers`. A line over `line_limit` is
    answered at once (its chunk is flushed) while the rest of it is still arriving. Cancelled
    (client gone), it stops without an end marker: the chunk in flight is its own task and
    transaction, and finishes."""
    chunk: list[tuple[int, Item | ProblemError]] = []
    pending: asyncio.Task[bytes] | None = None

    async def hand_over(lines: list[tuple[int, Item | ProblemError]]) -> None:
        nonlocal pending
        if pending is not None:
            await answers.put(await pending)
            pending = None
        if lines:
            pending = asyncio.create_task(process(lines))

    try:
        async for number, raw in read_lines(request.stream(), line_limit, body_limit):
            if raw is not None and not raw.strip():
                continue
            item: Item | ProblemError
            try:
                if raw is None:
                    raise PayloadTooLarge(f"line larger than the single-request limit "
                                          f"({line_limit} bytes); the rest of it is skipped")
                item = parse(raw)
            except ProblemError as problem:
                item = problem
            chunk.append((number, item))
            if len(chunk) >= chunk_lines or raw is None:
                await hand_over(chunk)
                chunk = []
                if raw is None:
                    await hand_over([])  # the refusal leaves now, not with the next chunk
        await hand_over(chunk)
        await hand_over([])
    except Exception as exc:  # report and stop: lines already answered stay answered
        if pending is not None:  # let the chunk in flight finish: it is one transaction
            with contextlib.suppress(Exception):
                await answers.put(await pending)
        if isinstance(exc, ProblemError):
            fatal = exc
        elif isinstance(exc, DB_UNAVAILABLE):
            fatal = Unavailable()
        else:
            _log.exception("batch_failed", error=type(exc).__name__)
            fatal = ProblemError()
        await answers.put(json.dumps({"line": None, "error": fatal.to_problem()}).encode()
                          + b"\n")
    await answers.put(None)


def start_ndjson(request: Request, *, body_limit: int, line_limit: int, chunk_lines: int,
                 parse: Callable[[bytes], Item], process: Process[Item]) -> NdjsonStream:
    """The streamed answer of an NDJSON request, its worker already started: `parse` turns a
    line into an item (raising a `ProblemError` answers that line), `process` handles a chunk."""
    answers = Answers()
    worker = asyncio.create_task(_run(
        request, answers, body_limit=body_limit, line_limit=line_limit,
        chunk_lines=chunk_lines, parse=parse, process=process))
    return NdjsonStream(answers, worker)

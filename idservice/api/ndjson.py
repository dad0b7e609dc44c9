"""NDJSON streaming for `POST /v1/pins:batch`: the request's lines in, the answers out.

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
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from idservice.errors import PayloadTooLarge

__all__ = ["MAX_PENDING_ANSWER_BYTES", "Answers", "NdjsonStream", "read_lines"]

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

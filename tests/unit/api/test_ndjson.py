"""The batch body's line reader and the bounded answer queue (`api/ndjson.py`), on real bytes:
line numbers, a line over the limit refused the moment it passes it (before its newline
arrives), the whole body's limit, linear time, and backpressure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

import pytest

from idservice.api.ndjson import Answers, read_lines
from idservice.errors import PayloadTooLarge


async def _chunks(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _read(pieces: Iterable[bytes], line_limit: int = 10,
                body_limit: int = 10**9) -> list[tuple[int, bytes | None]]:
    return [item async for item in read_lines(_chunks(pieces), line_limit, body_limit)]


async def test_lines_are_numbered_across_chunk_boundaries() -> None:
    assert await _read([b'{"a"', b':1}\n{}', b'\n\n  \n{"b":2}']) == [
        (1, b'{"a":1}'), (2, b"{}"), (3, b""), (4, b"  "), (5, b'{"b":2}')]


async def test_crlf_and_a_last_line_without_newline() -> None:
    assert await _read([b"{}\r\n{}"]) == [(1, b"{}\r"), (2, b"{}")]
    assert await _read([b"{}\n  "]) == [(1, b"{}")]  # trailing white space is no line


async def test_line_at_the_limit_passes_one_byte_more_is_refused() -> None:
    assert await _read([b"0123456789\n", b"0123456789A\n", b"ok\n"]) == [
        (1, b"0123456789"), (2, None), (3, b"ok")]


async def test_long_line_is_refused_before_its_newline_arrives() -> None:
    """The refusal comes with the chunk that passes the limit; later chunks of that line are
    dropped, and the next line keeps its number."""
    seen: list[tuple[int, bytes | None]] = []
    sent: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        for piece in [b"{}\n", b"x" * 8, b"x" * 8, b"x" * 8, b"x\n{}\n"]:
            sent.append(piece)
            yield piece

    async for number, line in read_lines(body(), 10, 10**9):
        seen.append((number, line))
        if line is None:
            assert len(sent) == 3  # 16 bytes of line 2 read, its newline not yet
    assert seen == [(1, b"{}"), (2, None), (3, b"{}")]


async def test_long_line_without_any_newline_is_refused_once() -> None:
    assert await _read([b"x" * 7] * 100) == [(1, None)]


async def test_body_over_its_limit_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        await _read([b"{}\n"] * 10, body_limit=25)


async def test_reading_is_linear_in_the_body_size() -> None:
    """64 MiB in one line, in 64 KiB chunks: the old reader re-joined and re-split the whole
    buffer for each chunk (about 26 s); a linear one needs milliseconds."""
    piece = b"x" * 65536
    started = time.perf_counter()
    result = await _read([piece] * 1024, line_limit=1 << 30)
    assert result == [(1, piece * 1024)]
    assert time.perf_counter() - started < 2


async def test_answers_wait_while_over_budget_and_resume_when_read() -> None:
    answers = Answers(limit=10)
    await answers.put(b"123456")
    await answers.put(b"789012")  # 12 bytes: over budget now (one item may overshoot)
    blocked = asyncio.create_task(answers.put(b"345"))
    await asyncio.sleep(0.05)
    assert not blocked.done() and answers.pending_bytes == 12
    assert await answers.get() == b"123456"
    await asyncio.wait_for(blocked, 1)
    assert answers.pending_bytes == 9
    await answers.put(None)
    assert [await answers.get() for _ in range(3)] == [b"789012", b"345", None]

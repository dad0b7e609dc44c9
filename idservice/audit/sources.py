"""Where `audit verify` reads the log from: the database (default) or the auditor API."""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from idservice.audit import entry, leaves, treestore
from idservice.audit.leaves import LeafChunk
from idservice.audit.signed_note import CheckpointError, NoteVerifier
from idservice.db.types import Conn
from idservice.queries import audit as q

__all__ = ["DatabaseSource", "HttpSource"]


class DatabaseSource:
    """Reads rows, stored leaves and checkpoints over one connection. Run it inside a
    REPEATABLE READ transaction for one consistent snapshot.

    Leaves come in aligned chunks (`leaves.py`): of `chunk` rows (a power of two; by default
    2**16 with workers, else the largest power of two up to `batch`), hashed by `workers`
    processes that connect to `url` in this transaction's snapshot, or here when `workers` is 0
    (a service keeps answering between chunks)."""

    def __init__(self, conn: Conn, batch: int = 5000, *, url: str | None = None,
                 workers: int = 0, chunk: int | None = None) -> None:
        if workers and not url:
            raise ValueError("worker processes need the database url")
        size = chunk or (leaves.CHUNK if workers else 1 << (max(batch, 1).bit_length() - 1))
        if size & (size - 1):
            raise ValueError(f"the chunk size must be a power of two, not {size}")
        self._conn = conn
        self._batch = batch
        self._url = url
        self._workers = workers
        self._chunk = size

    async def count(self) -> int:
        top = await self._conn.fetchval(q.MAX_INDEX)
        return 0 if top is None else int(top) + 1

    async def checkpoints(self) -> list[str]:
        return await treestore.checkpoints(self._conn)

    async def events(self) -> AsyncIterator[list[dict[str, Any]]]:
        start = 0
        while True:
            rows = await self._conn.fetch(q.ENTRIES_FROM, start, self._batch)
            if not rows:
                return
            yield [entry.render_row(r) for r in rows]
            start = int(rows[-1]["index"]) + 1

    async def leaf_hashes(self, start: int, end: int) -> dict[int, bytes] | None:
        return await treestore.leaf_hashes(self._conn, start, end)

    def chunks(self, sizes: Collection[int]) -> AsyncGenerator[LeafChunk, None] | None:
        return self._chunks(sorted(sizes))

    def _bounds(self, count: int) -> list[tuple[int, int, int]]:
        """(start, lowest, highest index read) per chunk; the first and the last are open."""
        c = self._chunk
        n = max(1, -(-count // c))
        return [(i * c, leaves.MIN_INDEX if i == 0 else i * c,
                 leaves.MAX_INDEX if i == n - 1 else (i + 1) * c - 1) for i in range(n)]

    async def _chunks(self, sizes: list[int]) -> AsyncGenerator[LeafChunk, None]:
        bounds = self._bounds(await self.count())

        def inside(start: int) -> list[int]:
            return [s for s in sizes if start < s <= start + self._chunk]

        if not self._workers:
            await leaves.prepare(self._conn)
            for start, low, high in bounds:
                yield await leaves.read_chunk(self._conn, start, low, high, inside(start))
            return
        assert self._url is not None  # checked in __init__
        snapshot = str(await self._conn.fetchval(q.EXPORT_SNAPSHOT))
        pool = ProcessPoolExecutor(min(self._workers, len(bounds)),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=leaves.worker_start,
                                   initargs=(self._url, snapshot, "idservice-audit-verify"))
        try:
            loop = asyncio.get_running_loop()
            futures = [loop.run_in_executor(pool, leaves.worker_chunk, start, low, high,
                                            inside(start)) for start, low, high in bounds]
            for future in futures:
                yield await future
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    async def integrated_size(self) -> int | None:
        return await treestore.integrated_size(self._conn)

    async def consistency(self, first: int, second: int) -> list[bytes]:
        return await treestore.consistency(self._conn, first, second)

    async def uncovered_age(self, start: int) -> float | None:
        age = await self._conn.fetchval(q.UNCOVERED_AGE, start)
        return None if age is None else float(age)


class HttpSource:
    """Reads the log through the auditor API with an auditor's access token."""

    def __init__(self, client: httpx.AsyncClient, batch: int = 1000) -> None:
        self._client = client
        self._batch = batch

    async def _get(self, path: str, **params: Any) -> httpx.Response:
        response = await self._client.get(path, params=params)
        response.raise_for_status()
        return response

    async def verifier(self) -> NoteVerifier:
        """Every checkpoint key the service publishes (`/v1/audit/keys`: current and retired,
        so checkpoints signed before a key rotation verify); `/v1/audit/key` (the current key
        only) from a service without that extension."""
        response = await self._client.get("/v1/audit/keys")
        if response.status_code == 404:
            response = await self._get("/v1/audit/key")
            return NoteVerifier.from_pem(response.headers["Idservice-Note-Key-Name"],
                                         response.content)
        response.raise_for_status()
        keys = response.json()["keys"]
        names = {key["name"] for key in keys}
        if len(names) != 1:
            raise CheckpointError(f"the service lists checkpoint keys under {len(names)} names")
        current = [k for k in keys if k["status"] == "current"]
        retired = [k for k in keys if k["status"] != "current"]
        return NoteVerifier.from_pems(names.pop(), [k["public_key_pem"].encode()
                                                    for k in current + retired])

    async def checkpoints(self) -> list[str]:
        notes: list[str] = []
        since = 0
        while True:
            page = (await self._get("/v1/audit/checkpoints", since=since)).json()["checkpoints"]
            notes.extend(page)
            if len(page) < 10_000:
                return notes
            since = int(page[-1].split("\n")[1]) + 1

    async def events(self) -> AsyncIterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        async with self._client.stream("GET", "/v1/audit/export",
                                       params={"format": "ndjson"}) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.strip():
                    batch.append(json.loads(line))
                if len(batch) >= self._batch:
                    yield batch
                    batch = []
        if batch:
            yield batch

    async def leaf_hashes(self, start: int, end: int) -> dict[int, bytes] | None:
        return None

    def chunks(self, sizes: Collection[int]) -> AsyncGenerator[LeafChunk, None] | None:
        return None  # events are read one by one from the export

    async def integrated_size(self) -> int | None:
        return None

    async def consistency(self, first: int, second: int) -> list[bytes]:
        body = (await self._get("/v1/audit/proofs/consistency", first=first,
                                second=second)).json()
        return [base64.b64decode(h) for h in body["hashes"]]

    async def uncovered_age(self, start: int) -> float | None:
        """The age of event `start` (the first one no checkpoint covers) by its `at`, on this
        machine's clock: the API does not show when an event was sequenced, which is at most
        the length of its transaction later."""
        response = await self._client.get(f"/v1/audit/events/{start}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        at = datetime.fromisoformat(response.json()["at"].replace("Z", "+00:00"))
        return (datetime.now(UTC) - at).total_seconds()

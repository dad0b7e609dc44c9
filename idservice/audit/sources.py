"""Where `audit verify` reads the log from: the database (default) or the auditor API."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from idservice.audit import entry, treestore
from idservice.audit.checkpoints import NoteVerifier
from idservice.db.types import Conn
from idservice.queries import audit as q

__all__ = ["DatabaseSource", "HttpSource"]


class DatabaseSource:
    """Reads rows, stored leaves and checkpoints over one connection. Run it inside a
    REPEATABLE READ transaction for one consistent snapshot."""

    def __init__(self, conn: Conn, batch: int = 5000) -> None:
        self._conn = conn
        self._batch = batch

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

    async def integrated_size(self) -> int | None:
        return await treestore.integrated_size(self._conn)

    async def consistency(self, first: int, second: int) -> list[bytes]:
        return await treestore.consistency(self._conn, first, second)


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
        response = await self._get("/v1/audit/key")
        return NoteVerifier.from_pem(response.headers["Idservice-Note-Key-Name"],
                                     response.content)

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

    async def integrated_size(self) -> int | None:
        return None

    async def consistency(self, first: int, second: int) -> list[bytes]:
        body = (await self._get("/v1/audit/proofs/consistency", first=first,
                                second=second)).json()
        return [base64.b64decode(h) for h in body["hashes"]]

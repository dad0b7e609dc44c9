"""The stack's floor: the least a `POST /v1/pins` can do on FastAPI + uvicorn + asyncpg.

Run by bench/floor.py under `uvicorn --workers N` (uvloop, httptools: what `idservice serve`
uses). It is not idservice: no validation beyond `json.loads`, no authentication, no PIN, no
audit event, no duplicate check. `FLOOR_MODE` says how much of a request it does:

- `echo`: read and parse the JSON body, answer 201 with a small JSON document: the HTTP path
  alone (uvicorn, Starlette routing, one route, JSON in and out);
- `insert`: and one durable single-row INSERT per request (its own transaction and commit),
  through an asyncpg pool: what pgbench's baseline does, behind HTTP;
- `group`: the same rows, but concurrent requests of a worker share one multi-row INSERT and
  one commit (at most `FLOOR_GROUP_MAX` rows, `FLOOR_GROUPS_IN_FLIGHT` statements at a time,
  no added wait), as idservice's coalescer does (`db/group_commit.py`).

So `insert` and `group` are upper bounds for single issuance on this machine with this stack:
idservice does all of that and much more per request.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

MODE = os.environ.get("FLOOR_MODE", "insert")
DSN = os.environ.get("FLOOR_DSN", "")
GROUP_MAX = int(os.environ.get("FLOOR_GROUP_MAX", "32"))
IN_FLIGHT = int(os.environ.get("FLOOR_GROUPS_IN_FLIGHT", "2"))
POOL_SIZE = int(os.environ.get("FLOOR_POOL_SIZE", "16"))

INSERT_ONE = "INSERT INTO bench_insert (k, payload) VALUES ($1, $2)"
INSERT_MANY = ("INSERT INTO bench_insert (k, payload) "
               "SELECT * FROM unnest($1::bigint[], $2::text[])")


class Grouper:
    """Concurrent rows of one worker in one statement: whoever finds a free slot takes every
    row waiting (up to GROUP_MAX) and inserts them; the others wait for their row's future."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.waiting: list[tuple[int, str, asyncio.Future[None]]] = []
        self.running = 0
        self.tasks: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak refs)

    async def insert(self, key: int, payload: str) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((key, payload, done))
        if self.running < IN_FLIGHT:
            task = asyncio.ensure_future(self._flush())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await done

    async def _flush(self) -> None:
        self.running += 1
        try:
            while self.waiting:
                group, self.waiting = self.waiting[:GROUP_MAX], self.waiting[GROUP_MAX:]
                try:
                    await self.pool.execute(INSERT_MANY, [k for k, _, _ in group],
                                            [p for _, p, _ in group])
                except Exception as exc:  # every member of the group learns of it
                    for _, _, f in group:
                        f.set_exception(exc)
                else:
                    for _, _, f in group:
                        f.set_result(None)
        finally:
            self.running -= 1


state: dict[str, object] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if MODE != "echo":
        pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE)
        state["pool"] = pool
        state["grouper"] = Grouper(pool)
    yield
    if "pool" in state:
        await state["pool"].close()  # type: ignore[attr-defined]


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.get("/readyz")
async def readyz() -> Response:
    return Response(status_code=200)


@app.post("/v1/pins")
async def issue(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    number = body["registration"]["number"]
    key = secrets.randbits(62)
    if MODE == "insert":
        await state["pool"].execute(INSERT_ONE, key, number)  # type: ignore[attr-defined]
    elif MODE == "group":
        await state["grouper"].insert(key, number)  # type: ignore[attr-defined]
    return JSONResponse({"pin": f"{key % 10**12:012d}", "number": number}, status_code=201)

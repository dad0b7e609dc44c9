"""A test's statements in one transaction that is rolled back, on a new connection: for tests
that load rows into the session database to see a plan or a rule, and must leave it as it was
(the other tests of the session share it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from idservice.db.pool import connect

T = TypeVar("T")


async def rolled_back(url: str, body: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """`body(conn)`'s result; whatever it wrote is rolled back, whether it returned or raised."""
    conn = await connect(url)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            return await body(conn)
        finally:
            await tx.rollback()
    finally:
        await conn.close()

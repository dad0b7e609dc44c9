"""The leaf the integrator stores is the leaf hash of the event exactly as the API renders it,
for odd events too (contract section 5): the integrator and the verifier hash rows in bulk
(`entry.row_leaf_hashes`), the API renders them one by one (`entry.render_row`), and both must
be the same object. Real database: the values go through jsonb and back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest_asyncio

from idservice.audit import entry, leaves
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.integrator import integrate_once
from idservice.audit.merkle import CompactRange
from idservice.audit.recorder import record
from idservice.audit.sequencer import sequence_once
from idservice.auth.principal import Actor
from idservice.db.migrate import migrate
from idservice.db.pool import connect, create_pool
from idservice.db.roles import DatabaseUrls, url_for
from idservice.queries import audit as q
from tests.support.horizon import wait_for_older_transactions

ODD_DETAILS: list[dict[str, Any]] = [
    {},
    {"what": "events", "count": 3, "ok": True, "none": None, "filters": {"pin": "052326415904"}},
    {"float": 0.1, "neg": -2.5, "tiny": 1.5e-7, "whole": 2.0, "e": 1.25e10},
    {"😀": 1, "\ue000": 2, "ä": 3, "a": 4, "": 5, "10": 6, "9": 7},
    {"ctrl": "\x01\b\t\n\f\r\x1f\x7f", "quote": "\"\\/", "sep": "\u2028\u2029",
     "vi": "Nguyễn Văn Đức", "emoji": "😀", "bom": "\ufeff"},
    {"nested": {"a": [1, {"b": None}, True, False, []], "z": {}, "y": [[[]]]}},
    {"safe": 2**53 - 1, "neg": -(2**53) + 1, "fifteen": 10**15 - 1, "zero": 0},
    {"line": 12, "error": "invalid_pin", "text": "x" * 2000},
]

ODD_TEXT = ["Nguyễn Văn An", "quote \" back \\ slash", "ctrl \x01\x1f\n\t", "😀 astral",
            "\u2028", "", "<script>"]


@pytest_asyncio.fixture(loop_scope="session")
async def odd_log(fresh_database: DatabaseUrls, pg_superuser_url: str
                  ) -> AsyncIterator[DatabaseUrls]:
    await migrate(fresh_database.owner)
    pool = await create_pool(fresh_database.service, min_size=1, max_size=2)
    try:
        for n, details in enumerate(ODD_DETAILS):
            text = ODD_TEXT[n % len(ODD_TEXT)]
            ctx = RequestContext(Actor("operator", text or "x"), text if n % 2 else None,
                                 None if n % 3 else "10.0.0.1")
            async with pool.acquire() as conn, conn.transaction():
                await record(conn, ctx, [
                    AuditEvent("person.read", "found", pin="052326415904", purpose=text,
                               details=details),
                    AuditEvent("audit.read", text or "ok", details={"i": n, **details}),
                ])
        # `at` with microseconds (only a superuser can write one): both paths truncate
        superuser = url_for(pg_superuser_url,
                            database=urlsplit(fresh_database.service).path.lstrip("/"))
        conn = await asyncpg.connect(superuser)
        try:
            await conn.execute(
                "INSERT INTO audit_event (at, actor_type, actor_id, action, outcome, details) "
                "VALUES (date_trunc('month', now()) + interval '1 day 0.999999 second', "
                "'anonymous', 'a', 'auth.login_failed', 'refused', '{\"n\": 1}')")
        finally:
            await conn.close()
        await wait_for_older_transactions(pool)
        await sequence_once(pool)
        while await integrate_once(pool, batch=3, wait=True):
            pass
        yield fresh_database
    finally:
        await pool.close()


async def test_stored_leaf_is_the_leaf_of_the_event_the_api_renders(
    odd_log: DatabaseUrls,
) -> None:
    conn = await connect(odd_log.auditor)
    try:
        size = int(await conn.fetchval(q.MAX_INDEX)) + 1
        api = [entry.render_row(await conn.fetchrow(q.ENTRY, i)) for i in range(size)]
        stored = [bytes(r["hash"]) for r in await conn.fetch(q.LEAF_HASHES, 0, size)]
        bulk = await conn.fetch(q.ROWS_RANGE, 0, size)
    finally:
        await conn.close()
    assert size == 2 * len(ODD_DETAILS) + 1
    # the odd values really reached the API's objects
    assert {k for e in api for k in e["details"]} >= {"😀", "\ue000", "ctrl", "float"}
    assert any(e["at"].endswith(".999Z") for e in api)
    assert [entry.leaf_hash(e) for e in api] == stored
    indexes, hashes = entry.row_leaf_hashes(bulk)
    assert (indexes, hashes) == (list(range(size)), stored)


async def test_a_chunk_read_in_the_verifiers_snapshot_matches_the_stored_tree(
    odd_log: DatabaseUrls,
) -> None:
    conn = await connect(odd_log.auditor)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await leaves.prepare(conn)
            chunk = await leaves.read_chunk(conn, 0, leaves.MIN_INDEX, leaves.MAX_INDEX, [5])
            head = await conn.fetchrow(q.TREE_AT, 2 * len(ODD_DETAILS) + 1)
    finally:
        await conn.close()
    assert chunk.rows is None and chunk.stored_all  # regular: every stored leaf equal
    assert chunk.frontiers is not None and list(chunk.frontiers) == [5, chunk.count]
    tree = CompactRange()
    tree.append_range(chunk.count, chunk.frontiers[chunk.count])
    assert head is not None and tree.root() == bytes(head["root"])

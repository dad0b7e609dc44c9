"""create_pool / connect: json(b) as Python objects, application_name that survives pool resets."""

from __future__ import annotations

import contextlib

import asyncpg

from idservice.db.pool import connect, create_pool
from idservice.db.roles import DatabaseUrls


async def test_pool_decodes_and_encodes_jsonb(database_urls: DatabaseUrls) -> None:
    pool = await create_pool(database_urls.service, min_size=1, max_size=2)
    try:
        value = {"name": "Ünal", "list": [1, 2.5, None, True], "nested": {"k": "v"}}
        assert await pool.fetchval("SELECT $1::jsonb", value) == value
        assert await pool.fetchval("SELECT '{\"a\": [1]}'::json") == {"a": [1]}
        assert await pool.fetchval("SELECT '[1, 2]'::jsonb") == [1, 2]
    finally:
        await pool.close()


async def test_pool_application_name_survives_release(database_urls: DatabaseUrls) -> None:
    pool = await create_pool(
        database_urls.service, min_size=1, max_size=1, application_name="idservice-test"
    )
    try:
        for _ in range(2):  # the same connection, reset (RESET ALL) in between
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW application_name") == "idservice-test"
    finally:
        await pool.close()


async def test_connect_has_same_codecs(database_urls: DatabaseUrls) -> None:
    conn = await connect(database_urls.auditor)
    try:
        assert await conn.fetchval("SELECT $1::jsonb", {"x": 1}) == {"x": 1}
        assert await conn.fetchval("SHOW application_name") == "idservice"
        assert await conn.fetchval("SELECT current_user") == "idservice_audit"
    finally:
        await conn.close()


async def test_pool_replaces_a_connection_whose_server_went_away(
    database_urls: DatabaseUrls, pg_superuser_url: str
) -> None:
    """A backend killed under the pool (a crash, a failover) costs one failed call, never a
    connection that keeps failing: the broken one is discarded and the next call reconnects."""
    pool = await create_pool(database_urls.service, min_size=1, max_size=1)
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        admin = await asyncpg.connect(pg_superuser_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await admin.close()
        with contextlib.suppress(asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError,
                                 asyncpg.InterfaceError, OSError):
            await pool.fetchval("SELECT 1")  # may fail once (or see the EOF first and reconnect)
        assert await pool.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await pool.close()

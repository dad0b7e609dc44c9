"""create_pool / connect: json(b) as Python objects, application_name that survives pool resets."""

from __future__ import annotations

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

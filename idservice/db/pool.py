"""asyncpg pools and connections with the settings every idservice connection needs.

- json/jsonb decode to Python objects (stdlib `json`), so repositories never parse strings and
  audit payloads round-trip unchanged.
- `application_name` identifies the process in pg_stat_activity and the server log. It is sent
  as a startup parameter, not with SET in `init`: the pool runs RESET ALL whenever a connection
  is released, which would undo a SET after the first use.
"""

from __future__ import annotations

import json

import asyncpg

__all__ = ["DEFAULT_APPLICATION_NAME", "connect", "create_pool"]

DEFAULT_APPLICATION_NAME = "idservice"


async def create_pool(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    application_name: str = DEFAULT_APPLICATION_NAME,
) -> asyncpg.Pool[asyncpg.Record]:
    """A connection pool on `url`; close it with `await pool.close()`."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_rollback_if_open,
        server_settings={"application_name": application_name},
    )


async def _rollback_if_open(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Replace asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL): a
    round trip per request that buys nothing here. The service takes only transaction-scoped
    advisory locks, never LISTENs and never SETs session state; only a transaction left open
    (a bug) needs undoing, and that costs nothing when there is none."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def connect(
    url: str, *, application_name: str = DEFAULT_APPLICATION_NAME
) -> asyncpg.Connection[asyncpg.Record]:
    """A single connection with the same codecs as the pool's (CLI, migrations, tests)."""
    conn = await asyncpg.connect(url, server_settings={"application_name": application_name})
    try:
        await _init_connection(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name,
            schema="pg_catalog",
            encoder=_dumps,
            decoder=json.loads,
            format="text",
        )


def _dumps(value: object) -> str:
    # Compact and deterministic for the same input; ensure_ascii=False keeps names readable.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

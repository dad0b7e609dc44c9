"""asyncpg pools and connections with the settings every idservice connection needs.

- json/jsonb decode to Python objects (stdlib `json`), so repositories never parse strings and
  audit payloads round-trip unchanged.
- `application_name` identifies the process in pg_stat_activity and the server log. It is sent
  as a startup parameter, not with SET in `init`: the pool runs RESET ALL whenever a connection
  is released, which would undo a SET after the first use.
- A connection that fails at the connection level (server gone, killed, shutting down, or the
  protocol left mid-operation by such a failure) is terminated on the spot, so the pool never
  hands it out again and opens a fresh one on the next acquire: after a failover (the primary
  killed, a standby promoted, a multi-host URL with `target_session_attrs=read-write`) requests
  fail fast with 503 `unavailable` during the outage and succeed once the new primary answers.
  asyncpg alone can return such a connection to the pool still "open" with an operation
  pending (MagicStack/asyncpg#1069), and every later use of it fails.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from idservice.logging import get_logger

__all__ = ["DEFAULT_APPLICATION_NAME", "ServiceConnection", "connect", "create_pool"]

DEFAULT_APPLICATION_NAME = "idservice"

_log = get_logger(__name__)

# Failures after which a connection's state is unknown: it must not be used again.
_BROKEN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,
)


class ServiceConnection(asyncpg.Connection):
    """asyncpg's connection, closed for good after a connection-level failure."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        try:
            return await super().execute(query, *args, timeout=timeout)
        except _BROKEN as exc:
            replacement = self._discard(exc)
            if replacement is exc:
                raise
            raise replacement from exc

    async def _execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._execute(*args, **kwargs)  # type: ignore[misc]
        except _BROKEN as exc:
            replacement = self._discard(exc)
            if replacement is exc:
                raise
            raise replacement from exc

    def _discard(self, exc: BaseException) -> BaseException:
        """Terminate this connection; the error to raise instead of `exc`.

        An `InterfaceError` while the connection is still open is our misuse (e.g. two
        operations at once), not an outage, and a `TimeoutError` (an OSError) leaves a usable
        connection: both are re-raised as they are. A protocol left in an impossible state
        (`InternalClientError`) is reported as the lost connection it is."""
        if isinstance(exc, asyncpg.InterfaceError | TimeoutError) and not self.is_closed():
            return exc  # misuse, or a statement timeout asyncpg already cancelled: still usable
        if not self.is_closed():
            _log.warning("db_connection_discarded", error=type(exc).__name__)
        self.terminate()
        if isinstance(exc, asyncpg.InternalClientError):
            return asyncpg.ConnectionDoesNotExistError(
                f"connection discarded after a protocol failure ({exc})")
        return exc


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
        connection_class=ServiceConnection,
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

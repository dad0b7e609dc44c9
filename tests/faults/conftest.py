"""Fault tests run their servers on databases of their own: a server with its own SoftHSM token
signs audit checkpoints with its own key, which must not land in the session database (whose
audit log the audit tests verify against the session server's key): `own_database`
(tests/support/fixtures_db.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from idservice.auth.administration import admin_actor
from idservice.auth.client_registry import add_client
from idservice.db.pool import connect


def fetch(url: str, sql: str, *args: object) -> list[Any]:
    async def main() -> list[Any]:
        conn = await connect(url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(main())


def register_client(admin_url: str | None, client_id: str, cert_pem: bytes,
                    jurisdiction: str = "052") -> None:
    """As `idservice clients add` does it: the administrator role, an `admin.*` event."""
    assert admin_url is not None

    async def main() -> None:
        conn = await connect(admin_url)
        try:
            await add_client(conn, client_id=client_id, cert_pem=cert_pem,
                             roles=["registrar"], jurisdiction=jurisdiction, by=admin_actor())
        finally:
            await conn.close()

    asyncio.run(main())

"""Shared plumbing of the CLI commands: settings, the database, output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape

from idservice.db.pool import connect
from idservice.runtime import resolve_database
from idservice.settings import Settings, get_settings

__all__ = ["ADMIN_URL_MISSING", "OrgCode", "OrgName", "OrgSystem", "admin_connection",
           "console", "err_console", "fail", "run", "service_connection", "settings"]

T = TypeVar("T")

# `clients add` / `operators add`: who a citizen's access report names (contract 11).
OrgCode = Annotated[str | None, typer.Option(
    "--org-code", help="the organisation's code, shown to citizens as receiverCode "
    "(default: the jurisdiction, VN for *)")]
OrgName = Annotated[str | None, typer.Option(
    "--org-name", help="the organisation's name, shown to citizens (e.g. 'UBND xã Nhơn Lý')")]
OrgSystem = Annotated[str | None, typer.Option(
    "--system", help="the information system, shown to citizens as receiverSystem")]
console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    return get_settings()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` (plain text, never wrapped: it may be piped or parsed) and the exit."""
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


ADMIN_URL_MISSING = (
    "IDSERVICE_ADMIN_DATABASE_URL is not set: `operators` and `clients` run as the "
    "administrator database role, never as the service's. Create a login role in the group "
    "idservice_administrator (README, \"Running for real\") and put its URL there.")


@asynccontextmanager
async def admin_connection(cfg: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the administrator role (the only writer of operators and clients),
    to the same database the server uses."""
    target = await resolve_database(cfg)
    try:
        if target.admin_url is None:
            raise fail(ADMIN_URL_MISSING, 2)
        conn = await connect(target.admin_url)
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        target.close()


@asynccontextmanager
async def service_connection(cfg: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the service role, to the same database the server uses."""
    target = await resolve_database(cfg)
    try:
        conn = await connect(target.service_url)
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        target.close()

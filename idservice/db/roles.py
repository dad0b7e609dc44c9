"""Roles and database for idservice, created with a superuser URL (embedded mode, set-up).

Least privilege by construction: the service never connects as the owner of its tables.

- `idservice_owner` (LOGIN CREATEROLE) owns the database and everything migrations create.
- `idservice_service`, `idservice_auditor` and `idservice_administrator` are NOLOGIN group roles
  that migrations grant table privileges to (migrations also create them IF NOT EXISTS, for
  servers set up by a DBA).
- `idservice_app` (the API), `idservice_audit` (the auditor's tools) and `idservice_admin` (the
  `operators` / `clients` commands: the only writer of those tables) are the LOGIN roles that
  are members of those groups and nothing else.
- CREATE on schema `public` is revoked from PUBLIC, so only the owner can create objects.

Safe to run again and concurrently: the whole set-up holds an advisory lock, and every "create"
tolerates losing a race against a migration creating the same role. Names are constants (the
database name is validated) and are quoted server-side with `format('%I')`.

The URLs returned carry no password: the embedded cluster trusts its unix socket, which only the
server's system user and root can reach (see `embedded.py`). Against any other server, configure
URLs with credentials instead (IDSERVICE_DATABASE_URL, IDSERVICE_OWNER_DATABASE_URL).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg

__all__ = [
    "ADMINISTRATOR_GROUP",
    "ADMIN_ROLE",
    "APP_ROLE",
    "AUDITOR_GROUP",
    "AUDIT_ROLE",
    "OWNER_ROLE",
    "SERVICE_GROUP",
    "DatabaseUrls",
    "ensure_database",
    "url_for",
]

OWNER_ROLE = "idservice_owner"
APP_ROLE = "idservice_app"
AUDIT_ROLE = "idservice_audit"
ADMIN_ROLE = "idservice_admin"
SERVICE_GROUP = "idservice_service"
AUDITOR_GROUP = "idservice_auditor"
ADMINISTRATOR_GROUP = "idservice_administrator"

_LOCK_KEY = int.from_bytes(b"idsvrole")  # pg_advisory_lock key, fits a signed bigint
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# (role, attributes): attributes are re-applied every run so a role created elsewhere is fixed up
_ROLES: tuple[tuple[str, str], ...] = (
    (SERVICE_GROUP, "NOLOGIN NOSUPERUSER"),
    (AUDITOR_GROUP, "NOLOGIN NOSUPERUSER"),
    (ADMINISTRATOR_GROUP, "NOLOGIN NOSUPERUSER"),
    (OWNER_ROLE, "LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS"),
    (APP_ROLE, "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
    (AUDIT_ROLE, "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
    (ADMIN_ROLE, "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
)
_MEMBERSHIPS: tuple[tuple[str, str], ...] = (
    (SERVICE_GROUP, APP_ROLE), (AUDITOR_GROUP, AUDIT_ROLE), (ADMINISTRATOR_GROUP, ADMIN_ROLE))


@dataclass(frozen=True)
class DatabaseUrls:
    """Connection URLs for the login roles, all on the idservice database."""

    owner: str
    service: str
    auditor: str
    admin: str


async def ensure_database(superuser_url: str, database: str = "idservice") -> DatabaseUrls:
    """Create (or fix up) the roles and `database`; return the URLs of the login roles."""
    if not _NAME.fullmatch(database):
        raise ValueError(f"invalid database name {database!r}")
    conn = await asyncpg.connect(superuser_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await _ensure_roles(conn)
            await _ensure_db(conn, database)
            await _lock_down_public_schema(url_for(superuser_url, database=database))
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()

    return DatabaseUrls(
        owner=url_for(superuser_url, user=OWNER_ROLE, database=database),
        service=url_for(superuser_url, user=APP_ROLE, database=database),
        auditor=url_for(superuser_url, user=AUDIT_ROLE, database=database),
        admin=url_for(superuser_url, user=ADMIN_ROLE, database=database),
    )


def url_for(url: str, *, user: str | None = None, database: str | None = None) -> str:
    """`url` with another database and/or user; a new user drops the password."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if user is not None:
        userinfo = quote(user, safe="")
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if (user is None or k not in {"user", "password"})
        and (database is None or k not in {"dbname", "database"})
    ]
    path = parts.path if database is None else "/" + quote(database, safe="")
    netloc = f"{userinfo}@{hostport}" if userinfo else hostport
    return urlunsplit(
        (parts.scheme, netloc, path, urlencode(query, safe="/", quote_via=quote), parts.fragment)
    )


async def _ensure_roles(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    for role, attributes in _ROLES:
        exists = await conn.fetchval(
            "SELECT true FROM pg_catalog.pg_roles WHERE rolname = $1", role
        )
        if not exists:
            # a migration may create it meanwhile
            with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await conn.execute(await _sql(conn, "CREATE ROLE %I", role))
        await conn.execute(await _sql(conn, f"ALTER ROLE %I WITH {attributes}", role))
    for group, member in _MEMBERSHIPS:
        await conn.execute(await _sql(conn, "GRANT %I TO %I", group, member))
    if await conn.fetchval("SELECT current_setting('server_version_num')::int") >= 160000:
        # Since PostgreSQL 16 CREATEROLE only manages roles one has ADMIN on: let the owner
        # administer ours (passwords, memberships) without gaining their privileges.
        for role, _ in _ROLES:
            if role != OWNER_ROLE:
                await conn.execute(
                    await _sql(
                        conn,
                        "GRANT %I TO %I WITH ADMIN TRUE, INHERIT FALSE, SET FALSE",
                        role,
                        OWNER_ROLE,
                    )
                )


async def _ensure_db(conn: asyncpg.Connection[asyncpg.Record], database: str) -> None:
    owner = await conn.fetchval(
        "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = $1",
        database,
    )
    if owner is None:
        try:
            await conn.execute(
                await _sql(
                    conn, "CREATE DATABASE %I OWNER %I ENCODING 'UTF8'", database, OWNER_ROLE
                )
            )
            return
        except asyncpg.DuplicateDatabaseError:
            pass
    if owner != OWNER_ROLE:
        await conn.execute(await _sql(conn, "ALTER DATABASE %I OWNER TO %I", database, OWNER_ROLE))


async def _lock_down_public_schema(database_url: str) -> None:
    """REVOKE CREATE ON SCHEMA public FROM PUBLIC, only if granted (the default before PG 15).

    Runs under the caller's lock and skips the catalog update when there is nothing to revoke:
    concurrent GRANT/REVOKE on one schema fail with "tuple concurrently updated".
    """
    conn = await asyncpg.connect(database_url)
    try:
        public_can_create = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace n,"
            " aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a"
            " WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')"
        )
        if public_can_create:
            await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    finally:
        await conn.close()


async def _sql(conn: asyncpg.Connection[asyncpg.Record], template: str, *names: str) -> str:
    """A statement with identifiers quoted by the server's own format('%I')."""
    statement: str = await conn.fetchval(
        "SELECT format($1, VARIADIC $2::text[])", template, list(names)
    )
    return statement

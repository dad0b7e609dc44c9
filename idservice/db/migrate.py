"""Forward-only SQL migrations from `migrations/NNNN_name.sql`, applied in numeric order.

Why this shape: the schema is the contract's durable state (person records, the audit log), so a
migration is applied exactly once, atomically, and never edited afterwards.

- Each migration runs in its own transaction together with its `schema_migrations` row: a failing
  one leaves nothing behind (PostgreSQL DDL is transactional). Files must not contain their own
  BEGIN/COMMIT (nor statements that cannot run in a transaction, e.g. CREATE INDEX CONCURRENTLY).
- The whole run holds `pg_advisory_lock`, so concurrent `migrate()` calls (several processes
  starting at once) serialise: the later one finds everything applied and does nothing.
- The sha256 of every applied file is recorded; a changed file, an applied version missing from
  the files, or a new file numbered below an applied one is refused with `MigrationError`
  rather than silently re-run or skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

__all__ = [
    "Migration",
    "MigrationError",
    "default_migrations_dir",
    "load_migrations",
    "migrate",
]

_FILE_NAME = re.compile(r"^(?P<version>\d{4,})_(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)\.sql$")
_LOCK_KEY = int.from_bytes(b"idsvmigr")  # pg_advisory_lock key, fits a signed bigint

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migration files and the database disagree, or a migration failed (rolled back)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str  # sha256 hex of the file's bytes

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def default_migrations_dir() -> Path:
    """`<repo>/migrations`, found relative to this package (editable install / source tree)."""
    return Path(__file__).resolve().parents[2] / "migrations"


def load_migrations(directory: Path) -> list[Migration]:
    """All `NNNN_name.sql` files in `directory`, by version; other *.sql names are refused."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"bad migration file name {path.name!r} (want NNNN_name.sql)")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                f"duplicate migration version {version}: "
                f"{migrations[version].label}.sql and {path.name}"
            )
        data = path.read_bytes()
        try:
            sql = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MigrationError(f"migration {path.name} is not UTF-8") from exc
        checksum = hashlib.sha256(data).hexdigest()
        migrations[version] = Migration(version, match["name"], sql, checksum)
    return [migrations[v] for v in sorted(migrations)]


async def migrate(owner_url: str, directory: Path | None = None) -> list[Migration]:
    """Apply the pending migrations as the owner role; returns those applied by this call."""
    migrations = load_migrations(directory or default_migrations_dir())
    conn = await asyncpg.connect(
        owner_url, server_settings={"application_name": "idservice-migrate"}
    )
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            pending = await _pending(conn, migrations)
            for migration in pending:
                await _apply(conn, migration)
            return pending
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _pending(
    conn: asyncpg.Connection[asyncpg.Record], migrations: list[Migration]
) -> list[Migration]:
    by_version = {m.version: m for m in migrations}
    applied = await conn.fetch(
        "SELECT version, name, checksum FROM public.schema_migrations ORDER BY version"
    )
    for row in applied:
        known = by_version.get(row["version"])
        if known is None:
            raise MigrationError(
                f"migration {row['version']:04d}_{row['name']} is applied in the "
                f"database but has no file"
            )
        if known.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {known.label} was changed after it was applied "
                f"(checksum {row['checksum']} in the database, "
                f"{known.checksum} on disk)"
            )
    done = {row["version"] for row in applied}
    pending = [m for m in migrations if m.version not in done]
    if pending and done and pending[0].version < max(done):
        raise MigrationError(
            f"migration {pending[0].label} is numbered below the applied "
            f"migration {max(done):04d}; give it a higher number"
        )
    return pending


async def _apply(conn: asyncpg.Connection[asyncpg.Record], migration: Migration) -> None:
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)  # no arguments: simple protocol, many statements
            if not conn.is_in_transaction():
                raise MigrationError(
                    f"migration {migration.label} ended the transaction "
                    f"(BEGIN/COMMIT/ROLLBACK are not allowed in migrations)"
                )
            await conn.execute(
                "INSERT INTO public.schema_migrations (version, name, checksum)"
                " VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"migration {migration.label} failed and was rolled back: {type(exc).__name__}: {exc}"
        ) from exc

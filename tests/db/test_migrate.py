"""migrate(): ordered, exactly-once, atomic, and loud about drift between files and database."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg
import pytest

from idservice.db.migrate import (
    MigrationError,
    default_migrations_dir,
    load_migrations,
    migrate,
)
from idservice.db.roles import DatabaseUrls


def _write(directory: Path, file_name: str, sql: str) -> Path:
    path = directory / file_name
    path.write_text(sql, encoding="utf-8")
    return path


def _standard_set(directory: Path) -> None:
    # Each depends on the previous one, and none could run twice (no IF NOT EXISTS).
    _write(directory, "0001_create.sql", "CREATE TABLE steps (n int PRIMARY KEY, note text);")
    _write(
        directory, "0002_slow.sql", "SELECT pg_sleep(0.3); INSERT INTO steps VALUES (2, 'second');"
    )
    _write(
        directory,
        "0010_after_two.sql",
        "ALTER TABLE steps ADD COLUMN extra jsonb; INSERT INTO steps VALUES (10, 'tenth');",
    )


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_load_migrations_orders_numerically_with_checksums(migrations_dir: Path) -> None:
    _standard_set(migrations_dir)
    _write(migrations_dir, "README.md", "not a migration")
    migrations = load_migrations(migrations_dir)
    assert [(m.version, m.name) for m in migrations] == [
        (1, "create"),
        (2, "slow"),
        (10, "after_two"),
    ]
    first = migrations[0]
    assert (
        first.checksum
        == hashlib.sha256((migrations_dir / "0001_create.sql").read_bytes()).hexdigest()
    )
    assert first.sql.startswith("CREATE TABLE steps")


@pytest.mark.parametrize("bad_name", ["1_short.sql", "0003-dash.sql", "0003_.sql", "abcd_x.sql"])
def test_load_migrations_bad_name_is_refused(migrations_dir: Path, bad_name: str) -> None:
    _write(migrations_dir, bad_name, "SELECT 1;")
    with pytest.raises(MigrationError, match="bad migration file name"):
        load_migrations(migrations_dir)


def test_generated_schema_file_is_not_a_migration(migrations_dir: Path) -> None:
    _write(migrations_dir, "0001_create.sql", "SELECT 1;")
    _write(migrations_dir, "schema.sql", "CREATE TABLE x ();")
    assert [m.label for m in load_migrations(migrations_dir)] == ["0001_create"]


def test_load_migrations_duplicate_version_is_refused(migrations_dir: Path) -> None:
    _write(migrations_dir, "0001_one.sql", "SELECT 1;")
    _write(migrations_dir, "0001_other.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="duplicate migration version 1"):
        load_migrations(migrations_dir)


def test_default_migrations_dir_is_repo_migrations() -> None:
    assert default_migrations_dir() == Path(__file__).resolve().parents[2] / "migrations"


async def test_migrate_applies_in_order_then_is_a_no_op(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _standard_set(migrations_dir)
    applied = await migrate(fresh_database.owner, migrations_dir)
    assert [m.version for m in applied] == [1, 2, 10]
    rows = await _fetch(
        fresh_database.owner,
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
    )
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in applied
    ]
    assert [
        r["n"] for r in await _fetch(fresh_database.owner, "SELECT n FROM steps ORDER BY n")
    ] == [2, 10]

    assert await migrate(fresh_database.owner, migrations_dir) == []


async def test_migrate_applies_only_new_files(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _standard_set(migrations_dir)
    await migrate(fresh_database.owner, migrations_dir)
    _write(migrations_dir, "0011_more.sql", "INSERT INTO steps VALUES (11, 'eleventh');")
    assert [m.version for m in await migrate(fresh_database.owner, migrations_dir)] == [11]


async def test_concurrent_migrate_applies_each_migration_once(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _standard_set(migrations_dir)
    first, second = await asyncio.gather(
        migrate(fresh_database.owner, migrations_dir), migrate(fresh_database.owner, migrations_dir)
    )
    assert sorted(m.version for m in first + second) == [1, 2, 10]
    assert [] in (first, second)  # the later run found everything applied
    rows = await _fetch(fresh_database.owner, "SELECT count(*) AS c FROM schema_migrations")
    assert rows[0]["c"] == 3


async def test_changed_checksum_is_refused(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _standard_set(migrations_dir)
    await migrate(fresh_database.owner, migrations_dir)
    _write(migrations_dir, "0002_slow.sql", "INSERT INTO steps VALUES (2, 'edited');")
    with pytest.raises(MigrationError, match="0002_slow was changed after it was applied"):
        await migrate(fresh_database.owner, migrations_dir)


async def test_applied_version_without_file_is_refused(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _standard_set(migrations_dir)
    await migrate(fresh_database.owner, migrations_dir)
    (migrations_dir / "0010_after_two.sql").unlink()
    with pytest.raises(
        MigrationError, match="0010_after_two is applied in the database but has no file"
    ):
        await migrate(fresh_database.owner, migrations_dir)


async def test_new_file_below_applied_version_is_refused(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _standard_set(migrations_dir)
    await migrate(fresh_database.owner, migrations_dir)
    _write(migrations_dir, "0005_late.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="0005_late is numbered below"):
        await migrate(fresh_database.owner, migrations_dir)


async def test_failing_migration_rolls_back_entirely(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _write(migrations_dir, "0001_ok.sql", "CREATE TABLE good (id int);")
    _write(
        migrations_dir,
        "0002_bad.sql",
        "CREATE TABLE partial (id int); INSERT INTO good VALUES (1); SELECT 1/0;",
    )
    _write(migrations_dir, "0003_never.sql", "CREATE TABLE never (id int);")
    with pytest.raises(MigrationError, match="0002_bad failed and was rolled back") as caught:
        await migrate(fresh_database.owner, migrations_dir)
    assert isinstance(caught.value.__cause__, asyncpg.DivisionByZeroError)

    versions = await _fetch(fresh_database.owner, "SELECT version FROM schema_migrations")
    assert [r["version"] for r in versions] == [1]
    tables = await _fetch(
        fresh_database.owner,
        "SELECT to_regclass('partial') AS p, to_regclass('never') AS n, "
        "(SELECT count(*) FROM good) AS rows",
    )
    assert (tables[0]["p"], tables[0]["n"], tables[0]["rows"]) == (None, None, 0)

    _write(migrations_dir, "0002_bad.sql", "CREATE TABLE partial (id int);")  # fixed, never applied
    assert [m.version for m in await migrate(fresh_database.owner, migrations_dir)] == [2, 3]


async def test_transaction_control_in_migration_is_refused(
    fresh_database: DatabaseUrls, migrations_dir: Path
) -> None:
    _write(migrations_dir, "0001_commits.sql", "CREATE TABLE t (id int); COMMIT;")
    with pytest.raises(MigrationError, match="ended the transaction"):
        await migrate(fresh_database.owner, migrations_dir)
    versions = await _fetch(fresh_database.owner, "SELECT version FROM schema_migrations")
    assert versions == []


async def test_migrations_run_as_owner(fresh_database: DatabaseUrls, migrations_dir: Path) -> None:
    _write(migrations_dir, "0001_owned.sql", "CREATE TABLE owned (id int);")
    await migrate(fresh_database.owner, migrations_dir)
    rows = await _fetch(
        fresh_database.owner,
        "SELECT tableowner FROM pg_tables WHERE tablename IN ('owned', 'schema_migrations')",
    )
    assert {r["tableowner"] for r in rows} == {"idservice_owner"}

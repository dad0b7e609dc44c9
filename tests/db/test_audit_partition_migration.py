"""Migration 0009 turns an existing audit log into the month-partitioned one without changing a
single event or index, and sequencing carries on after it (real PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg

from idservice.db.migrate import default_migrations_dir, migrate
from idservice.db.roles import DatabaseUrls
from tests.support.horizon import wait_for_older_transactions

INSERT = ("INSERT INTO audit_event (actor_type, actor_id, action, pin, outcome, details) "
          "VALUES ('client', $1, 'pin.issue', '052240000001', 'issued', $2::jsonb)")
ENTRIES = "SELECT * FROM audit_entry ORDER BY index"


def _copy(migrations: Path, up_to: int) -> None:
    for path in sorted(default_migrations_dir().glob("[0-9]*.sql")):
        if int(path.name[:4]) <= up_to:
            shutil.copy(path, migrations / path.name)


async def test_existing_log_is_carried_over(fresh_database: DatabaseUrls,
                                            migrations_dir: Path) -> None:
    _copy(migrations_dir, 8)
    await migrate(fresh_database.owner, migrations_dir)
    service = await asyncpg.connect(fresh_database.service)
    try:
        for i in range(5):
            await service.execute(INSERT, f"before-{i}", f'{{"i": {i}, "é": "đ"}}')
        await wait_for_older_transactions(service)
        assert await service.fetchval("SELECT audit_sequence(100)") == 5
        before = [dict(r) for r in await service.fetch(ENTRIES)]
        max_id = await service.fetchval("SELECT max(id) FROM audit_event")
    finally:
        await service.close()

    _copy(migrations_dir, 9)
    assert [m.version for m in await migrate(fresh_database.owner, migrations_dir)] == [9]

    service = await asyncpg.connect(fresh_database.service)
    try:
        assert [dict(r) for r in await service.fetch(ENTRIES)] == before
        assert await service.fetchval(
            "SELECT relkind::text FROM pg_class WHERE relname = 'audit_event'") == "p"
        await service.execute(INSERT, "after", "{}")
        await wait_for_older_transactions(service)
        assert await service.fetchval("SELECT audit_sequence(100)") == 1
        row = await service.fetchrow(
            "SELECT l.index, e.id, e.tableoid::regclass::text AS part FROM audit_log l "
            "JOIN audit_event e ON e.id = l.event_id WHERE e.actor_id = 'after'")
        assert row["index"] == 5 and row["id"] > max_id
        assert row["part"].startswith("audit_event_20")
        # the copied rows are as append-only as before
        owner = await asyncpg.connect(fresh_database.owner)
        try:
            for sql in ("UPDATE audit_event SET outcome = 'x'", "DELETE FROM audit_log"):
                try:
                    await owner.execute(sql)
                except asyncpg.InsufficientPrivilegeError as exc:
                    assert "append-only" in str(exc)
                else:
                    raise AssertionError(f"{sql} was allowed")
        finally:
            await owner.close()
    finally:
        await service.close()

"""The audit tables are append-only for every role, and sequencing is gap-free and commit-safe
(contract section 5; migrations/0003_audit.sql)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from idservice.audit.sequencer import sequence_once
from idservice.db.pool import connect, create_pool
from idservice.runtime import DatabaseTarget
from tests.support.bodies import issue_body

FORBIDDEN = [
    "UPDATE audit_event SET outcome = 'x'",
    "DELETE FROM audit_event",
    "TRUNCATE audit_event CASCADE",
    "UPDATE audit_log SET event_id = event_id",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "INSERT INTO audit_log (index, event_id, txid) VALUES (999999999, 1, '1')",
]


async def _try(url: str, sql: str) -> BaseException | None:
    conn = await connect(url)
    try:
        await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        return exc
    finally:
        await conn.close()
    return None


@pytest.mark.parametrize("sql", FORBIDDEN)
def test_service_role_cannot_change_audit_tables(database: DatabaseTarget,
                                                 registrar: httpx.Client, sql: str) -> None:
    registrar.post("/v1/pins", json=issue_body("052"))  # at least one event exists
    error = asyncio.run(_try(database.service_url, sql))
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), error


@pytest.mark.parametrize("sql", FORBIDDEN[:6])
def test_even_the_owner_is_stopped_by_always_triggers(database: DatabaseTarget,
                                                      registrar: httpx.Client, sql: str) -> None:
    registrar.post("/v1/pins", json=issue_body("052"))
    assert database.owner_url is not None
    error = asyncio.run(_try(database.owner_url, sql))
    assert isinstance(error, asyncpg.InsufficientPrivilegeError), error
    assert "append-only" in str(error)


def test_writer_cannot_choose_time_or_transaction(database: DatabaseTarget) -> None:
    async def main() -> asyncpg.Record:
        conn = await connect(database.service_url)
        try:
            return await conn.fetchrow(
                "INSERT INTO audit_event (txid, at, actor_type, actor_id, action, outcome) "
                "VALUES ('1', '2000-01-01', 'client', 'forger', 'pin.issue', 'issued') "
                "RETURNING txid::text, at, pg_current_xact_id()::text AS mine")
        finally:
            await conn.close()

    row = asyncio.run(main())
    assert row["at"].year >= 2026
    assert row["txid"] == row["mine"] and row["txid"] != "1"


def test_indexes_are_gap_free_and_every_event_is_sequenced(
    database: DatabaseTarget, registrar: httpx.Client, service_db: Callable[..., list]
) -> None:
    for _ in range(5):
        assert registrar.post("/v1/pins", json=issue_body("052")).status_code == 201

    async def main() -> None:
        pool = await create_pool(database.service_url, min_size=1, max_size=2)
        try:
            await sequence_once(pool)
        finally:
            await pool.close()

    asyncio.run(main())
    n, low, high, distinct = service_db(
        "SELECT count(*), min(index), max(index), count(DISTINCT event_id) FROM audit_log")[0]
    assert low == 0 and high == n - 1 and distinct == n
    unsequenced = service_db("SELECT count(*) FROM audit_event e WHERE NOT EXISTS "
                             "(SELECT 1 FROM audit_log l WHERE l.event_id = e.id)")[0][0]
    assert unsequenced == 0


def test_event_committed_late_is_not_skipped(database: DatabaseTarget,
                                             service_db: Callable[..., list]) -> None:
    """An early transaction that commits after later ones: its event must still get an index,
    and no index may be handed out past it while it is open."""

    async def main() -> tuple[list[str], list[str], list[str]]:
        insert = ("INSERT INTO audit_event (actor_type, actor_id, action, outcome, details) "
                  "VALUES ('client', $1, 'pin.issue', 'issued', '{}'::jsonb)")
        early = await connect(database.service_url)
        late = await connect(database.service_url)
        pool = await create_pool(database.service_url, min_size=1, max_size=2)
        try:
            early_tx = early.transaction()
            await early_tx.start()
            await early.execute(insert, "early-writer")  # gets the smaller xid
            await late.execute(insert, "late-writer")  # commits first
            await sequence_once(pool)
            while_open = await _sequenced_actors(pool)
            await early_tx.commit()
            await sequence_once(pool)
            after = await _sequenced_actors(pool)
            order = await pool.fetch(
                "SELECT e.actor_id FROM audit_log l JOIN audit_event e ON e.id = l.event_id "
                "WHERE e.actor_id IN ('early-writer', 'late-writer') ORDER BY l.index")
            return while_open, after, [r[0] for r in order]
        finally:
            await early.close()
            await late.close()
            await pool.close()

    while_open, after, order = asyncio.run(main())
    assert while_open == []  # the late one waits: indexing it now would skip the early one
    assert sorted(after) == ["early-writer", "late-writer"]
    assert order == ["early-writer", "late-writer"]


async def _sequenced_actors(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT e.actor_id FROM audit_log l JOIN audit_event e ON e.id = l.event_id "
        "WHERE e.actor_id IN ('early-writer', 'late-writer')")
    return [r[0] for r in rows]


def test_access_fails_when_its_audit_event_cannot_be_written(
    registrar: httpx.Client, officer: httpx.Client, owner_db: Callable[..., list],
    service_db: Callable[..., list],
) -> None:
    """Fail closed: make the audit insert fail (a constraint added by the owner) and the read
    must fail too, without revealing the record."""
    body = issue_body("052", full_name="Hồ Thị Bí Mật")
    pin = registrar.post("/v1/pins", json=body).json()["pin"]
    owner_db("ALTER TABLE audit_event ADD CONSTRAINT test_block_reads "
             "CHECK (action <> 'person.read') NOT VALID")
    try:
        response = officer.get(f"/v1/persons/{pin}", params={"purpose": "x"})
    finally:
        owner_db("ALTER TABLE audit_event DROP CONSTRAINT test_block_reads")
    assert response.status_code >= 500
    assert "Bí Mật" not in response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert json.loads(response.text)["code"] in ("internal", "unavailable")
    assert service_db("SELECT count(*) FROM audit_event WHERE action = 'person.read' "
                      "AND pin = $1", pin)[0][0] == 0

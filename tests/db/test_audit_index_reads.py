"""Reads of the log by index range cost the rows they return, not the log's size (issue 14:
the 10M-event bench stalled in the integrator).

The integrator's batch (ROWS_FROM), a verifier's chunk (ROWS_RANGE) and `audit verify`'s
entries (ENTRIES_FROM) used to select from the view audit_entry; PostgreSQL estimates its join
(on id and at) at one row whatever the tables hold, so it read every audit_event partition
(sequential scans, hash join or nested loop, then a sort) to return one batch. On a log of
20,000 events over 12 monthly partitions, analyzed, `EXPLAIN (ANALYZE)` of each read must show
audit_log walked through its primary key and each event fetched through its partition's
primary key (no other scan runs: no sequential scan), no join by hash or merge, no sort, and
the scans together touching no more rows than twice the rows returned - with the planner's
default settings and with the integrator's (leaves.PLAN), custom and generic plans. The rows
are those of the view, in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from idservice.audit import leaves
from idservice.db.migrate import migrate
from idservice.db.roles import DatabaseUrls
from idservice.queries import audit as q

EVENTS = 20_000
BATCH = 500
# As the owner may (the service cannot name `at`): `at` spread over 12 months by a hash of g,
# so that consecutive indexes hit different partitions, as after a month of real traffic.
GENERATE = """
INSERT INTO audit_event (at, actor_type, actor_id, action, pin, purpose, outcome, details)
SELECT date_trunc('month', now()) - (g * 7919 % 12) * interval '1 month'
       + (g * 104729 % 2419200) * interval '1 second',
       'operator', 'officer-' || (g % 7), 'person.read', '0012000' || lpad((g % 601)::text, 5, '0'),
       'Hồ sơ ' || g, 'found', jsonb_build_object('n', g)
  FROM generate_series(1, $1::int) g
"""
# The view the reads stand for (the same rows, in the same order).
VIEW = ("SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, "
        "source_ip, details{cast} AS details FROM audit_entry WHERE {where} ORDER BY index")

SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan",
         "Tid Scan", "Tid Range Scan"}

# name, statement, arguments, the equivalent WHERE on the view, how many rows it returns
READS = [
    ("ROWS_FROM", q.ROWS_FROM, (0, BATCH), "index >= $1 LIMIT $2", "::text", BATCH),
    ("ROWS_FROM", q.ROWS_FROM, (12_345, BATCH), "index >= $1 LIMIT $2", "::text", BATCH),
    ("ROWS_FROM", q.ROWS_FROM, (EVENTS - 100, BATCH), "index >= $1 LIMIT $2", "::text", 100),
    ("ROWS_RANGE", q.ROWS_RANGE, (4096, 4096 + BATCH - 1), "index >= $1 AND index <= $2",
     "::text", BATCH),
    ("ROWS_RANGE", q.ROWS_RANGE, (EVENTS - 100, leaves.MAX_INDEX),
     "index >= $1 AND index <= $2", "::text", 100),
    ("ENTRIES_FROM", q.ENTRIES_FROM, (7_000, BATCH), "index >= $1 LIMIT $2", "", BATCH),
]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _view_sql(where: str, cast: str) -> str:
    condition, _, limit = where.partition(" LIMIT ")
    sql = VIEW.format(cast=cast, where=condition)
    return f"{sql} LIMIT {limit}" if limit else sql


@pytest.fixture
async def log_db(fresh_database: DatabaseUrls) -> DatabaseUrls:
    """A migrated database with EVENTS sequenced events over 12 monthly partitions, analyzed
    (the statistics a live log has: autovacuum analyzes it)."""
    await migrate(fresh_database.owner)
    owner = await asyncpg.connect(fresh_database.owner)
    try:
        await owner.execute("SELECT audit_event_add_partitions(now() - interval '13 months')")
        await owner.execute(GENERATE, EVENTS)
        assert await owner.fetchval("SELECT audit_sequence($1)", EVENTS) == EVENTS
        await owner.execute("ANALYZE audit_event; ANALYZE audit_log")
        assert await owner.fetchval(
            "SELECT count(DISTINCT tableoid) FROM audit_event") == 12
    finally:
        await owner.close()
    return fresh_database


@pytest.mark.parametrize("settings", ["default", "integrator"])
@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_index_range_reads_walk_the_primary_keys_not_the_partitions(
        log_db: DatabaseUrls, settings: str, plan_mode: str) -> None:
    service = await asyncpg.connect(log_db.service)
    try:
        for name, sql, args, where, cast, returned in READS:
            async with service.transaction():
                if settings == "integrator":
                    await leaves.prepare(service)
                await service.execute(f"SET LOCAL plan_cache_mode = {plan_mode}")
                rows = await service.fetch(sql, *args)
                assert [tuple(r) for r in rows] == [
                    tuple(r) for r in await service.fetch(_view_sql(where, cast), *args)], name
                assert len(rows) == returned, name
                # EXPLAIN EXECUTE goes through the plan cache, so plan_cache_mode applies (an
                # EXPLAIN with bound parameters would always plan for their values).
                await service.execute(f"PREPARE read_by_index AS {sql}")
                plan = json.loads(await service.fetchval(
                    "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE read_by_index"
                    f"({', '.join(str(int(a)) for a in args)})"))[0]["Plan"]
                await service.execute("DEALLOCATE read_by_index")
            nodes = list(_nodes(plan))
            kinds = {n["Node Type"] for n in nodes}
            assert not kinds & {"Hash Join", "Merge Join", "Sort", "Gather", "Gather Merge"}, \
                (name, args, kinds)
            # Partitions pruned at run time never run (the empty months ahead get a Seq Scan
            # node that way: there is nothing to scan in them); every scan that ran is a walk
            # of audit_log's primary key or a look-up by a partition's primary key.
            ran = [n for n in nodes if n["Node Type"] in SCANS and n["Actual Loops"] > 0]
            assert [(n["Node Type"], n["Index Name"]) for n in ran
                    if n["Relation Name"] == "audit_log"] == [
                ("Index Scan", "audit_log_pkey")], (name, args)
            events = [n for n in ran if n["Relation Name"].startswith("audit_event_")]
            assert events and all(n["Node Type"] == "Index Scan"
                                  and n["Index Name"] == n["Relation Name"] + "_pkey"
                                  for n in events), (name, args)
            assert len(ran) == 1 + len(events), (name, args)
            touched = sum(n["Actual Rows"] * n["Actual Loops"] for n in ran)
            assert touched <= 2 * returned, (name, args, touched)
    finally:
        await service.close()

"""Reads of the log by index range cost the rows they return, not the log's size (issue 14:
the 10M-event bench stalled in the integrator).

The integrator's batch (ROWS_FROM), a verifier's chunk (ROWS_RANGE), `audit verify`'s entries
(ENTRIES_FROM) and an auditor's unfiltered pages and count used to select from the view
audit_entry; PostgreSQL estimates its join (on id and at) at one row whatever the tables hold,
so it read every audit_event partition (sequential scans, hash join or nested loop, then a
sort) to return one batch. On a log of 20,000 events over 12 monthly partitions, analyzed,
`EXPLAIN (ANALYZE)` of each read must show audit_log walked through its primary key and each
event fetched through its partition's primary key (no other scan runs: no sequential scan of
a partition), no join by hash or merge, no sort, and the scans together touching no more rows
than the read's bound (twice the rows it returns; three times for a province auditor, who
sees 3 events in 4) - with the planner's default settings and with the integrator's
(leaves.PLAN), custom and generic plans. The answers are those of the view, in the same order.
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
from tests.support.horizon import wait_for_older_transactions

EVENTS = 20_000
BATCH = 500
# As the owner may (the service cannot name `at`): `at` spread over 12 months by a hash of g,
# so that consecutive indexes hit different partitions, as after a month of real traffic; one
# event in 4 without a PIN, one in 4 of province 079, the others of province 001.
GENERATE = """
INSERT INTO audit_event (at, actor_type, actor_id, action, pin, purpose, outcome, details)
SELECT date_trunc('month', now()) - (g * 7919 % 12) * interval '1 month'
       + (g * 104729 % 2419200) * interval '1 second',
       'operator', 'officer-' || (g % 7), 'person.read',
       CASE g % 4 WHEN 0 THEN NULL WHEN 3 THEN '079' ELSE '001' END
       || '2000' || lpad((g % 601)::text, 5, '0'),
       'Hồ sơ ' || g, 'found', jsonb_build_object('n', g)
  FROM generate_series(1, $1::int) g
"""
# What the integrator's and the verifier's reads stand for: the view, `details` as text.
_ROWS = ("SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, "
         "source_ip, details::text AS details FROM audit_entry ")
NO_FILTER = (None,) * 6  # SEARCH's and BROWSE_*'s pin, actor type and id, action, since, until
LAST = 2**63 - 1

# name, statement, its arguments, the view's statement, its arguments, bound on rows touched
READS: list[tuple[str, str, tuple[Any, ...], str, tuple[Any, ...], int]] = [
    ("ROWS_FROM", q.ROWS_FROM, (0, BATCH),
     _ROWS + "WHERE index >= $1 ORDER BY index LIMIT $2", (0, BATCH), 2 * BATCH),
    ("ROWS_FROM", q.ROWS_FROM, (12_345, BATCH),
     _ROWS + "WHERE index >= $1 ORDER BY index LIMIT $2", (12_345, BATCH), 2 * BATCH),
    ("ROWS_FROM", q.ROWS_FROM, (EVENTS - 100, BATCH),
     _ROWS + "WHERE index >= $1 ORDER BY index LIMIT $2", (EVENTS - 100, BATCH), 200),
    ("ROWS_RANGE", q.ROWS_RANGE, (4096, 4096 + BATCH - 1),
     _ROWS + "WHERE index >= $1 AND index <= $2 ORDER BY index", (4096, 4096 + BATCH - 1),
     2 * BATCH),
    ("ROWS_RANGE", q.ROWS_RANGE, (EVENTS - 100, leaves.MAX_INDEX),
     _ROWS + "WHERE index >= $1 AND index <= $2 ORDER BY index",
     (EVENTS - 100, leaves.MAX_INDEX), 200),
    ("ENTRIES_FROM", q.ENTRIES_FROM, (7_000, BATCH),
     q.SEARCH, (*NO_FILTER, 6_999, BATCH, None), 2 * BATCH),
    ("ENTRIES_OLDER", q.ENTRIES_OLDER, (LAST, 51, None),
     q.BROWSE_OLDER, (*NO_FILTER, LAST, 51, None), 2 * 51),
    ("ENTRIES_OLDER", q.ENTRIES_OLDER, (15_000, 51, "001"),
     q.BROWSE_OLDER, (*NO_FILTER, 15_000, 51, "001"), 3 * 51),
    ("ENTRIES_NEWER", q.ENTRIES_NEWER, (-1, 1000, None),
     q.SEARCH, (*NO_FILTER, -1, 1000, None), 2 * 1000),
    ("ENTRIES_NEWER", q.ENTRIES_NEWER, (9_999, 1000, "001"),
     q.SEARCH, (*NO_FILTER, 9_999, 1000, "001"), 3 * 1000),
    ("ENTRIES_COUNT", q.ENTRIES_COUNT, (10_001, None),
     q.BROWSE_COUNT, (*NO_FILTER, 10_001, None), 2 * 10_001),
    ("ENTRIES_COUNT", q.ENTRIES_COUNT, (10_001, "001"),
     q.BROWSE_COUNT, (*NO_FILTER, 10_001, "001"), 3 * 10_001),
]

SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan",
         "Tid Scan", "Tid Range Scan"}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _literal(value: Any) -> str:
    """A test-chosen argument (int, str of digits, None) as SQL for EXECUTE."""
    if value is None:
        return "NULL"
    assert isinstance(value, int) or str(value).isdigit(), value
    return str(int(value)) if isinstance(value, int) else f"'{value}'"


@pytest.fixture
async def log_db(fresh_database: DatabaseUrls) -> DatabaseUrls:
    """A migrated database with EVENTS sequenced events over 12 monthly partitions, analyzed
    (the statistics a live log has: autovacuum analyzes it)."""
    await migrate(fresh_database.owner)
    owner = await asyncpg.connect(fresh_database.owner)
    try:
        await owner.execute("SELECT audit_event_add_partitions(now() - interval '13 months')")
        await owner.execute(GENERATE, EVENTS)
        await wait_for_older_transactions(owner)
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
        for name, sql, args, view_sql, view_args, bound in READS:
            async with service.transaction():
                if settings == "integrator":
                    await leaves.prepare(service)
                await service.execute(f"SET LOCAL plan_cache_mode = {plan_mode}")
                rows = [tuple(r) for r in await service.fetch(sql, *args)]
                assert rows and rows == [tuple(r) for r in
                                         await service.fetch(view_sql, *view_args)], name
                # EXPLAIN EXECUTE goes through the plan cache, so plan_cache_mode applies (an
                # EXPLAIN with bound parameters would always plan for their values).
                await service.execute(f"PREPARE read_by_index AS {sql}")
                plan = json.loads(await service.fetchval(
                    "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE read_by_index"
                    f"({', '.join(_literal(a) for a in args)})"))[0]["Plan"]
                await service.execute("DEALLOCATE read_by_index")
            nodes = list(_nodes(plan))
            kinds = {n["Node Type"] for n in nodes}
            assert not kinds & {"Hash Join", "Merge Join", "Sort", "Gather", "Gather Merge"}, \
                (name, args, kinds)
            # Partitions pruned at run time never run (the empty months ahead get a Seq Scan
            # node that way: there is nothing to scan in them); every scan that ran is a walk
            # of audit_log's primary key (the count needs no order: it may read the table from
            # its start, up to its cap) or a look-up by a partition's primary key.
            ran = [n for n in nodes if n["Node Type"] in SCANS and n["Actual Loops"] > 0]
            walks = [[("Index Scan", "audit_log_pkey")]]
            if name == "ENTRIES_COUNT":
                walks.append([("Seq Scan", None)])
            assert [(n["Node Type"], n.get("Index Name")) for n in ran
                    if n["Relation Name"] == "audit_log"] in walks, (name, args)
            events = [n for n in ran if n["Relation Name"].startswith("audit_event_")]
            assert events and all(n["Node Type"] in ("Index Scan", "Index Only Scan")
                                  and n["Index Name"] == n["Relation Name"] + "_pkey"
                                  for n in events), (name, args)
            assert len(ran) == 1 + len(events), (name, args)
            touched = sum(n["Actual Rows"] * n["Actual Loops"] for n in ran)
            assert touched <= bound, (name, args, touched)
    finally:
        await service.close()

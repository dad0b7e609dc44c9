"""findUsage is an index query (issue 14 item 2): EXPLAIN on a log of 30,000 events over 12
monthly partitions and 601 PINs shows every partition read through `audit_event_pin_at`
(pin, at) and `audit_log` through its event-id index: no sequential scan of a partition that
holds events, whatever the log's size. Checked for the custom plan and for the generic plan
a prepared statement ends up with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import asyncpg

from idservice.datatracker.service import Period
from idservice.datatracker.usage import action_outcomes, visible_on
from idservice.db.migrate import migrate
from idservice.db.roles import DatabaseUrls
from idservice.queries import datatracker as q
from tests.support.horizon import wait_for_older_transactions

PIN = "001200000042"
# As the owner may (the service cannot name `at`): events spread evenly over 12 months.
GENERATE = """
INSERT INTO audit_event (at, actor_type, actor_id, action, pin, purpose, outcome, details)
SELECT date_trunc('month', now()) - (g % 12) * interval '1 month' + (g % 28) * interval '1 day',
       'operator', 'officer-' || (g % 7),
       (ARRAY['person.read', 'pin.verify', 'person.search', 'citizen.report'])[1 + g / 12 % 4],
       '0012000' || lpad((g % 601)::text, 5, '0'), 'bench',
       CASE WHEN g / 12 % 4 = 1 THEN 'match' ELSE 'found' END, '{}'::jsonb
  FROM generate_series(1, 30000) g
"""


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _scans(conn: asyncpg.Connection, sql: str, *args: Any) -> list[tuple[str, str, str]]:
    plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    nodes = list(_nodes(plan[0]["Plan"]))
    return [(n["Node Type"], n.get("Relation Name", ""), n.get("Index Name", ""))
            for n in nodes if "Relation Name" in n or "Index Name" in n]


def _check(scans: list[tuple[str, str, str]], empty: set[str]) -> None:
    """Every partition holding events is read through its (pin, at) index (the planner may AND
    it with another index; an empty partition, such as the months ahead, may be "scanned":
    there is nothing in it), audit_log by event id."""
    full = [s for s in scans if s[1].startswith("audit_event") and s[1] not in empty]
    assert len(full) == 12, scans
    assert {kind for kind, _, _ in full} <= {"Index Scan", "Index Only Scan",
                                              "Bitmap Heap Scan"}, scans
    indexes = [index for kind, _, index in scans if kind in ("Index Scan", "Index Only Scan",
                                                             "Bitmap Index Scan")]
    through_pin_at = {i.removesuffix("_pin_at_idx") for i in indexes if i.endswith("_pin_at_idx")}
    assert through_pin_at == {name for _, name, _ in full}, scans
    assert not [s for s in scans if s[0] == "Seq Scan" and s[1] not in empty], scans
    logs = [s for s in scans if s[1] == "audit_log"]
    assert logs and all(index == "audit_log_event_id_key" for _, _, index in logs), scans


async def test_find_usage_reads_the_pin_at_index_not_the_table(
        fresh_database: DatabaseUrls) -> None:
    await migrate(fresh_database.owner)
    owner = await asyncpg.connect(fresh_database.owner)
    try:
        await owner.execute("SELECT audit_event_add_partitions(now() - interval '14 months')")
        await owner.execute(GENERATE)
        await wait_for_older_transactions(owner)
        await owner.execute("SELECT audit_sequence(100000)")
        await owner.execute("ANALYZE audit_event; ANALYZE audit_log")
        partitions = await owner.fetch(
            "SELECT c.relname, (SELECT count(*) FROM audit_event e WHERE e.tableoid = c.oid) "
            "AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'audit_event'::regclass")
        empty = {p["relname"] for p in partitions if p["n"] == 0}
        assert len(partitions) - len(empty) == 12
    finally:
        await owner.close()
    service = await asyncpg.connect(fresh_database.service)
    try:
        actions, pairs = action_outcomes()
        start, end = Period().bounds()
        args = (PIN, start, end, visible_on(date.today()), actions, pairs)
        expected = await service.fetchval("SELECT count(*) FROM audit_entry WHERE pin = $1 "
                                          "AND action <> 'citizen.report'", PIN)
        assert 30 < expected < 50  # about 50 events for the PIN, 3 in 4 of them usages
        assert (await service.fetch(q.REPORT, *args, 0, 1))[0]["total"] == expected
        for mode in ("force_custom_plan", "force_generic_plan"):
            await service.execute(f"SET plan_cache_mode = {mode}")
            _check(await _scans(service, q.REPORT, *args, 0, 1000), empty)
    finally:
        await service.close()

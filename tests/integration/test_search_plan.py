"""The search by name (and date of birth) reads the name's index and the other names' index,
never every person born that day (bench/scale.py at 10M persons: the former single condition
`name_folded = $1 OR other_names_folded @> ...` could only use `person_dob`, ~430 heap pages
per search, 8-14 ms; now ~25 pages, 0.4-0.8 ms).

Planned on a table of 20,000 more persons with fresh statistics (ANALYZE): 4 per name, 10 per
date of birth (no two persons share both), one in a thousand with another name, so that, as in
a real registry, a date of birth is shared by more people than a name, and the other-names
index's estimate is the planner's default. All in a transaction that is rolled back. Shown to
fail with the former statements: both read `person_dob`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from idservice.queries import persons as q
from idservice.runtime import DatabaseTarget
from tests.support.rolled_back import rolled_back

PERSONS = """
INSERT INTO person (pin, registration_authority, registration_number, registered_on,
                    province_code, full_name, name_folded, other_names_folded, sex,
                    date_of_birth, record, mother_name_folded)
SELECT '998' || lpad(i::text, 9, '0'), 'plan-test', i::text, '2024-01-01', '052', 'N' || i,
       'n' || (i % 5000), CASE WHEN i % 1000 = 0 THEN ARRAY['b' || i] ELSE '{}' END, 'F',
       date '1990-01-01' + (i % 2001), '{}', 'm'
  FROM generate_series(1, 20000) i
"""
BORN = date(1990, 1, 1) + timedelta(days=42)  # person 42's date of birth


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize("statement", ["folded", "exact"])
def test_search_reads_the_name_indexes_not_the_birth_date(database: DatabaseTarget,
                                                          statement: str) -> None:
    sql, args = {"folded": (q.SEARCH_FOLDED, ("n42", BORN, None, 50)),
                 "exact": (q.SEARCH_EXACT, ("n42", BORN, None, 50, "N42"))}[statement]

    async def main(conn: asyncpg.Connection) -> tuple[list[tuple[str, str]], list[str]]:
        await conn.execute(PERSONS)
        await conn.execute("ANALYZE person")
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
        if isinstance(plan, str):  # without the pool's json codec
            plan = json.loads(plan)
        found = [r["pin"] for r in await conn.fetch(sql, *args)]
        return [(n["Node Type"], n.get("Index Name", "")) for n in
                _nodes(plan[0]["Plan"]) if n.get("Relation Name", "person") == "person"
                and ("Scan" in n["Node Type"])], found

    assert database.owner_url is not None
    scans, found = asyncio.run(rolled_back(database.owner_url, main))
    indexes = {index for _, index in scans}
    assert "person_dob" not in indexes, scans
    assert {"person_name_dob", "person_other_names"} <= indexes, scans
    assert not any(kind == "Seq Scan" for kind, _ in scans), scans
    assert found == ["998000000042"]

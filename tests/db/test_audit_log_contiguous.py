"""audit_log takes rows only at its end, without a gap (migration 0062: the rule of 0003, checked
once per statement). Written as the owner, whom the ALWAYS trigger stops as well; the service
role cannot insert into audit_log at all (tests/integration/test_audit_table.py)."""

from __future__ import annotations

import asyncpg
import pytest

from idservice.db.migrate import migrate
from idservice.db.roles import DatabaseUrls
from tests.support.horizon import wait_for_older_transactions

EVENTS = ("INSERT INTO audit_event (actor_type, actor_id, action, outcome) "
          "SELECT 'client', 'contiguous-test', 'pin.issue', 'issued' FROM generate_series(1, 6)")
# Entries for the given indexes, the i-th of them pointing at the i-th event.
ENTRIES = """
INSERT INTO audit_log (index, event_id, event_at, txid)
SELECT i.index, e.id, e.at, e.txid
  FROM unnest($1::bigint[]) WITH ORDINALITY AS i(index, n)
  JOIN (SELECT id, at, txid, row_number() OVER (ORDER BY id) AS n FROM audit_event) e
    ON e.n = i.n + $2
"""


async def test_entries_only_continue_the_log(fresh_database: DatabaseUrls) -> None:
    await migrate(fresh_database.owner)
    owner = await asyncpg.connect(fresh_database.owner)
    try:
        await owner.execute(EVENTS)

        async def refused(indexes: list[int], offset: int) -> None:
            with pytest.raises(asyncpg.IntegrityConstraintViolationError,
                               match="do not continue the log"):
                await owner.execute(ENTRIES, indexes, offset)

        await refused([1], 0)  # a gap at the start
        await refused([0, 2], 0)  # a gap inside one statement
        await owner.execute(ENTRIES, [0, 1], 0)
        await refused([3], 2)  # a gap after the end
        await refused([4, 3], 2)  # a gap, whatever the order in the statement
        with pytest.raises(asyncpg.UniqueViolationError):
            await owner.execute(ENTRIES, [1], 2)  # an index twice
        await owner.execute(ENTRIES, [2, 3, 4], 2)  # several at once, in order
        await owner.execute(ENTRIES, [], 0)  # nothing inserted: nothing to check
        assert [r["index"] for r in await owner.fetch(
            "SELECT index FROM audit_log ORDER BY index")] == [0, 1, 2, 3, 4]
        # and sequencing, the log's one writer, carries on after rows written this way
        await owner.execute(EVENTS)
        await wait_for_older_transactions(owner)
        assert await owner.fetchval("SELECT audit_sequence(100)") == 7
        assert await owner.fetchval("SELECT max(index) FROM audit_log") == 11
    finally:
        await owner.close()

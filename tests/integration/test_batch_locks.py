"""A batch chunk locks its registration keys and then looks them up, in one statement
(migration 0070, `queries/persons.FIND_REGISTRATIONS_LOCKED`): a second chunk with the same
registration waits for the first's lock and then finds what the first committed, so it answers
a replay (or a conflict) and never claims a second PIN for the registration. Shown to fail
with the look-up in the same SQL statement as the locks (it read with a snapshot from before
the wait and found nothing). The person and registration committed here stay (persons are never
deleted); the registration number is this test's own."""

from __future__ import annotations

import asyncio
import uuid

from idservice.db.pool import connect
from idservice.persons.models import IssueRequest
from idservice.persons.rows import PersonRow, key_arrays
from idservice.persons.views import body_digest, canonical_json
from idservice.queries import persons as q
from idservice.runtime import DatabaseTarget
from tests.support.bodies import issue_body
from tests.support.lock_wait import waits_then_runs


def test_a_chunk_waits_for_the_registration_lock_then_finds_the_registration(
        database: DatabaseTarget) -> None:
    body = issue_body("052", number=f"LOCK-{uuid.uuid4().hex[:12]}",
                      full_name=f"Lê Thị Khóa {uuid.uuid4().hex[:6]}")
    req = IssueRequest.model_validate(body)
    record = canonical_json(req.record())
    row = PersonRow.of(req, record)
    keys = key_arrays([row.registration_key])

    async def main() -> tuple[int, str, list[str], str]:
        first = await connect(database.service_url)
        second = await connect(database.service_url)
        try:
            tx1 = first.transaction()
            await tx1.start()
            before = await first.fetch(q.FIND_REGISTRATIONS_LOCKED, *keys)
            [person] = await first.fetch(q.PERSON_INSERT, [row.prefix],
                                         [uuid.uuid4().int % 1_000_000], [row.composite()], 1000)
            await first.execute(q.INSERT_REGISTRATIONS, *keys, [body_digest(record)],
                                [person["pin"]])
            state, found = await waits_then_runs(
                first, tx1, second, lambda: second.fetch(q.FIND_REGISTRATIONS_LOCKED, *keys))
            return len(before), state, [r["pin"] for r in found], person["pin"]
        finally:
            await first.close()
            await second.close()

    before, state, found, pin = asyncio.run(main())
    assert before == 0
    assert state == "Lock"
    assert found == [pin]

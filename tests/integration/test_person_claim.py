"""The fast path's PIN choice (`person_claim()`, migration 0061): the first of the drawn
candidates that is not taken, in draw order; none free -> the exact path, still one PIN.

The candidates are made reproducible with a seeded `PersonsContext.rng`: three registrations
drawing the same candidates get the first, then the second, then (both taken, two tries) a
number from the exact path. On real PostgreSQL, through `issuance.issue` as the API calls it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace

from idservice.audit.events import RequestContext
from idservice.auth.principal import Principal
from idservice.db.pool import create_pool
from idservice.persons import issuance
from idservice.persons.allocation import fast_path_candidates
from idservice.persons.context import PersonsContext
from idservice.persons.models import IssueRequest
from idservice.pin.allocator import AllocatorConfig
from idservice.pin.format import bucket_prefix, make_pin
from idservice.runtime import DatabaseTarget
from tests.support.bodies import issue_body

REGISTRAR = Principal(kind="client", id="claim-registrar", roles=frozenset({"registrar"}),
                      jurisdiction="052", token_id="claim-test", expires_at=2**31 - 1)
SEED = 1612


def _request(number: str) -> IssueRequest:
    """A child of its own (letters only: the duplicate rule folds names), bucket 052/F/2024."""
    tag = "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:8])
    body = issue_body("052", number=number, full_name=f"Phan Thị {tag.capitalize()}",
                      sex="F", dob="2024-03-02")
    return IssueRequest.model_validate(body)


def test_first_free_candidate_in_draw_order_then_the_exact_path(
    database: DatabaseTarget,
) -> None:
    tag = uuid.uuid4().hex[:8]

    async def run() -> tuple[list[int], list[issuance.IssueOutcome]]:
        pool = await create_pool(database.service_url, min_size=1, max_size=2)
        try:
            base = PersonsContext(pool=pool, allocator=AllocatorConfig(random_tries=2))
            drawn = fast_path_candidates(replace(base, rng=random.Random(SEED)))
            outcomes = []
            for i in range(3):  # the same two candidates drawn each time
                ctx = replace(base, rng=random.Random(SEED))
                outcomes.append(await issuance.issue(
                    ctx, REGISTRAR, RequestContext(REGISTRAR.actor, f"claim-{tag}-{i}", "::1"),
                    _request(f"CLAIM-{tag}-{i}")))
            return drawn, outcomes
        finally:
            await pool.close()

    drawn, outcomes = asyncio.run(run())
    prefix = bucket_prefix("052", 2024, "F")
    first, second, third = (o.pin for o in outcomes)
    assert all(o.created for o in outcomes)
    assert first == make_pin(prefix, drawn[0])
    assert second == make_pin(prefix, drawn[1])
    assert third not in (first, second) and third.startswith(prefix)

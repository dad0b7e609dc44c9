"""Issuance keeps reading `person` and `registration` by their indexes after a bulk load
(migration 0066; issue 16 goals 1 and 2).

What the batch bench met (2026-12-07): its rate fell within every run as `person` grew
(5,234 -> 2,500 records/s over 200,000 records), with a sequential scan of `person` for about
every second chunk. Each connection keeps the plans it made while the tables were small: the
liveBirth trigger's join (a statement without parameters, so always its first plan) became a
hash join over the whole of `person`, for every registration statement after it, a single
issuance's too; and the batch chunk's reads (candidate PINs, the duplicate check, the chunk's
registrations), as generic plans, became sequential scans, one per line for the duplicate check.

Here, in a database of its own, as test_bulk_plans.py does for the audit log: the tables are
vacuumed while empty and autovacuum is kept off them (its ANALYZE would invalidate the plans and
hide the fault), the service's one connection is held to generic plans (what the plan cache
chooses by itself on small tables), a batch chunk and single issuances make their plans, then
100,000 persons and their registrations arrive by SQL. A chunk, single issuances and an offline
office's reserved numbers taken after that must not scan either table. Shown to fail without
0066 (the migration taken out, the queries as before): 206 sequential scans of `person` (200 for
the chunk's duplicate check, one for its candidate PINs, one per registration statement by the
trigger: the chunk's and the four single issuances') and 5 of `registration` (the chunk's
look-up, and issue_pin()'s per single issuance); with only person_take_reserved()'s settings left
out, the one scan of `person` by an office's offline issuances taking their reserved numbers. At
200,000 persons such a chunk took ~18 s instead of ~0.2 s, and each single issuance ~60 ms more.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from idservice.audit.events import RequestContext
from idservice.auth.principal import Principal
from idservice.db.pool import create_pool
from idservice.persons import batch, issuance
from idservice.persons.coalesce import IssueCoalescer
from idservice.persons.context import PersonsContext
from idservice.persons.issuance import IssueOutcome
from idservice.persons.models import IssueRequest
from idservice.queries import reservations
from idservice.runtime import DatabaseTarget
from tests.support.bodies import issue_body

REGISTRAR = Principal(kind="client", id="plans-registrar", roles=frozenset({"registrar"}),
                      jurisdiction="052", token_id="plans-test", expires_at=2**31 - 1)
TABLES = ("person", "registration", "pin_block", "notify_event")
LOADED = 100_000
CHUNK = 200

PERSONS = """
INSERT INTO person (pin, registration_authority, registration_number, registered_on,
                    province_code, full_name, name_folded, other_names_folded, sex,
                    date_of_birth, record, mother_name_folded)
SELECT '998' || lpad(i::text, 9, '0'), 'bulk', i::text, '2024-01-01', '052', 'N' || i,
       'n' || (i % 5000), '{}', 'F', date '1990-01-01' + (i % 2001), '{}', 'm'
  FROM generate_series(1, $1::int) i
"""
REGISTRATIONS = """
INSERT INTO registration (province_code, authority, number, body_sha256, pin)
SELECT '052', 'bulk', i::text, '\\x00', '998' || lpad(i::text, 9, '0')
  FROM generate_series(1, $1::int) i
"""
RESERVED = """
INSERT INTO person (pin, status, registration_authority, registration_number, registered_on,
                    province_code, full_name, name_folded, sex, date_of_birth, record)
SELECT '997' || lpad(i::text, 9, '0'), 'reserved', 'reserved', '', '2024-01-01', '052', '', '',
       'F', '2024-01-01', '{}'
  FROM generate_series($1::int, $2::int) i
"""
SEQ_SCANS = """
SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname IN ('person', 'registration')
"""


def _request(number: str) -> IssueRequest:
    return IssueRequest.model_validate(issue_body("052", number=number))


def test_issuance_reads_by_index_after_a_bulk_load(own_database: DatabaseTarget) -> None:
    owner_url = own_database.owner_url
    assert owner_url is not None

    async def run() -> tuple[dict[str, int], list[Any], list[str]]:
        owner = await asyncpg.connect(owner_url)
        pool = await create_pool(own_database.service_url, min_size=1, max_size=1)
        coalescer = IssueCoalescer(pool, max_group=4, in_flight=1)
        try:
            for table in TABLES:
                await owner.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
                await owner.execute(f"VACUUM ANALYZE {table}")
            async with pool.acquire() as conn:
                await conn.execute("SET plan_cache_mode = force_generic_plan")
            alone, grouped = PersonsContext(pool=pool), PersonsContext(pool=pool,
                                                                      coalescer=coalescer)
            rctx = RequestContext(REGISTRAR.actor, "plans-test", "127.0.0.1")

            async def chunk(tag: str) -> list[Any]:
                lines = [(i, issuance.prepare(alone, REGISTRAR, _request(f"{tag}-{i}")))
                         for i in range(1, CHUNK + 1)]
                return [r for _, r in await batch.issue_chunk(alone, rctx, lines)]

            async def singles(tag: str) -> list[Any]:
                return [await issuance.issue(alone, REGISTRAR, rctx, _request(f"{tag}-a")),
                        *await asyncio.gather(*(
                            issuance.issue(grouped, REGISTRAR, rctx, _request(f"{tag}-g{i}"))
                            for i in range(3)))]

            async def offline(first: int) -> list[Any]:
                """Four reserved numbers taken by an office's offline issuances (the sync's
                claimer, persons/offline.py)."""
                pins = [f"997{i:09d}" for i in range(first, first + 4)]
                await owner.execute(RESERVED, first, first + 3)
                rows = [issuance.prepare(alone, REGISTRAR, _request(f"off-{pin}")).row.composite()
                        for pin in pins]
                async with pool.acquire() as conn, conn.transaction():
                    taken = await conn.fetch(reservations.TAKE_RESERVED, pins, rows)
                return [r["pin"] for r in taken]

            async def seq_scans() -> dict[str, int]:
                async with pool.acquire() as conn:  # the service connection's counts, now
                    await conn.execute("SELECT pg_stat_force_next_flush()")
                await owner.execute("SELECT pg_stat_clear_snapshot()")
                return {r["relname"]: r["seq_scan"] for r in await owner.fetch(SEQ_SCANS)}

            await chunk("small")  # every plan made while the tables are small
            await singles("small")
            await offline(1)
            await owner.execute(PERSONS, LOADED)
            await owner.execute(REGISTRATIONS, LOADED)
            before = await seq_scans()
            results = await chunk("loaded") + await singles("loaded")
            taken = await offline(101)
            after = await seq_scans()
            return {t: after[t] - before[t] for t in after}, results, taken
        finally:
            await coalescer.close()
            await pool.close()
            await owner.close()

    scans, results, taken = asyncio.run(run())
    assert sorted(taken) == [f"997{i:09d}" for i in range(101, 105)]
    assert all(isinstance(r, IssueOutcome) and r.created for r in results), results
    assert len({r.pin for r in results}) == CHUNK + 4
    assert scans == {"person": 0, "registration": 0}, scans

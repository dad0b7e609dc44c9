"""The one way a new PIN is allocated: `claim_pins` for one or many person rows.

Every path that needs a number calls it: a single request whose one-statement fast path found
every candidate taken (`issuance.issue_in_transaction`), a batch chunk (`batch.issue_many`)
and a correction that changes sex or birth year (`corrections.correct`). The fast path itself,
`issue_pin()` in the database, draws `AllocatorConfig.random_tries` candidates and claims
through the same SQL (`person_claim()` -> `person_insert()`, migrations/0012_person_row.sql).

1. All rows at once: `chunk_random_tries` iid uniform candidates per row, one lookup of which
   are taken, each row takes the first free of its own candidates (skipping numbers an earlier
   row of the same call took), one insert for all. Uniform per row, as a sequence of single
   allocations would be (see pin/allocator.py for why the first free of iid uniform draws is).
2. Each row left over (all its candidates taken, or a race lost): the exact allocator of
   `pin/allocator.py` on `PgBucketStore`, which answers `pin_space_exhausted` exactly when every
   number of the bucket is used.
"""

from __future__ import annotations

from collections.abc import Sequence

from idservice.db.types import Conn
from idservice.errors import PinSpaceExhausted, Unavailable
from idservice.persons.bucket_store import Claim, PgBucketStore
from idservice.persons.context import PersonsContext
from idservice.persons.rows import PersonRow
from idservice.pin.allocator import AllocationContention, BucketFull, allocate, draw_candidates
from idservice.pin.format import make_pins
from idservice.queries import persons as q

__all__ = ["Claim", "claim_pins", "fast_path_candidates"]

def fast_path_candidates(ctx: PersonsContext) -> list[int]:
    """The candidate serials `issue_pin()` tries, in draw order."""
    return draw_candidates(ctx.rng, ctx.allocator.space, ctx.allocator.random_tries)


async def claim_pins(
    conn: Conn, ctx: PersonsContext, rows: Sequence[PersonRow]
) -> list[Claim | PinSpaceExhausted]:
    """Claim a number for each row, inside the caller's transaction; results in row order.

    A full bucket is that row's `PinSpaceExhausted` (the other rows go on); lost races beyond
    the allocator's bound raise `Unavailable` for the whole call (retry later)."""
    config, tries = ctx.allocator, ctx.allocator.chunk_random_tries
    prefixes = [row.prefix for row in rows]
    drawn = draw_candidates(ctx.rng, config.space, tries * len(rows))
    serials = [drawn[i * tries:(i + 1) * tries] for i in range(len(rows))]
    pins = [make_pins(prefix, s) for prefix, s in zip(prefixes, serials, strict=True)]
    everything = [pin for row_pins in pins for pin in row_pins]
    taken = {r["pin"] for r in await conn.fetch(q.TAKEN_PINS, everything)} if everything else set()
    chosen: dict[int, int] = {}  # row -> position of its first free candidate
    for i, row_pins in enumerate(pins):
        for k, pin in enumerate(row_pins):
            if pin not in taken:
                chosen[i] = k
                taken.add(pin)
                break

    claims: list[Claim | PinSpaceExhausted | None] = [None] * len(rows)
    if chosen:
        order = list(chosen)
        inserted = {r["pin"]: r["issued_at"] for r in await conn.fetch(
            q.PERSON_INSERT, [prefixes[i] for i in order],
            [serials[i][chosen[i]] for i in order], [rows[i].composite() for i in order],
            config.block_size)}
        for i in order:
            pin = pins[i][chosen[i]]
            if pin in inserted:  # otherwise taken meanwhile by a concurrent transaction
                claims[i] = Claim(pin, inserted[pin])
    for i, claim in enumerate(claims):
        if claim is None:
            claims[i] = await _claim_exact(conn, ctx, rows[i])
    return [c for c in claims if c is not None]


async def _claim_exact(conn: Conn, ctx: PersonsContext,
                       row: PersonRow) -> Claim | PinSpaceExhausted:
    store = PgBucketStore(conn, row, ctx.allocator)
    try:
        await allocate(store, ctx.rng, ctx.allocator, bucket=store.prefix)
    except BucketFull:
        return PinSpaceExhausted(f"all numbers of bucket {store.prefix} are used")
    except AllocationContention as exc:
        raise Unavailable("too much contention for free numbers; retry") from exc
    assert store.claimed is not None
    return store.claimed

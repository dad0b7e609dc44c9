"""The log's leaf hashes in aligned chunks, read and hashed in parallel (`audit verify`).

Why: one process hashes about 10,000 events a second, so 10 million events took over 15
minutes. The rows are split into chunks of 2**k indexes; each chunk is read (`audit_entry` and
the stored level-0 nodes) and hashed by a worker process on its own connection in the snapshot
of the verifier's transaction (`pg_export_snapshot`), so every worker sees exactly the rows the
verifier does. A chunk comes back as a `LeafChunk`: for the usual chunk (rows exactly
`start, start + 1, ...`, stored leaves all equal to the recomputed ones or all missing) only the
compact ranges of its leaves at the sizes the verifier checks (signed checkpoints inside it)
and at its end, so the verifier joins a chunk with a few hashes; any other chunk comes back row
by row and `verify._Pass` replays it exactly as the single pass would (first bad index exact).
With no workers the same chunks are read and hashed in this process (the service's "Verify
now", tests).
"""

from __future__ import annotations

import asyncio
import atexit
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from idservice.audit import entry, merkle
from idservice.db.types import Conn
from idservice.queries import audit as q

__all__ = ["CHUNK", "LeafChunk", "make_chunk", "prepare", "read_chunk", "worker_chunk",
           "worker_start"]

CHUNK = 1 << 16
MIN_INDEX, MAX_INDEX = -(1 << 63), (1 << 63) - 1  # bigint bounds of the first and last chunk

# Chunk queries walk audit_log's primary key and look each event up by its own: a hash join
# would read all of audit_event for every chunk, and parallel query workers only compete with
# ours. Sequential scans are off too: a plan made while the log was small (the integrator's
# prepared statement keeps its generic plan) otherwise scans the event partition once per leaf
# after a bulk load (bench/scale.py: 5-16 s per batch of 5,000; tests/integration/
# test_bulk_plans.py). With these settings the walk is the only plan, whatever the statistics.
PLAN = ("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
        "SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0")


@dataclass(frozen=True, slots=True)
class LeafChunk:
    """What the rows of one chunk contribute to the verifier's pass (`verify._Pass.add_chunk`).

    `rows` is None for a regular chunk: its `count` rows have exactly the indexes `start ..
    start + count - 1`, and their stored leaf hashes are all equal to the recomputed ones
    (`stored_all`) or all missing; `frontiers[size]` is the compact range of the leaves
    `[start, size)` for each checked size inside the chunk and for `start + count`. Otherwise
    `rows` lists every row as (index, leaf hash, stored leaf hash or None), in index order."""

    start: int
    count: int
    stored_all: bool = False
    frontiers: Mapping[int, list[bytes]] | None = None
    rows: list[tuple[int, bytes, bytes | None]] | None = None


def _regular(start: int, leaves: list[bytes], stored_all: bool,
             sizes: Collection[int]) -> LeafChunk:
    end = start + len(leaves)
    tree = merkle.levels(leaves)
    wanted = {s for s in sizes if start < s < end} | {end}
    return LeafChunk(start, len(leaves), stored_all,
                     {s: merkle.frontier(tree, s - start) for s in sorted(wanted)})


def _irregular(start: int, indexes: list[int], leaves: list[bytes],
               stored: Mapping[int, bytes]) -> LeafChunk:
    return LeafChunk(start, len(indexes),
                     rows=[(i, leaf, stored.get(i)) for i, leaf in zip(indexes, leaves,
                                                                         strict=True)])


def make_chunk(start: int, indexes: list[int], leaves: list[bytes],
               stored: Mapping[int, bytes], sizes: Collection[int]) -> LeafChunk:
    """The chunk starting at index `start` from its rows' indexes and recomputed leaf hashes
    (index order) and the stored leaf hashes of their index range."""
    if indexes == list(range(start, start + len(indexes))):
        found = [stored.get(i) for i in indexes]
        if found == leaves:
            return _regular(start, leaves, True, sizes)
        if not any(h is not None for h in found):
            return _regular(start, leaves, False, sizes)
    return _irregular(start, indexes, leaves, stored)


async def prepare(conn: Conn) -> None:
    """Plan settings for chunk reads, for the rest of the (verifier's) transaction."""
    await conn.execute(PLAN)


async def read_chunk(conn: Conn, start: int, low: int, high: int,
                     sizes: Collection[int]) -> LeafChunk:
    """Read and hash the rows with `low <= index <= high` (the chunk's own indexes start at
    `start`; the first and last chunks pass the bigint bounds) and compare the stored leaves."""
    indexes, leaves = entry.row_leaf_hashes(await conn.fetch(q.ROWS_RANGE, low, high))
    if not indexes:
        return LeafChunk(start, 0, frontiers={start: []})
    if indexes == list(range(start, start + len(indexes))):
        packed = await conn.fetchrow(q.LEAF_HASHES_PACKED, start, indexes[-1])
        assert packed is not None  # an aggregate has a row
        if packed["n"] == 0:
            return _regular(start, leaves, False, sizes)
        if packed["n"] == len(leaves) and packed["first"] == start \
                and bytes(packed["hashes"]) == b"".join(leaves):
            return _regular(start, leaves, True, sizes)
    stored = {int(r["idx"]): bytes(r["hash"])
              for r in await conn.fetch(q.LEAF_HASHES, min(indexes), max(indexes) + 1)}
    return make_chunk(start, indexes, leaves, stored, sizes)


# -- worker processes ----------------------------------------------------------------------

_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")
_worker: tuple[asyncio.AbstractEventLoop, asyncpg.Connection] | None = None


def worker_start(url: str, snapshot: str, application_name: str) -> None:
    """Process pool initializer: one connection, in the verifier's snapshot, for the process."""
    global _worker
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    loop = asyncio.new_event_loop()

    async def open_() -> asyncpg.Connection:
        conn = await asyncpg.connect(url, server_settings={"application_name": application_name})
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                           f"SET TRANSACTION SNAPSHOT '{snapshot}'; {PLAN}")
        return conn

    conn = loop.run_until_complete(open_())
    _worker = (loop, conn)
    atexit.register(lambda: loop.run_until_complete(conn.close(timeout=5)))


def worker_chunk(start: int, low: int, high: int, sizes: Sequence[int]) -> LeafChunk:
    """`read_chunk` in a worker process (after `worker_start`)."""
    if _worker is None:
        raise RuntimeError("worker_start has not run in this process")
    loop, conn = _worker
    return loop.run_until_complete(read_chunk(conn, start, low, high, sizes))

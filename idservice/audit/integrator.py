"""Background task that grows the audit Merkle tree and signs checkpoints (contract section 5).

Sequencing is not integration (tessera's design): once `audit_sequence()` has given events their
index, this task reads them in index order in batches, computes each leaf hash from the event as
the API renders it (`entry.row_leaf_hashes`), extends the tree from its stored frontier
(`merkle.CompactRange.extend_nodes`, level by level, no recomputation) and stores the completed
subtrees through `audit_tree_append()`. While the tree
grows it signs a checkpoint whenever the last one is older than `checkpoint_interval` (well under
the contract's 10 s). Any number of processes run it; a transaction-level advisory lock lets one
work at a time. It never runs on the request path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from idservice.audit import entry, leaves
from idservice.audit.checkpoints import CheckpointSigner
from idservice.audit.merkle import CompactRange
from idservice.audit.sequencer import sequence_once
from idservice.background import PeriodicTask
from idservice.db.types import Conn
from idservice.logging import get_logger
from idservice.metrics import AUDIT_SEQUENCED
from idservice.queries import audit as q

__all__ = ["Integrator", "TreeHead", "checkpoint_once", "integrate_once", "tree_head"]

_log = get_logger(__name__)


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes
    frontier: list[bytes]


async def tree_head(conn: Conn) -> TreeHead:
    row = await conn.fetchrow(q.TREE_HEAD)
    if row is None:
        raise RuntimeError("audit_tree is empty: migration 0004 not applied?")
    return TreeHead(int(row["size"]), bytes(row["root"]), [bytes(h) for h in row["frontier"]])


async def _lock(conn: Conn, wait: bool) -> bool:
    if wait:
        await conn.execute(q.INTEGRATOR_LOCK)
        return True
    return bool(await conn.fetchval(q.INTEGRATOR_TRY_LOCK))


async def integrate_once(pool: asyncpg.Pool, batch: int = 5000, *, wait: bool = False) -> int:
    """Integrate up to `batch` sequenced events; returns how many were added to the tree."""
    async with pool.acquire() as conn, conn.transaction():
        if not await _lock(conn, wait):
            return 0
        await leaves.prepare(conn)
        head = await tree_head(conn)
        indexes, hashes = entry.row_leaf_hashes(await conn.fetch(q.ROWS_FROM, head.size, batch))
        if not indexes:
            return 0
        for due, index in enumerate(indexes, start=head.size):
            if index != due:
                raise RuntimeError(f"audit_log index {index} where {due} was due")
        tree = CompactRange(head.size, head.frontier)
        levels, idxs, nodes = tree.extend_nodes(hashes)
        await conn.execute(q.TREE_APPEND, head.size, tree.size, tree.root(), tree.hashes,
                           levels, idxs, nodes)
        return len(indexes)


async def checkpoint_once(pool: asyncpg.Pool, signer: CheckpointSigner,
                          min_interval: float = 0.0, *, wait: bool = False) -> int | None:
    """Sign the current tree if it grew since the last checkpoint and that one is at least
    `min_interval` seconds old; returns the checkpointed tree size, or None."""
    async with pool.acquire() as conn, conn.transaction():
        if not await _lock(conn, wait):
            return None
        head = await tree_head(conn)
        last = await conn.fetchrow(q.LAST_CHECKPOINT)
        if head.size == 0 or (last is not None and last["tree_size"] >= head.size):
            return None
        if last is not None and last["age"] < timedelta(seconds=min_interval):
            return None
        note = await signer.sign(head.size, head.root)
        await conn.execute(q.CHECKPOINT_ADD, head.size, note)
        return head.size


class Integrator:
    def __init__(self, pool: asyncpg.Pool, signer: CheckpointSigner, *, interval: float = 0.5,
                 checkpoint_interval: float = 2.0, batch: int = 5000) -> None:
        self._pool = pool
        self._signer = signer
        self._interval = interval
        self._checkpoint_interval = checkpoint_interval
        self._batch = batch
        # Wakes every tenth of `interval` and steps once `interval` has passed since the last
        # step started (PeriodicTask waits `interval` after a step ends).
        self._loop = PeriodicTask("audit-integrator", interval / 10, self._step)
        self._step_started: float | None = None

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def flush(self) -> int | None:
        """Integrate everything sequenced now and sign a checkpoint of it (tests, shutdown)."""
        while await integrate_once(self._pool, self._batch, wait=True) == self._batch:
            pass
        return await checkpoint_once(self._pool, self._signer, wait=True)

    async def _step(self) -> None:
        """`run_once` every `interval` seconds from start to start: an event then waits at
        most `interval` for the step that integrates it, not `interval` plus a step."""
        now = asyncio.get_running_loop().time()
        if self._step_started is not None \
                and now - self._step_started < self._interval * 0.95:
            return
        self._step_started = now
        await self.run_once()

    async def run_once(self) -> None:
        """Sequence what is committed, then integrate what is sequenced; sign between batches
        too, so a long backlog still gets a checkpoint every `checkpoint_interval` seconds
        (contract: at least every 10 s). Sequencing first (the same `audit_sequence()` round
        as the sequencer's, under its lock) spares an event the wait for the sequencer's next
        round on top of the wait for this one: integration lag is mostly these waits."""
        AUDIT_SEQUENCED.inc(await sequence_once(self._pool))
        while True:
            added = await integrate_once(self._pool, self._batch)
            await checkpoint_once(self._pool, self._signer, self._checkpoint_interval)
            if added < self._batch:
                return

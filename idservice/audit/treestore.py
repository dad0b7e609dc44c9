"""The integrated tree in PostgreSQL: proofs from stored subtrees, checkpoints, leaf hashes.

Every completed perfect subtree is stored (`audit_node`), so a proof for any tree size up to the
integrated one is one query for the O(log n) nodes `merkle.*_plan` names.
"""

from __future__ import annotations

from idservice.audit import merkle
from idservice.audit.merkle import NodeID
from idservice.db.types import Conn
from idservice.queries import audit as q

__all__ = ["checkpoints", "consistency", "inclusion", "integrated_size", "leaf_hashes",
           "root_at"]


async def integrated_size(conn: Conn) -> int:
    row = await conn.fetchrow(q.TREE_HEAD)
    return int(row["size"]) if row is not None else 0


async def root_at(conn: Conn, size: int) -> bytes | None:
    row = await conn.fetchrow(q.TREE_AT, size)
    return bytes(row["root"]) if row is not None else None


async def _nodes(conn: Conn, plan: list[list[NodeID]]) -> list[bytes]:
    wanted = sorted({n for part in plan for n in part})
    rows = await conn.fetch(q.NODES, [n.level for n in wanted], [n.index for n in wanted])
    found = {NodeID(int(r["level"]), int(r["idx"])): bytes(r["hash"]) for r in rows}
    return merkle.assemble(plan, found)


async def inclusion(conn: Conn, index: int, size: int) -> list[bytes]:
    """Inclusion proof of leaf `index` in the tree of `size` leaves (size <= integrated)."""
    return await _nodes(conn, merkle.inclusion_plan(index, size))


async def consistency(conn: Conn, first: int, second: int) -> list[bytes]:
    return await _nodes(conn, merkle.consistency_plan(first, second))


async def checkpoints(conn: Conn, since: int = 0, limit: int = 1_000_000) -> list[str]:
    return [r["note"] for r in await conn.fetch(q.CHECKPOINTS_SINCE, since, limit)]


async def leaf_hashes(conn: Conn, start: int, end: int) -> dict[int, bytes]:
    return {int(r["idx"]): bytes(r["hash"]) for r in await conn.fetch(q.LEAF_HASHES, start, end)}

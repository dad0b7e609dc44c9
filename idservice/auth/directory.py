"""Names of operators for people reading the audit log: events name an operator by id, and the
auditor pages show (and filter by) the name beside it (issue 15, item 8). The service role may
read the operator table (contract 7); nothing here changes it.
"""

from __future__ import annotations

import asyncpg

from idservice.persons.names import fold_name as fold
from idservice.queries import officers as q

__all__ = ["Directory", "operator_directory"]


class Directory:
    """id -> name of every operator (a few thousand rows at most)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def name(self, operator_id: str) -> str | None:
        return self.names.get(operator_id)

    def ids_named(self, query: str) -> list[str]:
        """Operators whose folded name (case, spacing and diacritics ignored, as person
        searches fold) equals, or else contains, the folded query."""
        wanted = fold(query)
        if not wanted:
            return []
        exact = sorted(i for i, n in self.names.items() if fold(n) == wanted)
        return exact or sorted(i for i, n in self.names.items() if wanted in fold(n))


async def operator_directory(pool: asyncpg.Pool) -> Directory:
    async with pool.acquire() as conn:
        rows = await conn.fetch(q.OPERATOR_NAMES)
    return Directory({r["id"]: r["name"] for r in rows})

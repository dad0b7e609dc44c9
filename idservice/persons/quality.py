"""The quality report (contract 9; issue 11 item 3): how clean the registry is.

Kinds: `possible_duplicate` (pairs of active persons matching the duplicate rule, not named by
an override), `parent_pin_malformed`, `parent_too_young` (under 12 at the birth: from the
parent's record when the registry has it, else from the year the parent's PIN encodes),
`active_over_120`, `late_registration` (> 60 days). Counts per province are complete; the
findings are examples, at most `examples` per kind and province.

It runs on a connection of the auditor database role, in one REPEATABLE READ transaction
(every count and example from the same snapshot), and writes its `quality.report` event in
that transaction: a report that cannot be audited is not given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.db.types import Conn
from idservice.persons.views import rfc3339
from idservice.pin.provinces import ProvinceTable
from idservice.queries import quality as q

__all__ = ["KINDS", "QualityReport", "quality_report"]

KINDS = ("possible_duplicate", "parent_pin_malformed", "parent_too_young", "active_over_120",
         "late_registration")


@dataclass(frozen=True)
class QualityReport:
    generated_at: datetime
    counts: dict[str, dict[str, int]]
    findings: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"generated_at": rfc3339(self.generated_at), "counts": self.counts,
                "findings": self.findings}


async def quality_report(conn: Conn, rctx: RequestContext, provinces: ProvinceTable, *,
                         today: date, now: datetime, province: str | None = None,
                         examples: int = 20) -> QualityReport:
    counts: dict[str, dict[str, int]] = {}
    findings: list[dict[str, Any]] = []
    async with conn.transaction(isolation="repeatable_read"):
        rows = [*await conn.fetch(q.DUPLICATE_FINDINGS, province, examples),
                *await conn.fetch(q.ROW_FINDINGS, province, examples, today,
                                  sorted(provinces.codes()))]
        for row in rows:
            counts.setdefault(row["province"], {})[row["kind"]] = int(row["n"])
            for example in row["examples"] or []:
                found = json.loads(example) if isinstance(example, str) else example
                findings.append({"kind": row["kind"], "province": row["province"], **found})
        totals = {kind: sum(c.get(kind, 0) for c in counts.values()) for kind in KINDS}
        await record(conn, rctx, [AuditEvent("quality.report", "generated", details={
            "province": province, "totals": totals})])
    findings.sort(key=lambda f: (KINDS.index(f["kind"]), f["province"], f["pins"]))
    return QualityReport(now, dict(sorted(counts.items())), findings)

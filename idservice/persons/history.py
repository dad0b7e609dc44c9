"""A person's correction history, and the small lookups a record page needs around a read.

`persons/access.read` gives the record; these give what the officers' record page shows beside
it (issue 15, item 2), each behind the same role, purpose and jurisdiction rules as the read:

- `corrections`: every correction of the record (reason, who, when, each changed field before
  and after, the new PIN when one was issued), and the correction that replaced an older PIN by
  this one. Recorded as one `person.history` event with the stated purpose, in the transaction
  of the read (an extra event beside the page's `person.read`, so an auditor sees that the
  history, which holds earlier values of the record, was shown).
- `linkable_pins`: which parent PINs named on a record exist and are within the officer's
  jurisdiction, so the page links only those. It reveals no record content (the PINs are on the
  record the officer just read), so it writes no event.
- `summary_for_auditor`: name, status and replacement links of a PIN beside its access history
  (the auditor pages), recorded as an `audit.read` event (`details.what = "person_summary"`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize, covers, require_jurisdiction
from idservice.auth.principal import Principal
from idservice.persons.access import check_pin, check_purpose
from idservice.persons.context import PersonsContext
from idservice.persons.refusals import refusals_recorded
from idservice.persons.views import load_record, rfc3339
from idservice.pin.format import is_well_formed, parse_pin
from idservice.queries import person_history as q

__all__ = ["PARENTS", "corrections", "field_changes", "linkable_pins", "summary_for_auditor"]

PARENTS = ("father", "mother")


def _before(previous: dict[str, Any], key: str) -> Any:
    if key in PARENTS or key == "death":
        return previous.get(key)
    if key == "status":  # contract 9: a death, or its undoing; a record without one was active
        return previous.get("status", "active")
    return (previous.get("child") or {}).get(key)


def field_changes(changes: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """Each changed field with its value before and after, parents field by field
    (`father.pin`), in a stable order. Pure: `changes` as stored, `previous` the whole record
    before the correction."""
    out: list[dict[str, Any]] = []
    for key in sorted(changes):
        after = changes[key]
        before = _before(previous, key)
        if key in PARENTS and isinstance(after, dict):
            old = before if isinstance(before, dict) else {}
            for sub in sorted(set(after) | set(old)):
                if sub in after and after[sub] != old.get(sub):
                    out.append({"field": f"{key}.{sub}", "before": old.get(sub),
                                "after": after[sub]})
            continue
        out.append({"field": key, "before": before, "after": after})
    return out


def _entry(row: Any, pin: str) -> dict[str, Any]:
    changes = load_record(row["changes"])
    previous = load_record(row["previous"])
    return {"at": rfc3339(row["at"]),
            "actor": {"type": row["actor_type"], "id": row["actor_id"]},
            "reason": row["reason"], "changes": field_changes(changes, previous),
            "new_pin": row["new_pin"],
            # the PIN the correction was made on: `pin`, or the older PIN this one replaced
            "pin": row["pin"], "earlier_pin": row["pin"] != pin}


async def corrections(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                      pin: str, purpose: str | None) -> list[dict[str, Any]]:
    authorize(principal, Action.PERSON_READ)
    purpose = check_purpose(purpose)
    check_pin(pin)
    async with refusals_recorded(ctx, rctx, "person.history", pin=pin, purpose=purpose):
        require_jurisdiction(principal, Action.PERSON_READ, pin=pin)
        async with ctx.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(q.HISTORY, pin)
            await record(conn, rctx, [AuditEvent("person.history", "ok", pin=pin,
                                                 purpose=purpose,
                                                 details={"count": len(rows)})])
    return [_entry(r, pin) for r in rows]


async def linkable_pins(ctx: PersonsContext, principal: Principal,
                        pins: Iterable[str | None]) -> set[str]:
    authorize(principal, Action.PERSON_READ)
    wanted = sorted({p for p in pins if p and is_well_formed(p)
                     and covers(principal, Action.PERSON_READ, parse_pin(p).province_code)})
    if not wanted:
        return set()
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch(q.EXISTING_PINS, wanted)
    return {r["pin"] for r in rows}


async def summary_for_auditor(ctx: PersonsContext, principal: Principal, rctx: RequestContext,
                              pin: str) -> dict[str, Any] | None:
    authorize(principal, Action.AUDIT_EVENTS)
    check_pin(pin)
    require_jurisdiction(principal, Action.AUDIT_EVENTS, pin=pin)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.SUMMARY, pin)
        await record(conn, rctx, [AuditEvent(
            "audit.read", "ok" if row else "not_found", pin=pin,
            details={"what": "person_summary"})])
    if row is None:
        return None
    return {"pin": row["pin"], "full_name": row["full_name"], "status": row["status"],
            "replaced_by": row["replaced_by"], "replaces": list(row["replaces"])}

"""The audit event as the API returns it, and its Merkle leaf (contract section 5).

The one place that renders an event: the API, the integrator and the verifier all use it, so
the leaf hash `SHA-256(0x00 || JCS(event))` (RFC 8785 canonical JSON) is computed from exactly
the object an auditor sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import rfc8785

from idservice.audit import merkle

__all__ = ["EVENT_FIELDS", "format_at", "leaf_hash", "render_row"]

EVENT_FIELDS = ("index", "at", "actor", "action", "pin", "purpose", "outcome", "request_id",
                "source_ip", "details")


def format_at(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds and "Z" (the database truncates `at` to milliseconds)."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def render_row(row: Row) -> dict[str, Any]:
    """An `audit_entry` row (index, at, actor_type, actor_id, ...) as the API's event object."""
    return {
        "index": int(row["index"]),
        "at": format_at(row["at"]),
        "actor": {"type": row["actor_type"], "id": row["actor_id"]},
        "action": row["action"],
        "pin": row["pin"],
        "purpose": row["purpose"],
        "outcome": row["outcome"],
        "request_id": row["request_id"],
        "source_ip": row["source_ip"],
        "details": dict(row["details"] or {}),
    }



def leaf_hash(event: Mapping[str, Any]) -> bytes:
    """RFC 9162 leaf hash of the event's RFC 8785 canonical JSON (only the contract's fields)."""
    canonical = rfc8785.dumps({name: event[name] for name in EVENT_FIELDS})
    return merkle.leaf_hash(canonical)

"""The audit event as the API returns it, and its Merkle leaf (contract section 5).

The one place that renders an event: the API, the integrator and the verifier all use it, so
the leaf hash `SHA-256(0x00 || JCS(event))` (RFC 8785 canonical JSON) is computed from exactly
the object an auditor sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import rfc8785

from idservice.audit import merkle

__all__ = ["EVENT_FIELDS", "canonical_json", "format_at", "leaf_hash", "render_row"]

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



_MAX_SAFE_INT = 2**53  # rfc8785 refuses integers of this magnitude or more


def _json_equals_jcs(value: Any) -> bool:
    """True when `json.dumps(sort_keys, compact, ensure_ascii=False)` yields RFC 8785 bytes.

    They agree on strings (same escapes: \\b \\t \\n \\f \\r short, other controls as
    lowercase \\u00xx, nothing else escaped), on true/false/null and on integers that are
    exact doubles; they can differ on floats, on integers beyond 2^53 and on key order when a
    key has characters outside the BMP (JCS sorts UTF-16 code units). Audit events are strings,
    small integers and ASCII keys, so the C-speed encoder almost always applies; anything else
    goes to the `rfc8785` library.
    """
    if isinstance(value, str | bool) or value is None:
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INT < value < _MAX_SAFE_INT
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _json_equals_jcs(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return all(_json_equals_jcs(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON of `value`."""
    if _json_equals_jcs(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    return rfc8785.dumps(value)


def leaf_hash(event: Mapping[str, Any]) -> bytes:
    """RFC 9162 leaf hash of the event's RFC 8785 canonical JSON (only the contract's fields)."""
    return merkle.leaf_hash(canonical_json({name: event[name] for name in EVENT_FIELDS}))

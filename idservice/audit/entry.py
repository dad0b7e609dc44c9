"""The audit event as the API returns it, and its Merkle leaf (contract section 5).

The one place that renders an event: the API, the integrator and the verifier all use it, so
the leaf hash `SHA-256(0x00 || JCS(event))` (RFC 8785 canonical JSON) is computed from exactly
the object an auditor sees. The integrator and the verifier hash millions of rows, so
`row_leaf_hashes` writes the canonical JSON of `render_row(row)` directly for the usual rows
and hands every other row to `render_row` + `canonical_json`. That hand-written text is checked
against the leaf derived from `EVENT_FIELDS` and `render_row` alone
(tests/unit/audit/test_entry_fast_path.py): a field added to or renamed in the event without it
fails there, as do odd values (tests/unit/audit/test_leaves.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from json import encoder as json_encoder
from json.encoder import encode_basestring
from typing import Any, Protocol

import rfc8785

from idservice.audit import merkle

__all__ = ["EVENT_FIELDS", "ROW_COLUMNS", "canonical_json", "format_at", "leaf_hash",
           "render_row", "row_leaf_hashes"]

EVENT_FIELDS = ("index", "at", "actor", "action", "pin", "purpose", "outcome", "request_id",
                "source_ip", "details")


# `audit_entry` columns as `row_leaf_hashes` takes them (queries.audit.ROWS_*), details as text.
ROW_COLUMNS = ("index", "at", "actor_type", "actor_id", "action", "pin", "purpose", "outcome",
               "request_id", "source_ip", "details")


def format_at(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds (truncated; the database stamps whole milliseconds) and
    "Z"; the year has four digits."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


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
    key has characters outside the BMP (JCS sorts UTF-16 code units, json code points: the two
    orders differ only there, `_in_bmp`). Audit events are strings, small integers and keys
    of the BMP, so the C-speed encoder almost always applies; anything else goes to the
    `rfc8785` library.
    """
    if isinstance(value, str | bool) or value is None:
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INT < value < _MAX_SAFE_INT
    if isinstance(value, dict):
        return all(isinstance(k, str) and _in_bmp(k) and _json_equals_jcs(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return all(_json_equals_jcs(v) for v in value)
    return False


def _in_bmp(text: str) -> bool:
    """No character beyond U+FFFF: keys made of such characters sort alike by code point (json's
    `sort_keys`) and by UTF-16 code unit (RFC 8785), since each is one code unit of its own
    value. A character beyond it is two code units from 0xD800-0xDFFF, which sort below
    U+E000-U+FFFF although its code point is above them."""
    return text.isascii() or max(text) < "\U00010000"


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
# The very encoder `_encode` runs (json.JSONEncoder.iterencode with the same arguments), without
# its per-call set-up: for `row_leaf_hashes`, where the call costs more than the work.
_c_make_encoder: Callable[..., Callable[[Any, int], Iterable[str]]] | None = \
    getattr(json_encoder, "c_make_encoder", None)
_iterencode = None if _c_make_encoder is None else \
    _c_make_encoder(None, None, encode_basestring, None, ":", ",", True, False, True)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON of `value`."""
    if _json_equals_jcs(value):
        return _encode(value).encode()
    return rfc8785.dumps(value)


def leaf_hash(event: Mapping[str, Any]) -> bytes:
    """RFC 9162 leaf hash of the event's RFC 8785 canonical JSON (only the contract's fields)."""
    return merkle.leaf_hash(canonical_json({name: event[name] for name in EVENT_FIELDS}))


def _refuse(_: str) -> Any:
    raise _NotPlain


class _NotPlain(Exception):
    """A JSON text the C-speed encoder may not render as RFC 8785 (see `_plain_details`)."""


_LONG_DIGITS = re.compile(r"[0-9]{16}")


def _plain_details(text: str) -> dict[str, Any] | None:
    """`details` parsed from its JSON text, or None unless `_json_equals_jcs` surely holds:
    no character beyond U+FFFF and no \\u escape (so every key is of the BMP, `_in_bmp`:
    Vietnamese text is, and the batch's events name the registration's authority), no float
    or NaN (refused while parsing), no run of 16 digits (so every integer is below
    10**15 < 2**53). Cheaper than walking the parsed value; anything else takes the general
    path."""
    if not _in_bmp(text) or "\\u" in text or _LONG_DIGITS.search(text):
        return None
    try:
        value = _loads_plain(text)
    except _NotPlain:
        return None
    return value if type(value) is dict else None


_loads_plain = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse).decode


def row_leaf_hashes(rows: Iterable[Iterable[Any]]) -> tuple[list[int], list[bytes]]:
    """Indexes and leaf hashes of `audit_entry` rows (columns as `ROW_COLUMNS`, `details` as
    JSON text): byte for byte `leaf_hash(render_row(row))`. For the usual row (strings or
    nulls, an index below 2**53, plain details) the canonical JSON is written here, with the
    escaping and number forms of `canonical_json`'s C-speed encoder, keys in sorted order;
    every other row goes through `render_row` and `canonical_json`."""
    esc, sha256, iterencode = encode_basestring, hashlib.sha256, _iterencode
    encode = _encode if iterencode is None else lambda value: "".join(iterencode(value, 0))
    seconds: dict[tuple[int, ...], str] = {}  # "YYYY-MM-DDTHH:MM:SS" of format_at, per second
    indexes: list[int] = []
    leaves: list[bytes] = []
    for row in rows:
        (index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
         details_text) = row
        details = _plain_details(details_text) if type(details_text) is str else None
        if (details is not None and type(index) is int and -_MAX_SAFE_INT < index < _MAX_SAFE_INT
                and type(at) is datetime and at.tzinfo is UTC and type(actor_type) is str
                and type(actor_id) is str and type(action) is str and type(outcome) is str
                and (pin is None or type(pin) is str)
                and (purpose is None or type(purpose) is str)
                and (request_id is None or type(request_id) is str)
                and (source_ip is None or type(source_ip) is str)):
            second = (at.year, at.month, at.day, at.hour, at.minute, at.second)
            prefix = seconds.get(second)
            if prefix is None:
                prefix = seconds[second] = format_at(at)[:-5]
            text = (
                f'{{"action":{esc(action)},"actor":{{"id":{esc(actor_id)},'
                f'"type":{esc(actor_type)}}},"at":"{prefix}.{at.microsecond // 1000:03d}Z",'
                f'"details":{encode(details)},'
                f'"index":{index},"outcome":{esc(outcome)},'
                f'"pin":{"null" if pin is None else esc(pin)},'
                f'"purpose":{"null" if purpose is None else esc(purpose)},'
                f'"request_id":{"null" if request_id is None else esc(request_id)},'
                f'"source_ip":{"null" if source_ip is None else esc(source_ip)}}}')
            data = text.encode()
        else:
            data = canonical_json(render_row(_parsed(row)))
        indexes.append(index)
        leaves.append(sha256(b"\x00" + data).digest())
    return indexes, leaves


def _parsed(row: Iterable[Any]) -> dict[str, Any]:
    """A `row_leaf_hashes` row as `render_row` takes it (details parsed)."""
    named = dict(zip(ROW_COLUMNS, row, strict=True))
    if isinstance(named["details"], str):
        named["details"] = json.loads(named["details"])
    return named

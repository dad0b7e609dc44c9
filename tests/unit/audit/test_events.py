"""Audit details are checked before they are written: nothing that the leaf hash could not be
computed for may reach the log (it would stall the integrator for good)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import rfc8785

from idservice.audit import entry
from idservice.audit.events import check_details


@pytest.mark.parametrize("details", [
    {}, {"registration": {"authority": "UBND", "number": "A-1"}, "line": 3},
    {"seconds": 1.234, "rows": 2**53 - 1, "neg": -(2**53 - 1), "ok": True, "none": None,
     "list": [1, "a", {"b": [0.5]}], "tên": "Đặng"},
])
def test_recordable_details_pass_and_hash(details: dict[str, Any]) -> None:
    check_details(details)
    # what the database gives back (jsonb) still has a leaf hash
    stored = json.loads(json.dumps(details), parse_float=Decimal)
    as_read = json.loads(json.dumps(stored, default=float))
    entry.canonical_json(as_read)


@pytest.mark.parametrize("details", [
    {"n": 2**53}, {"n": -(2**53)}, {"x": 1e20}, {"x": float("nan")}, {"x": float("inf")},
    {"deep": [{"x": 10**30}]}, {"obj": object()}, {"bytes": b"x"}, {"k": {1: "int key"}},
])
def test_unrecordable_details_are_refused(details: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="audit detail"):
        check_details(details)


def test_why_large_numbers_are_refused() -> None:
    """jsonb prints 1e20 as a 21-digit integer; RFC 8785 has no exact form for it."""
    as_read = {"x": int(Decimal("1e20"))}
    with pytest.raises(rfc8785.IntegerDomainError):
        entry.canonical_json(as_read)

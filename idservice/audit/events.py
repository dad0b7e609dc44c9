"""The audit event as written by the service (contract section 5).

An `AuditEvent` is what a request records; the database stamps `at` and its transaction id,
and the sequencer gives it an `index` after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idservice.auth.principal import Actor

__all__ = ["CUT_MARK", "MAX_CALLER_TEXT", "AuditEvent", "RequestContext", "cap_text",
           "check_details"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, and from where: every audit event of a request carries this."""

    actor: Actor
    request_id: str | None
    source_ip: str | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    outcome: str
    pin: str | None = None
    purpose: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_MAX_EXACT = 2**53


def check_details(value: Any) -> None:
    """Refuse details the leaf hash could not be computed for, before they are written.

    jsonb keeps numbers as decimals and prints 1e20 as a 21-digit integer, which RFC 8785
    (IEEE 754 doubles) cannot represent: such an event could never be integrated and would
    stall the tree. So numbers must be finite and of magnitude below 2^53, keys strings.
    """
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int | float):
        if not -_MAX_EXACT < value < _MAX_EXACT:  # also false for NaN
            raise ValueError(f"audit detail number out of range: {value!r}")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit detail key is not a string: {key!r}")
            check_details(item)
        return
    if isinstance(value, list | tuple):
        for item in value:
            check_details(item)
        return
    raise ValueError(f"audit detail of type {type(value).__name__} cannot be recorded")


# Contract 7: "No event carries more than 4 KiB of caller-chosen text."
MAX_CALLER_TEXT = 4096
CUT_MARK = "…[{} bytes cut]"


def cap_text(purpose: str | None, details: dict[str, Any],
             budget: int) -> tuple[str | None, dict[str, Any]]:
    """`purpose` and `details` with at most `budget` bytes (UTF-8) of text.

    The text of an event is what its caller could choose: the purpose, every string of the
    details (keys count too, and are never cut), and the actor id, request id and source
    address, which the caller of this function has taken off `budget` (they are bounded where
    they are made). When the event is over, the longest strings are cut to one common length,
    the largest that fits ("water-filling": short values such as codes and PINs stay whole),
    each at a character boundary and followed by `CUT_MARK` (our text, not the caller's).
    Nothing is lost for good: the full text of what a service stores (a correction's changes,
    a record) is in its own table; the log keeps who, when, what and a bounded account of it.
    """
    strings: list[str] = [] if purpose is None else [purpose]
    key_bytes = _collect(details, strings)
    available = max(0, budget - key_bytes)
    sizes = [len(text.encode()) for text in strings]
    if sum(sizes) <= available:
        return purpose, details
    limit = _water_level(sizes, available)
    capped = _rebuild(details, limit)
    assert isinstance(capped, dict)
    return (None if purpose is None else _cut(purpose, limit)), capped


def _collect(value: Any, strings: list[str]) -> int:
    """Append every string value in `value` to `strings`; return the bytes of its keys."""
    if isinstance(value, str):
        strings.append(value)
        return 0
    if isinstance(value, dict):
        return sum(len(k.encode()) + _collect(v, strings) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_collect(v, strings) for v in value)
    return 0


def _water_level(sizes: list[int], available: int) -> int:
    """The largest L with sum(min(size, L)) <= available (sizes over `available` in all)."""
    remaining, left = available, len(sizes)
    for size in sorted(sizes):
        share = remaining // left
        if size > share:
            return share
        remaining -= size
        left -= 1
    return max(sizes)


def _cut(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")
    return kept + CUT_MARK.format(len(data) - len(kept.encode()))


def _rebuild(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return _cut(value, limit)
    if isinstance(value, dict):
        return {k: _rebuild(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rebuild(v, limit) for v in value]
    return value

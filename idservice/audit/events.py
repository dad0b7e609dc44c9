"""The audit event as written by the service (contract section 5).

An `AuditEvent` is what a request records; the database stamps `at` and its transaction id,
and the sequencer gives it an `index` after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idservice.auth.principal import Actor

__all__ = ["AuditEvent", "RequestContext", "check_details"]


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

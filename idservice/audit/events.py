"""The audit event as written by the service (contract section 5).

An `AuditEvent` is what a request records; the database stamps `at` and its transaction id,
and the sequencer gives it an `index` after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Actor", "AuditEvent", "RequestContext"]

ActorType = Literal["operator", "client", "anonymous"]


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str


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

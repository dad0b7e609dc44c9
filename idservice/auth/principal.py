"""Who is calling, and what they may do (contract section 3.3, roles and jurisdiction).

One `Principal` type for machine clients and officers alike, built from a verified access
token, so every endpoint checks roles and jurisdiction the same way whoever logged in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from idservice.errors import Forbidden

__all__ = ["ROLES", "Actor", "ActorType", "Principal", "Role"]

ActorType = Literal["operator", "client", "anonymous"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who an audit event names (contract 5 `actor`): a principal, or a login attempt's
    claimed identity before it verified."""

    type: ActorType
    id: str


# `portal`: the public-service portal asking the Data Tracker for its citizens (contract 11);
# `investigator`: beside `officer`, may hide a read from the citizen's report until a date.
Role = Literal["registrar", "officer", "auditor", "admin", "portal", "investigator"]
ROLES: frozenset[str] = frozenset({"registrar", "officer", "auditor", "admin", "portal",
                                   "investigator"})


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["client", "operator"]
    id: str
    roles: frozenset[str]
    jurisdiction: str  # a 3-digit PIN province code, or "*"
    token_id: str
    expires_at: int
    cert_thumbprint: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(type=self.kind, id=self.id)

    def require_role(self, *allowed: Role) -> None:
        if not self.roles.intersection(allowed):
            raise Forbidden(f"requires role {' or '.join(allowed)}")

    def covers(self, province_code: str) -> bool:
        return self.jurisdiction == "*" or self.jurisdiction == province_code

    def require_jurisdiction(self, province_code: str, *, field: str | None = None) -> None:
        if not self.covers(province_code):
            raise Forbidden(
                f"jurisdiction {self.jurisdiction} does not cover province {province_code}",
                field=field,
            )

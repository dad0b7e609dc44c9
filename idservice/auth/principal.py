"""Who is calling, and what they may do (contract section 3.3, roles and jurisdiction).

One `Principal` type for machine clients and officers alike, built from a verified access
token; what each role and jurisdiction allows is `auth/policy.py`'s table, the same whoever
logged in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ROLES", "Actor", "ActorType", "Principal", "Role"]

# `certificate`: a login attempt whose certificate did not validate (contract 7); `admin`: the
# OS user who ran an `operators` / `clients` command.
ActorType = Literal["operator", "client", "anonymous", "certificate", "admin"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who an audit event names (contract 5 `actor`): a principal, or a login attempt's
    claimed identity before it verified."""

    type: ActorType
    id: str


# `reader`: clients of OSIA Data Access (contract 10), reading under their registered purpose.
# `portal`: the public-service portal asking the Data Tracker for its citizens (contract 11);
# `investigator`: beside `officer`, may hide a read from the citizen's report until a date.
# `subscriber`: a client receiving notifications (contract 9, OSIA Notification).
Role = Literal["registrar", "officer", "auditor", "admin", "reader", "portal", "investigator",
               "subscriber"]
ROLES: frozenset[str] = frozenset({"registrar", "officer", "auditor", "admin", "reader",
                                   "portal", "investigator", "subscriber"})


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

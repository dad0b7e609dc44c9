"""Who may do what: every action, the roles allowed and its jurisdiction rule, in one table
(contract 3.3 roles and jurisdiction, 4 per endpoint, 7 auditor jurisdiction).

Routes check the role before they read a body (a caller without the role hears `403` whatever
it sent); services check role and jurisdiction again, so a service is safe whoever calls it.
Both ask this table, never a role name of their own.

Jurisdiction rules:

- `REGISTRATION`: the registration's `province_code` must be the caller's `jur` (or `*`);
- `PIN`: the PIN's province (its first three digits) must be the caller's `jur`;
- `EVENT_PIN`: audit events are visible when their `pin` starts with the caller's `jur`, or
  when they have no `pin` (logins, administration, audit reads);
- `NONE`: not bound to a province (verification answers only match / no match; checkpoints
  and proofs reveal no record).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from idservice.auth.principal import Principal, Role
from idservice.errors import Forbidden
from idservice.pin.format import parse_pin

__all__ = ["POLICY", "Action", "Jurisdiction", "Rule", "allows", "authorize", "covers",
           "event_pin_prefix", "require_jurisdiction"]


class Action(StrEnum):
    PIN_ISSUE = "pin.issue"
    PIN_ISSUE_BATCH = "pin.issue_batch"
    PIN_VERIFY = "pin.verify"
    PERSON_READ = "person.read"
    PERSON_SEARCH = "person.search"
    PERSON_CORRECT = "person.correct"
    OSIA_DATA_ACCESS = "osia.data_access"  # read, match, verify attributes (contract 10)
    OSIA_READER = "osia.reader"  # ... as a client, under its registered purpose
    DATATRACKER = "datatracker"  # a portal asks for a citizen's usages (contract 11)
    COVERT_ACCESS = "person.covert"  # hide a read or search from the citizen until a date
    WEB_SESSION = "web.session"  # a session on the web pages (each page then asks its own)
    PERSON_DEATH = "person.death"  # jurisdiction: the death registration's province
    AUDIT_EVENTS = "audit.events"  # list, by index, export; the auditor UI
    AUDIT_TREE = "audit.tree"  # checkpoints, keys, proofs
    PIN_RESERVE = "pin.reserve"  # contract 8: reserve, sync offline issuances, release
    RESERVATION_ADMIN = "reservation.admin"  # contract 8: read or release another's
    NOTIFY_SUBSCRIBE = "notify.subscribe"  # contract 9: manage one's own subscriptions
    NOTIFY_TOPICS = "notify.topics"  # contract 9: list the topics
    NOTIFY_PUBLISH = "notify.publish"  # contract 9: the spec's publisher calls (topics, publish)


class Jurisdiction(Enum):
    NONE = "none"
    REGISTRATION = "registration"
    PIN = "pin"
    EVENT_PIN = "event_pin"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    jurisdiction: Jurisdiction


def _rule(*roles: Role, jurisdiction: Jurisdiction) -> Rule:
    return Rule(frozenset(roles), jurisdiction)


# Contract 4: issue (registrar), batch (registrar, admin), verify (registrar, officer), read,
# search and correct (officer); contract 5: the audit log (auditor); contract 10: OSIA Data
# Access (an officer, or a `reader` client under its registered purpose). OSIA UIN generation
# and OpenCRVS registration are issuance (PIN_ISSUE); contract 11: the Data Tracker (a
# `portal`, for the citizens it authenticated) and covert access (an `investigator`, in
# addition to the read's own action).
POLICY: Mapping[Action, Rule] = {
    Action.PIN_ISSUE: _rule("registrar", jurisdiction=Jurisdiction.REGISTRATION),
    Action.PIN_ISSUE_BATCH: _rule("registrar", "admin", jurisdiction=Jurisdiction.REGISTRATION),
    Action.PIN_VERIFY: _rule("registrar", "officer", jurisdiction=Jurisdiction.NONE),
    Action.PERSON_READ: _rule("officer", jurisdiction=Jurisdiction.PIN),
    Action.PERSON_SEARCH: _rule("officer", jurisdiction=Jurisdiction.REGISTRATION),
    Action.PERSON_CORRECT: _rule("officer", jurisdiction=Jurisdiction.PIN),
    Action.OSIA_DATA_ACCESS: _rule("officer", "reader", jurisdiction=Jurisdiction.PIN),
    Action.OSIA_READER: _rule("reader", jurisdiction=Jurisdiction.PIN),
    Action.DATATRACKER: _rule("portal", jurisdiction=Jurisdiction.NONE),
    Action.COVERT_ACCESS: _rule("investigator", jurisdiction=Jurisdiction.NONE),
    # The web pages: officers, auditors, and province administrators (their reservations page,
    # issue 15 item 4), each logging in with their USB token as an operator.
    Action.WEB_SESSION: _rule("officer", "auditor", "admin", jurisdiction=Jurisdiction.NONE),
    # Contract 9: a registrar registers deaths in its province, whatever the PIN's province.
    Action.PERSON_DEATH: _rule("registrar", jurisdiction=Jurisdiction.REGISTRATION),
    Action.AUDIT_EVENTS: _rule("auditor", jurisdiction=Jurisdiction.EVENT_PIN),
    Action.AUDIT_TREE: _rule("auditor", jurisdiction=Jurisdiction.NONE),
    # Contract 8: reservations and their sync (registrar: the reserving client only, checked
    # by the service); reading and releasing a client's reservation: admin of its province.
    Action.PIN_RESERVE: _rule("registrar", jurisdiction=Jurisdiction.REGISTRATION),
    Action.RESERVATION_ADMIN: _rule("admin", jurisdiction=Jurisdiction.REGISTRATION),
    # Contract 9: subscribers manage their subscriptions and list topics; the spec's topic
    # creation and publishing need admin (and only the service itself publishes). What a
    # subscriber receives is limited to its jurisdiction's PINs by the delivery itself.
    Action.NOTIFY_SUBSCRIBE: _rule("subscriber", jurisdiction=Jurisdiction.NONE),
    Action.NOTIFY_TOPICS: _rule("subscriber", "admin", jurisdiction=Jurisdiction.NONE),
    Action.NOTIFY_PUBLISH: _rule("admin", jurisdiction=Jurisdiction.NONE),
}


def allows(principal: Principal, action: Action) -> bool:
    """Whether one of the caller's roles may do `action` (pages choose what to offer by it)."""
    return bool(principal.roles & POLICY[action].roles)


def authorize(principal: Principal, action: Action) -> None:
    """Raise `Forbidden` unless one of the caller's roles may do `action`."""
    allowed = POLICY[action].roles
    if not allows(principal, action):
        raise Forbidden(f"requires role {' or '.join(sorted(allowed))}")


def covers(principal: Principal, action: Action, province_code: str) -> bool:
    """Whether `action` on something of `province_code` is within the caller's jurisdiction."""
    if POLICY[action].jurisdiction is Jurisdiction.NONE:
        return True
    return principal.jurisdiction in ("*", province_code)


def require_jurisdiction(principal: Principal, action: Action, *, province_code: str | None = None,
                         pin: str | None = None, field: str | None = None) -> None:
    """Raise `Forbidden` when `action` on this province (or this PIN's) is outside the
    caller's jurisdiction. Pass exactly one of `province_code` and `pin` (well-formed)."""
    if (province_code is None) == (pin is None):
        raise TypeError("pass exactly one of province_code and pin")
    code = province_code if province_code is not None else parse_pin(pin or "").province_code
    if not covers(principal, action, code):
        what = "this PIN" if pin is not None else f"province {code}"
        raise Forbidden(f"jurisdiction {principal.jurisdiction} does not cover {what}",
                        field=field)


def event_pin_prefix(principal: Principal) -> str | None:
    """The PIN prefix the caller's audit reads are limited to (None: every event)."""
    if POLICY[Action.AUDIT_EVENTS].jurisdiction is not Jurisdiction.EVENT_PIN \
            or principal.jurisdiction == "*":
        return None
    return principal.jurisdiction

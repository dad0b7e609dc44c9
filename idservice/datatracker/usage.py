"""What a usage is (contract section 11) and how an audit event becomes one. No I/O.

A usage is one successful access to a PIN's record by anyone but a portal: a read, a search
that returned it, a verification, an OSIA read/match/verify (audited as `person.read` /
`pin.verify` with `details.osia`), a correction, an issuance, a death registration. Refused
attempts (`forbidden`, `refused`, `not_found`, conflicts) and auditors' reads of the log
(`audit.read`) are not usages, nor is the report itself (`citizen.report`). `USAGE_KINDS` is
that list as data: the action, the outcomes that mean "the record was used", and the plain
Vietnamese words a citizen reads when the access stated no purpose.

A covert access (`persons/covert.py`) is left out while the citizen's civil date is before its
`hidden_until` and shown from that date on, with its purpose and legal basis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from types import MappingProxyType
from typing import Any, Protocol

from idservice.audit.entry import format_at
from idservice.persons.covert import HIDDEN_UNTIL, LEGAL_BASIS

__all__ = ["CENTRAL", "OSIA_DESCRIPTIONS", "USAGE_KINDS", "Receiver", "UsageKind",
           "action_outcomes", "describe", "receiver", "render_usage", "visible_on"]


@dataclass(frozen=True, slots=True)
class UsageKind:
    outcomes: tuple[str, ...]  # the event outcomes that mean the record was used
    description: str  # what the citizen reads when the access stated no purpose
    reason_key: str | None = None  # a `details` key with the officer's stated reason


USAGE_KINDS: Mapping[str, UsageKind] = MappingProxyType({
    "person.read": UsageKind(("found",), "Xem hồ sơ hộ tịch của bạn"),
    "person.search": UsageKind(("found",),
                               "Tìm kiếm hồ sơ theo họ tên; hồ sơ của bạn có trong kết quả"),
    "pin.verify": UsageKind(("match", "no_match"),
                            "Đối chiếu họ tên và ngày sinh với số định danh cá nhân của bạn"),
    "person.correct": UsageKind(("corrected", "reissued"),
                                "Cải chính thông tin trong hồ sơ của bạn", reason_key="reason"),
    "pin.issue": UsageKind(("issued", "replayed"), "Cấp số định danh cá nhân cho bạn"),
    "person.death": UsageKind(("registered", "replayed"), "Đăng ký khai tử"),
})

# OSIA Data Access (contract 10): the operation in `details.osia` says more than the action.
OSIA_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({
    "read": "Tra cứu thông tin của bạn qua kết nối liên thông (OSIA)",
    "match": "Đối chiếu thông tin của bạn qua kết nối liên thông (OSIA)",
    "verify": "Đối chiếu thông tin của bạn qua kết nối liên thông (OSIA)",
})

CENTRAL = "VN"  # receiverCode of an organisation whose jurisdiction is `*`
_OPERATOR_SYSTEM = "Hệ thống cấp số định danh cá nhân"
_CENTRAL_NAME = "Cơ quan nhà nước cấp trung ương"


@cache
def action_outcomes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The usage actions and their `"action outcome"` pairs, as the report's SQL takes them."""
    actions = tuple(sorted(USAGE_KINDS))
    pairs = tuple(sorted(f"{a} {o}" for a, kind in USAGE_KINDS.items() for o in kind.outcomes))
    return actions, pairs


def visible_on(today: date) -> str:
    """The `hidden_until` bound of the report's SQL: an event is shown once its
    `hidden_until` (ISO date text, or none) is at most the citizen's civil date."""
    return today.isoformat()


@dataclass(frozen=True, slots=True)
class Receiver:
    code: str
    name: str
    system: str


def receiver(actor_type: str, actor_id: str, *, org_code: str | None, org_name: str | None,
             system: str | None, jurisdiction: str | None, client_name: str | None,
             province_names: Mapping[str, str]) -> Receiver:
    """Who used the record, as the citizen is told: the registered organisation (`--org-code`,
    `--org-name`, `--system`) or, where none is registered, the jurisdiction ("VN" for `*`),
    a client's registered name, and for officers the service itself. Never an officer's own
    name: citizens are told the organisation, as in Estonia's Data Tracker."""
    jur = jurisdiction or "*"
    code = org_code or (CENTRAL if jur == "*" else jur)
    if org_name:
        name = org_name
    elif actor_type == "client" and client_name:
        name = client_name
    elif jur == "*":
        name = _CENTRAL_NAME
    else:
        name = f"Cơ quan nhà nước tại {province_names.get(jur, jur)}"
    if system:
        sys_name = system
    elif actor_type == "client":
        sys_name = actor_id
    else:
        sys_name = _OPERATOR_SYSTEM
    return Receiver(code, name, sys_name)


def describe(action: str, purpose: str | None, details: Mapping[str, Any]) -> str:
    """Why the record was used, in the citizen's words: the stated purpose, or what was done
    (with the officer's reason for a correction), and a covert access's legal basis."""
    osia = details.get("osia")
    if isinstance(osia, str) and osia in OSIA_DESCRIPTIONS and not purpose:
        return OSIA_DESCRIPTIONS[osia]
    kind = USAGE_KINDS.get(action)
    if purpose:
        text = purpose
    elif kind is None:  # pragma: no cover - the SQL selects only USAGE_KINDS
        text = action
    else:
        text = kind.description
        reason = details.get(kind.reason_key) if kind.reason_key else None
        if isinstance(reason, str) and reason:
            text = f"{text} (lý do: {reason})"
    legal_basis = details.get(LEGAL_BASIS)
    if isinstance(legal_basis, str) and legal_basis:
        text = f"{text}. Căn cứ pháp lý: {legal_basis}"
    return text


class UsageRow(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def render_usage(row: UsageRow, province_names: Mapping[str, str]) -> dict[str, Any]:
    """One report row (queries/datatracker.py PAGE) as the spec's `Usage`, with the
    extensions `auditIndex` and, for a covert access now shown, `hiddenUntil` and
    `legalBasis`."""
    details: Mapping[str, Any] = row["details"] or {}
    who = receiver(row["actor_type"], row["actor_id"], org_code=row["org_code"],
                   org_name=row["org_name"], system=row["system"],
                   jurisdiction=row["jurisdiction"], client_name=row["client_name"],
                   province_names=province_names)
    usage: dict[str, Any] = {
        "logtime": format_at(row["at"]),
        "action": describe(row["action"], row["purpose"], details),
        "receiverCode": who.code,
        "receiverName": who.name,
        "receiverSystem": who.system,
        "auditIndex": int(row["index"]),
    }
    for key, name in ((HIDDEN_UNTIL, "hiddenUntil"), (LEGAL_BASIS, "legalBasis")):
        value = details.get(key)
        if isinstance(value, str):
            usage[name] = value
    return usage


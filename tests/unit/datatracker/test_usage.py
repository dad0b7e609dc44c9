"""What a usage is and how it reads (contract 11): the kinds as data, the citizen's words,
who is named."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from idservice.auth.principal import Principal
from idservice.datatracker.usage import (
    USAGE_KINDS,
    action_outcomes,
    describe,
    receiver,
    render_usage,
)
from idservice.errors import Forbidden, InvalidField
from idservice.persons.covert import parse_covert

NAMES = {"001": "Hà Nội"}


def test_usage_kinds_are_the_contracts_list_and_never_a_report_or_refusal() -> None:
    assert set(USAGE_KINDS) == {"person.read", "person.search", "pin.verify", "person.correct",
                                "pin.issue", "person.death"}
    actions, pairs = action_outcomes()
    assert "citizen.report" not in actions and "audit.read" not in actions
    assert not [p for p in pairs if p.split()[1] in ("forbidden", "refused", "not_found",
                                                       "registration_conflict")]


def test_purpose_first_then_the_kinds_description() -> None:
    assert describe("person.read", "Hồ sơ kết hôn", {}) == "Hồ sơ kết hôn"
    assert describe("person.read", None, {}) == "Xem hồ sơ hộ tịch của bạn"
    assert describe("person.correct", None, {"reason": "sai tên"}) == \
        "Cải chính thông tin trong hồ sơ của bạn (lý do: sai tên)"
    assert describe("pin.verify", None, {"osia": "match"}) == \
        "Đối chiếu thông tin của bạn qua kết nối liên thông (OSIA)"
    assert describe("person.read", "Điều tra", {"legal_basis": "Điều 88"}) == \
        "Điều tra. Căn cứ pháp lý: Điều 88"


@pytest.mark.parametrize(("kw", "expected"), [
    ({"actor_type": "operator", "org_code": "H40", "org_name": "UBND", "system": "HT",
      "jurisdiction": "001"}, ("H40", "UBND", "HT")),
    ({"actor_type": "operator", "jurisdiction": "001"},
     ("001", "Cơ quan nhà nước tại Hà Nội", "Hệ thống cấp số định danh cá nhân")),
    ({"actor_type": "operator", "jurisdiction": "*"},
     ("VN", "Cơ quan nhà nước cấp trung ương", "Hệ thống cấp số định danh cá nhân")),
    ({"actor_type": "client", "jurisdiction": "001", "client_name": "Phần mềm hộ tịch"},
     ("001", "Phần mềm hộ tịch", "the-id")),
    ({"actor_type": "client"}, ("VN", "Cơ quan nhà nước cấp trung ương", "the-id")),
])
def test_receiver_is_the_organisation_or_the_jurisdiction(kw: dict[str, str],
                                                          expected: tuple[str, str, str]) -> None:
    args = {"org_code": None, "org_name": None, "system": None, "jurisdiction": None,
            "client_name": None, **kw}
    who = receiver(args.pop("actor_type"), "the-id", province_names=NAMES, **args)  # type: ignore[arg-type]
    assert (who.code, who.name, who.system) == expected


def test_a_covert_usage_shown_carries_its_date_and_legal_basis() -> None:
    row = {"index": 9, "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "actor_type": "operator",
           "actor_id": "o", "action": "person.read", "purpose": "Điều tra",
           "details": {"hidden_until": "2026-01-10", "legal_basis": "Điều 88"},
           "org_code": None, "org_name": None, "system": None, "jurisdiction": "001",
           "client_name": None}
    usage = render_usage(row, NAMES)
    assert usage == {"logtime": "2026-01-02T03:04:05.000Z",
                     "action": "Điều tra. Căn cứ pháp lý: Điều 88", "receiverCode": "001",
                     "receiverName": "Cơ quan nhà nước tại Hà Nội",
                     "receiverSystem": "Hệ thống cấp số định danh cá nhân", "auditIndex": 9,
                     "hiddenUntil": "2026-01-10", "legalBasis": "Điều 88"}


# -- covert access rules (persons/covert.py) ---------------------------------------------------

TODAY = date(2026, 12, 5)


def _principal(*roles: str) -> Principal:
    return Principal(kind="operator", id="o", roles=frozenset(roles), jurisdiction="001",
                     token_id="t", expires_at=0)


def test_ordinary_access_has_no_covert_part() -> None:
    assert parse_covert(_principal("officer"), None, None, today=TODAY, max_days=365) is None


def test_investigator_hides_until_a_date_within_the_limit() -> None:
    covert = parse_covert(_principal("officer", "investigator"), "2027-12-05", " Điều 88 ",
                          today=TODAY, max_days=365)
    assert covert is not None and covert.details() == {"hidden_until": "2027-12-05",
                                                       "legal_basis": " Điều 88 "}


def test_hidden_until_without_the_role_is_forbidden_before_anything_else() -> None:
    with pytest.raises(Forbidden):
        parse_covert(_principal("officer"), "not a date", None, today=TODAY, max_days=365)


@pytest.mark.parametrize(("until", "basis", "field"), [
    ("2027-12-06", "Điều 88", "hidden_until"), ("2026-12-05", "Điều 88", "hidden_until"),
    ("2026-12-5", "Điều 88", "hidden_until"), ("2026-12-06", None, "legal_basis"),
    ("2026-12-06", "\u200b", "legal_basis"), ("2026-12-06", "x" * 501, "legal_basis"),
    (None, "Điều 88", "legal_basis"),
])
def test_bad_covert_requests_are_invalid_field(until: str | None, basis: str | None,
                                                field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_covert(_principal("officer", "investigator"), until, basis, today=TODAY,
                     max_days=365)
    assert caught.value.field == field and caught.value.status == 422
    assert TODAY + timedelta(days=365) == date(2027, 12, 5)

"""OpenCRVS event documents -> a birth registration body: the REGISTER action, the merged
declaration (as opencrvs-core v1.9 commons/src/events/utils.ts computes it) and the field
mapping, on the fixtures of tests/fixtures/opencrvs/ (sources in SOURCES.md)."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from idservice.integrations.opencrvs import events
from idservice.integrations.opencrvs.errors import OpenCrvsRefusal
from idservice.integrations.opencrvs.mapping import opencrvs_message, to_issue_body

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "opencrvs"


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    return data


@pytest.fixture
def testdata() -> dict[str, Any]:
    """opencrvs-countryconfig v1.9.11 src/api/notification/testData.ts birthRegistrationEvent"""
    return _fixture("countryconfig-testdata-birth-register.json")


@pytest.fixture
def notify_max() -> dict[str, Any]:
    """opencrvs-countryconfig v1.9.11 postman "Notify Event (Max)" in an EventDocument"""
    return _fixture("postman-notify-max-birth-register.json")


def _action(type_: str, status: str, at: str, declaration: dict[str, Any],
            **extra: Any) -> dict[str, Any]:
    return {"id": f"{type_}-{at}", "type": type_, "status": status, "createdAt": at,
            "createdAtLocation": "loc", "declaration": declaration, **extra}


def _state(event: dict[str, Any]) -> dict[str, Any]:
    return events.declaration(event, events.register_action(event))


def test_register_action_is_the_requested_one(testdata: dict[str, Any]) -> None:
    register = events.register_action(events.event_document(testdata))
    assert register["id"] == "e4ef249e-dc06-4b5e-840a-2ee7edc3f826"
    assert register["status"] == "Requested"


def test_register_action_already_confirmed_falls_back_to_last_not_rejected(
        testdata: dict[str, Any]) -> None:
    testdata["actions"].append(_action("REGISTER", "Accepted", "2025-08-20T04:00:00.000Z", {},
                                       originalActionId="e4ef249e-dc06-4b5e-840a-2ee7edc3f826"))
    assert events.register_action(testdata)["status"] == "Accepted"


def test_event_without_register_action_is_refused(testdata: dict[str, Any]) -> None:
    testdata["actions"] = [a for a in testdata["actions"] if a["type"] != "REGISTER"]
    with pytest.raises(OpenCrvsRefusal, match="no REGISTER action"):
        events.register_action(testdata)


def test_wrapped_event_is_the_same_event(testdata: dict[str, Any]) -> None:
    assert events.event_document({"event": copy.deepcopy(testdata)}) == testdata


@pytest.mark.parametrize(("change", "reason"), [
    ({"type": "death"}, "only 'birth'"), ({"id": None}, "event.id"),
    ({"trackingId": ""}, "event.trackingId"), ({"actions": {}}, "event.actions")])
def test_event_document_missing_its_parts_is_refused(testdata: dict[str, Any],
                                                     change: dict[str, Any],
                                                     reason: str) -> None:
    with pytest.raises(OpenCrvsRefusal, match=reason):
        events.event_document({**testdata, **change})


def test_declaration_of_countryconfig_testdata(testdata: dict[str, Any]) -> None:
    state = _state(testdata)
    assert state["child.name"] == {"firstname": "Ace", "surname": "Portgas D.", "middlename": ""}
    assert "child.dob" not in state


def test_declaration_merges_accepted_actions_in_order(notify_max: dict[str, Any]) -> None:
    state = _state(notify_max)
    # NOTIFY gave surname + firstname, the registrar's VALIDATE added the middle name
    assert state["child.name"] == {"firstname": "Anh", "surname": "Nguyễn",
                                   "middlename": "Thị Minh"}
    assert state["child.gender"] == "male" and state["child.dob"] == "2024-02-02"
    assert "town" not in state["mother.address"]  # null dropped as deepDropNulls does


def test_requested_and_rejected_actions_are_not_merged(testdata: dict[str, Any]) -> None:
    testdata["actions"] += [
        _action("DECLARE", "Requested", "2025-08-21T00:00:00.000Z", {"child.dob": "2025-01-01"}),
        _action("VALIDATE", "Rejected", "2025-08-21T00:00:01.000Z", {"child.dob": "2025-01-02"})]
    assert "child.dob" not in _state(testdata)


def test_registrars_edits_on_the_register_action_are_merged_last(
        testdata: dict[str, Any]) -> None:
    testdata["actions"][-1]["declaration"] = {"child.name": {"firstname": "Luffy"}}
    assert _state(testdata)["child.name"] == {"firstname": "Luffy", "surname": "Portgas D.",
                                              "middlename": ""}


def test_later_null_removes_a_value_and_arrays_replace() -> None:
    event = {"id": "e", "type": "birth", "trackingId": "T", "actions": [
        _action("DECLARE", "Accepted", "2025-01-01T00:00:00Z",
                {"a": "x", "list": [1, 2, 3], "obj": {"k": 1, "l": 2}}),
        _action("VALIDATE", "Accepted", "2025-01-02T00:00:00Z",
                {"a": None, "list": [9], "obj": {"l": None, "m": 3}}),
        _action("REGISTER", "Requested", "2025-01-03T00:00:00Z", {})]}
    assert _state(event) == {"list": [9], "obj": {"k": 1, "m": 3}}


def test_actions_merge_in_created_at_order_not_list_order() -> None:
    event = {"id": "e", "type": "birth", "trackingId": "T", "actions": [
        _action("VALIDATE", "Accepted", "2025-01-02T00:00:00Z", {"a": "later"}),
        _action("DECLARE", "Accepted", "2025-01-01T00:00:00Z", {"a": "earlier"}),
        _action("REGISTER", "Requested", "2025-01-03T00:00:00Z", {})]}
    assert _state(event) == {"a": "later"}


def test_print_and_correction_requests_are_excluded_approvals_applied() -> None:
    request = _action("REQUEST_CORRECTION", "Accepted", "2025-01-02T00:00:00Z", {"a": "fixed"})
    event = {"id": "e", "type": "birth", "trackingId": "T", "actions": [
        _action("DECLARE", "Accepted", "2025-01-01T00:00:00Z", {"a": "typo", "b": "x"}),
        request,
        _action("PRINT_CERTIFICATE", "Accepted", "2025-01-03T00:00:00Z", {"b": "printed"}),
        _action("APPROVE_CORRECTION", "Accepted", "2025-01-04T00:00:00Z", {},
                requestId=request["id"]),
        _action("REGISTER", "Requested", "2025-01-05T00:00:00Z", {})]}
    assert _state(event) == {"a": "fixed", "b": "x"}


def test_accepted_action_is_completed_with_its_requested_original() -> None:
    original = _action("DECLARE", "Requested", "2025-01-01T00:00:00Z", {"a": "1", "b": "2"})
    event = {"id": "e", "type": "birth", "trackingId": "T", "actions": [
        original,
        _action("DECLARE", "Accepted", "2025-01-01T00:00:01Z", {"b": "3"},
                originalActionId=original["id"]),
        _action("REGISTER", "Requested", "2025-01-05T00:00:00Z", {})]}
    assert _state(event) == {"a": "1", "b": "3"}


def test_registered_on_is_the_civil_date_in_vietnam(notify_max: dict[str, Any]) -> None:
    register = events.register_action(notify_max)
    assert register["createdAt"] == "2025-08-20T18:30:00.000Z"
    assert events.registered_on(register) == date(2025, 8, 21)


@pytest.mark.parametrize("created_at", [None, "2025-08-20", "2025-08-20T18:30:00", "yesterday"])
def test_register_date_without_offset_is_refused(created_at: object) -> None:
    with pytest.raises(OpenCrvsRefusal, match="createdAt"):
        events.registered_on({"createdAt": created_at})


# -- mapping ------------------------------------------------------------------------------

def _body(declaration: dict[str, Any]) -> dict[str, Any]:
    return to_issue_body(declaration, province_code="052", authority="loc", number="ev",
                         registered_on=date(2025, 8, 21))


def test_notify_max_maps_to_a_birth(notify_max: dict[str, Any]) -> None:
    body = _body(_state(notify_max))
    assert body["registration"] == {"authority": "loc", "number": "ev",
                                    "registered_on": "2025-08-21", "province_code": "052"}
    assert body["child"] == {
        "full_name": "Nguyễn Thị Minh Anh", "sex": "M", "date_of_birth": "2024-02-02",
        "nationality": "VN",
        # the pre-v1.9 flat address of the Postman body: its texts in the order sent
        "place_of_birth": "FAR, 5b607555-e83d-49f5-a681-d9a4776f70c5, "
                          "d71605e6-b20e-4b2e-a6ff-4cd2641fb0cb, My town, My area, "
                          "My street, 11, 10000"}
    assert body["father"] is None  # father.detailsNotAvailable
    assert body["mother"] == {"full_name": "Trần Thị Lan"}  # FAR: no alpha-2 nationality


def test_required_field_missing_is_refused_naming_it(testdata: dict[str, Any]) -> None:
    with pytest.raises(OpenCrvsRefusal, match=r"child\.gender is required"):
        _body(_state(testdata))


@pytest.mark.parametrize("gender", ["unknown", "MALE", None, 1])
def test_gender_other_than_male_or_female_is_refused(gender: object) -> None:
    declaration = {"child.name": {"firstname": "A", "surname": "B"}, "child.gender": gender,
                   "child.dob": "2025-01-01"}
    with pytest.raises(OpenCrvsRefusal, match="male or female"):
        _body(declaration)


@pytest.mark.parametrize("name", ["Nguyễn Anh", {"firstname": 1, "surname": "B"}])
def test_name_not_a_name_value_is_refused(name: object) -> None:
    with pytest.raises(OpenCrvsRefusal, match=r"child\.name must be a name"):
        _body({"child.name": name, "child.gender": "male", "child.dob": "2025-01-01"})


_CHILD = {"child.name": {"firstname": "Anh", "surname": "Lê"}, "child.gender": "female",
          "child.dob": "2025-01-01"}


def test_custom_fields_and_place_name_are_used() -> None:
    body = _body({**_CHILD, "child.homeTown": "Bình Định", "child.ethnicity": "Kinh",
                  "child.nationality": "VNM", "child.placeOfBirthName": "Bệnh viện Quy Nhơn",
                  "child.placeOfBirth": "HEALTH_FACILITY", "child.birthLocation": "f-1"})
    assert body["child"] == {"full_name": "Lê Anh", "sex": "F", "date_of_birth": "2025-01-01",
                             "home_town": "Bình Định", "ethnicity": "Kinh",
                             "nationality": "VN", "place_of_birth": "Bệnh viện Quy Nhơn"}


def test_health_facility_is_its_location_id() -> None:
    body = _body({**_CHILD, "child.placeOfBirth": "HEALTH_FACILITY",
                  "child.birthLocation": "aec39df4-6157-4ebf-bd5c-13c15bc52033"})
    assert body["child"]["place_of_birth"] == "aec39df4-6157-4ebf-bd5c-13c15bc52033"


def test_v1_9_address_street_details_first() -> None:
    body = _body({**_CHILD, "child.placeOfBirth": "OTHER", "child.birthLocation.other": {
        "country": "VNM", "addressType": "DOMESTIC",
        "administrativeArea": "afaead2b-7ef5-4adb-b4bf-3d2b8437c284",
        "streetLevelDetails": {"number": "12", "street": "Lê Lợi", "town": ""}}})
    assert body["child"]["place_of_birth"] == \
        "12, Lê Lợi, VNM, afaead2b-7ef5-4adb-b4bf-3d2b8437c284"


def test_parent_nid_is_the_pin_when_the_id_is_national() -> None:
    mother = {"mother.name": {"firstname": "Lan", "surname": "Trần", "middlename": "Thị"},
              "mother.idType": "NATIONAL_ID", "mother.nid": "052090012345",
              "mother.nationality": "VNM"}
    father = {"father.name": {"firstname": "Hùng", "surname": "Nguyễn"},
              "father.idType": "PASSPORT", "father.nid": "B1234567"}
    body = _body({**_CHILD, **mother, **father})
    assert body["mother"] == {"full_name": "Trần Thị Lan", "pin": "052090012345",
                              "nationality": "VN"}
    assert body["father"] == {"full_name": "Nguyễn Hùng"}


def test_messages_name_opencrvs_fields() -> None:
    assert opencrvs_message("date_of_birth must not be after registration.registered_on") == \
        "child.dob must not be after the REGISTER action's createdAt date"
    assert opencrvs_message("mother.pin: must be a well-formed PIN") == \
        "mother.nid: must be a well-formed PIN"

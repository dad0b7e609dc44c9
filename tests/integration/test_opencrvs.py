"""OpenCRVS REGISTER confirmation (`POST /integrations/opencrvs/v1/register`, contract 10):
real OpenCRVS event documents (tests/fixtures/opencrvs/SOURCES.md) in, a PIN out as OpenCRVS
core reads an action confirmation, idempotent on the event id."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.bodies import mother_pin
from tests.support.server import ServerThread

DbFn = Callable[..., list[Any]]
URL = "/integrations/opencrvs/v1/register"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "opencrvs"


def _event(name: str = "postman-notify-max-birth-register.json") -> dict[str, Any]:
    """A fixture with a new event id (the session database is shared by the tests) and a new
    child: the declared mother gets a national id (a PIN) derived from the event id, so the
    duplicate check (contract 9) does not take the fixture's child for the last test's."""
    event: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    event["id"] = str(uuid.uuid4())
    for action in event["actions"]:
        declaration = action.get("declaration") or {}
        if "mother.name" in declaration:
            declaration["mother.idType"] = "NATIONAL_ID"
            declaration["mother.nid"] = mother_pin("052", "opencrvs", event["id"])
    return event


def _reason(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"reason"} and isinstance(body["reason"], str), body
    for leak in ("Traceback", "asyncpg", "pydantic", "idservice."):
        assert leak not in body["reason"]
    reason: str = body["reason"]
    return reason


def test_postman_notify_max_birth_is_registered(registrar: httpx.Client,
                                                service_db: DbFn) -> None:
    """opencrvs-countryconfig v1.9.11 postman "Notify Event (Max)" as a REGISTER request."""
    event = _event()
    response = registrar.post(URL, json=event)
    assert response.status_code == 200, response.text
    body = response.json()
    pin = body["declaration"]["child.nid"]
    assert body == {"registrationNumber": "B7K2QX", "declaration": {"child.nid": pin}}
    assert pin.startswith("052224")  # Gia Lai (052 since 2025-07-01), male 20xx, 2024
    record = service_db("SELECT record FROM person WHERE pin = $1", pin)[0]["record"]
    assert record["registration"] == {
        "authority": "9e069dda-0d83-4f67-a4f2-9adbf5658e2e", "number": event["id"],
        "book": None, "registered_on": "2025-08-21", "province_code": "052"}
    assert record["child"]["full_name"] == "Nguyễn Thị Minh Anh"
    assert record["child"]["sex"] == "M" and record["child"]["date_of_birth"] == "2024-02-02"
    assert record["mother"] == {"full_name": "Trần Thị Lan",
                                "pin": mother_pin("052", "opencrvs", event["id"]),
                                "nationality": None}
    assert record["father"] is None
    events = service_db("SELECT action, outcome, details FROM audit_event WHERE pin = $1", pin)
    assert [(e["action"], e["outcome"], e["details"]) for e in events] == [
        ("pin.issue", "issued", {"registration": {"authority": record["registration"]
                                                  ["authority"], "number": event["id"],
                                                  "province_code": "052"}})]


def test_wrapped_event_and_resend_answer_the_same_pin(registrar: httpx.Client) -> None:
    event = _event()
    first = registrar.post(URL, json=event)
    again = registrar.post(URL, json={"event": event})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()


def test_register_retried_later_from_another_office_replays_the_pin(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    """The first answer was lost (timeout): OpenCRVS rejected nothing, and a registrar of
    another office registers the same event the next day. Still one PIN for the birth."""
    event = _event()
    first = registrar.post(URL, json=event)
    assert first.status_code == 200
    retry = copy.deepcopy(event)
    register = retry["actions"][-1]
    register.update(id=str(uuid.uuid4()), createdAt="2025-08-23T02:00:00.000Z",
                    createdAtLocation="11111111-2222-4333-8444-555555555555")
    again = registrar.post(URL, json=retry)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert service_db("SELECT count(*) FROM person WHERE registration_number = $1",
                      event["id"])[0][0] == 1


def test_countryconfig_testdata_without_gender_is_400_reason(registrar: httpx.Client,
                                                             service_db: DbFn) -> None:
    """opencrvs-countryconfig v1.9.11 testData.ts birthRegistrationEvent: no child.gender."""
    event = _event("countryconfig-testdata-birth-register.json")
    reason = _reason(registrar.post(URL, json=event), 400)
    assert "child.gender is required" in reason
    assert service_db("SELECT count(*) FROM external_registration WHERE external_id = $1",
                      event["id"])[0][0] == 0


def test_birth_after_registration_date_is_400_reason_naming_child_dob(
        registrar: httpx.Client) -> None:
    event = _event()
    event["actions"][2]["declaration"]["child.dob"] = "2025-08-22"
    reason = _reason(registrar.post(URL, json=event), 400)
    assert reason.startswith("child.dob: must not be after"), reason


def test_refused_event_can_be_registered_once_corrected(registrar: httpx.Client) -> None:
    event = _event()
    event["actions"][1]["declaration"]["child.gender"] = "unknown"
    _reason(registrar.post(URL, json=event), 400)
    event["actions"][1]["declaration"]["child.gender"] = "female"
    response = registrar.post(URL, json=event)
    assert response.status_code == 200, response.text
    assert response.json()["declaration"]["child.nid"][3] == "3"


def test_same_event_other_content_after_registration_is_400(registrar: httpx.Client) -> None:
    event = _event()
    assert registrar.post(URL, json=event).status_code == 200
    event["actions"][2]["declaration"]["child.name"]["middlename"] = "Văn"
    reason = _reason(registrar.post(URL, json=event), 400)
    assert "already used with other content" in reason


def test_register_action_without_location_is_400(registrar: httpx.Client) -> None:
    event = _event()
    event["actions"][-1]["createdAtLocation"] = None
    assert "createdAtLocation" in _reason(registrar.post(URL, json=event), 400)


@pytest.mark.parametrize(("content", "media"), [
    (b"{", "application/json"), (b"[]", "application/json"),
    (b'{"id": "x"}', "text/plain")], ids=["truncated", "array", "text-plain"])
def test_bad_body_is_400_reason(registrar: httpx.Client, content: bytes, media: str) -> None:
    _reason(registrar.post(URL, content=content, headers={"Content-Type": media}), 400)


def test_body_over_1_mib_is_400_reason(registrar: httpx.Client) -> None:
    event = _event()
    event["padding"] = "x" * (1024 * 1024)
    assert "larger than" in _reason(registrar.post(URL, json=event), 400)


def test_client_for_every_province_is_403_reason(client_token: Callable[..., str],
                                                  server: ServerThread) -> None:
    with server.client(client_token("*")) as national:
        assert "one province" in _reason(national.post(URL, json=_event()), 403)


def test_officer_is_403_and_anonymous_401_reason(officer: httpx.Client,
                                                 server: ServerThread) -> None:
    _reason(officer.post(URL, json=_event()), 403)
    with server.client() as anonymous:
        response = anonymous.post(URL, json=_event())
    _reason(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")

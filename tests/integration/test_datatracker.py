"""The Data Tracker usage API (contract section 11) over real HTTP, PostgreSQL and SoftHSM:
who may ask, what a usage is, ordering, paging, covert access, the citizen.report events.

The tracker server (tests/integration/conftest.py) has its own fresh database and SoftHSM
token and a clock the tests move; tokens are minted by its own HSM key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support.datatracker import (
    FIND,
    PROVINCE,
    TrackerEnv,
    adult,
    find,
    read,
    usage_headers,
    usages,
    years_before,
)


def reports(tracker: TrackerEnv, pin: str) -> list[Any]:
    return tracker.sql("SELECT outcome, details, actor_id FROM audit_event "
                       "WHERE action = 'citizen.report' AND pin = $1 ORDER BY id", pin)


# -- who may ask ---------------------------------------------------------------------------


def test_citizen_sees_an_officers_read_with_its_purpose_and_organisation(
        tracker: TrackerEnv, portal: httpx.Client, tracker_officer: httpx.Client) -> None:
    citizen = adult(tracker)
    assert read(tracker_officer, citizen, "Giải quyết hồ sơ kết hôn số 12/2026").status_code == 200
    tracker.flush()
    body = usages(portal, citizen)
    assert body["totalUsages"] == 2  # the issuance, then the read
    newest = body["usages"][0]
    assert newest["action"] == "Giải quyết hồ sơ kết hôn số 12/2026"
    assert (newest["receiverCode"], newest["receiverName"], newest["receiverSystem"]) == \
        ("H40.001", "UBND phường Hoàn Kiếm", "Phần mềm hộ tịch")
    assert newest["logtime"].endswith("Z") and isinstance(newest["auditIndex"], int)
    issued = body["usages"][1]
    assert issued["action"] == "Cấp số định danh cá nhân cho bạn"


def test_mother_and_father_named_on_a_minors_record_see_its_usages(
        tracker: TrackerEnv, portal: httpx.Client, tracker_officer: httpx.Client) -> None:
    mother, father = adult(tracker), adult(tracker)
    child = tracker.person(years_before(tracker.clock.today(), 5), mother=mother, father=father)
    read(tracker_officer, child, "Xác minh hồ sơ nhập học")
    tracker.flush()
    for parent in (mother, father):
        body = usages(portal, parent, child)
        assert body["usages"][0]["action"] == "Xác minh hồ sơ nhập học"
    relations = [r["details"]["relation"] for r in reports(tracker, child)]
    assert relations == ["mother", "father"]


def test_parent_not_named_on_the_record_is_forbidden_and_audited(
        tracker: TrackerEnv, portal: httpx.Client) -> None:
    mother, stranger = adult(tracker), adult(tracker)
    child = tracker.person(years_before(tracker.clock.today(), 5), mother=mother)
    response = find(portal, stranger, child)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert response.headers["content-type"] == "application/problem+json"
    assert [(r["outcome"], r["details"]["requester"]) for r in reports(tracker, child)] == \
        [("forbidden", stranger)]


def test_parent_is_refused_on_the_childs_18th_birthday(
        tracker: TrackerEnv, portal: httpx.Client) -> None:
    mother = adult(tracker)
    today = tracker.clock.today()
    eighteen_today = tracker.person(years_before(today, 18), mother=mother)
    eighteen_tomorrow = tracker.person(years_before(today, 18) + timedelta(days=1),
                                       mother=mother)
    assert find(portal, mother, eighteen_tomorrow).status_code == 200
    refused = find(portal, mother, eighteen_today)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert find(portal, eighteen_today, eighteen_today).status_code == 200


def test_unknown_subject_is_forbidden_not_not_found(tracker: TrackerEnv,
                                                    portal: httpx.Client) -> None:
    citizen = adult(tracker)
    response = find(portal, citizen, "001399999999")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


@pytest.mark.parametrize("header", [None, "", "001200000001", "EE38001085718", "VN0012",
                                    "vn001200000001", "VN" + "\uff10" * 12])
def test_missing_or_malformed_user_id_is_400(tracker: TrackerEnv, portal: httpx.Client,
                                             header: str | None) -> None:
    headers = {} if header is None else {"X-Road-UserId": header}
    response = portal.get(FIND, params={"userCode": "001200000001"},
                          headers={k: v.encode() for k, v in headers.items()})
    assert response.status_code == 400, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["code"] == "malformed_request" and body["field"] == "X-Road-UserId"


@pytest.mark.parametrize(("params", "field"), [
    ({"userCode": "12"}, "userCode"), ({"userCode": None}, "userCode"),
    ({"offset": "-1"}, "offset"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"), ({"periodStart": "2026-01-01"}, "periodStart"),
    ({"periodEnd": "2026-01-01T00:00:00"}, "periodEnd"),
    ({"periodStart": "2026-13-01T00:00:00Z"}, "periodStart"),
    ({"periodStart": "9999-12-31T23:59:59-23:59"}, "periodStart"),
    ({"periodStart": "2026-02-01T00:00:00Z", "periodEnd": "2026-01-01T00:00:00Z"},
     "periodStart"),
])
def test_bad_parameters_are_400_malformed_request(portal: httpx.Client,
                                                  params: dict[str, str | None],
                                                  field: str) -> None:
    citizen = "001200000001"
    sent = {k: v for k, v in {"userCode": citizen, **params}.items() if v is not None}
    response = portal.get(FIND, params=sent, headers=usage_headers(citizen))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_request"
    assert response.json()["field"] == field


def test_only_portals_ask(tracker: TrackerEnv, tracker_officer: httpx.Client) -> None:
    citizen = "001200000001"
    params, headers = {"userCode": citizen}, usage_headers(citizen)
    for path in (FIND, "/datatracker/v2/usagePeriod", "/datatracker/v2/heartbeat"):
        anonymous = httpx.get(f"{tracker.base_url}{path}", params=params, headers=headers)
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
        other = tracker_officer.get(path, params=params, headers=headers)
        assert other.status_code == 403 and other.json()["code"] == "forbidden"


def test_usage_period_and_heartbeat(portal: httpx.Client) -> None:
    period = portal.get("/datatracker/v2/usagePeriod")
    assert period.status_code == 200 and period.json()["periodStart"].endswith("Z")
    beat = portal.get("/datatracker/v2/heartbeat")
    assert beat.status_code == 200 and beat.json()["status"] == "OK"


# -- what a usage is -------------------------------------------------------------------------


def test_every_kind_of_access_is_a_usage_and_refusals_and_reports_are_not(
        tracker: TrackerEnv, portal: httpx.Client, tracker_officer: httpx.Client) -> None:
    citizen = tracker.person(years_before(tracker.clock.today(), 30),
                             full_name="Phạm Thị Usage Kind")
    assert read(tracker_officer, citizen, "đọc").status_code == 200
    found = tracker_officer.get("/v1/persons", params={"full_name": "Phạm Thị Usage Kind",
                                               "purpose": "tìm kiếm"})
    assert found.status_code == 200 and found.json()["count"] == 1
    verify = tracker.registrar.post("/v1/pins/verify", json={
        "pin": citizen, "full_name": "Phạm Thị Usage Kind",
        "date_of_birth": years_before(tracker.clock.today(), 30).isoformat()})
    assert verify.json() == {"match": True}
    corrected = tracker_officer.post(f"/v1/persons/{citizen}/corrections", json={
        "changes": {"place_of_birth": "Hà Nội"}, "reason": "sai nơi sinh"})
    assert corrected.status_code == 200, corrected.text
    # Not usages: an officer of another province refused, an auditor reading the log, an
    # unknown-PIN read, and the reports themselves.
    with tracker.operator(jurisdiction="079") as far:
        assert read(far, citizen, "tò mò").status_code == 403
    with tracker.operator(("auditor",), "*") as auditor:
        assert auditor.get("/v1/audit/events", params={"pin": citizen}).status_code == 200
    usages(portal, citizen)
    tracker.flush()
    body = usages(portal, citizen)
    actions = [u["action"] for u in body["usages"]]
    assert actions == [
        "Cải chính thông tin trong hồ sơ của bạn (lý do: sai nơi sinh)",
        "Đối chiếu họ tên và ngày sinh với số định danh cá nhân của bạn",
        "tìm kiếm", "đọc", "Cấp số định danh cá nhân cho bạn"]
    assert body["totalUsages"] == 5
    registrar_usage = body["usages"][1]
    assert registrar_usage["receiverCode"] == PROVINCE  # no --org-code: the jurisdiction
    assert registrar_usage["receiverName"] == "Phần mềm hộ tịch Hà Nội"  # its registered name
    assert registrar_usage["receiverSystem"].startswith("client-")  # its client id


def test_receiver_defaults_name_the_jurisdiction_never_the_officer(
        tracker: TrackerEnv, portal: httpx.Client) -> None:
    citizen = adult(tracker)
    with tracker.operator() as local, tracker.operator(jurisdiction="*") as central:
        read(local, citizen, "một")
        read(central, citizen, "hai")
    tracker.flush()
    first, second = usages(portal, citizen)["usages"][:2]
    assert (first["receiverCode"], first["receiverName"]) == \
        ("VN", "Cơ quan nhà nước cấp trung ương")
    assert (second["receiverCode"], second["receiverName"]) == \
        (PROVINCE, "Cơ quan nhà nước tại Hà Nội")
    assert second["receiverSystem"] == "Hệ thống cấp số định danh cá nhân"
    assert "Cán bộ" not in json.dumps([first, second], ensure_ascii=False)


def test_findusage_is_audited_and_never_listed(tracker: TrackerEnv,
                                               portal: httpx.Client) -> None:
    citizen = adult(tracker)
    for _ in range(3):
        usages(portal, citizen)
    tracker.flush()
    body = usages(portal, citizen, limit="5")
    assert body["totalUsages"] == 1  # the issuance only
    recorded = reports(tracker, citizen)
    assert len(recorded) == 4 and {r["outcome"] for r in recorded} == {"ok"}
    assert recorded[-1]["details"] == {"what": "usages", "channel": "api",
                                       "requester": citizen, "relation": "self",
                                       "offset": 0, "limit": 5, "total": 1, "count": 1}


# -- ordering, paging, totalUsages, period --------------------------------------------------


def test_newest_first_paging_and_total_independent_of_offset_and_limit(
        tracker: TrackerEnv, portal: httpx.Client, tracker_officer: httpx.Client) -> None:
    citizen = adult(tracker)
    for i in range(7):
        read(tracker_officer, citizen, f"lượt {i}")
    tracker.flush()
    everything = usages(portal, citizen)["usages"]
    assert [u["action"] for u in everything] == [f"lượt {i}" for i in reversed(range(7))] + \
        ["Cấp số định danh cá nhân cho bạn"]
    keys = [(u["logtime"], u["auditIndex"]) for u in everything]
    assert keys == sorted(keys, reverse=True)
    pages = [usages(portal, citizen, offset=str(o), limit="3") for o in (0, 3, 6, 9)]
    assert [p["totalUsages"] for p in pages] == [8, 8, 8, 8]
    assert [u for p in pages for u in p["usages"]] == everything
    assert pages[-1]["usages"] == []


def test_same_logtime_is_ordered_by_audit_index(
        tracker: TrackerEnv, portal: httpx.Client, owner_sql: Callable[..., list[Any]]) -> None:
    citizen = adult(tracker)
    # Two reads stamped with the same millisecond (as the owner may; the service cannot).
    owner_sql("INSERT INTO audit_event (at, actor_type, actor_id, action, pin, purpose, outcome)"
             " SELECT date_trunc('milliseconds', now()), 'operator', 'x', 'person.read', $1, "
             "'cùng lúc ' || g, 'found' FROM generate_series(1, 2) g", citizen)
    tracker.flush()
    first, second = usages(portal, citizen)["usages"][:2]
    assert first["logtime"] == second["logtime"]
    assert first["auditIndex"] > second["auditIndex"]


def test_period_bounds_are_inclusive(tracker: TrackerEnv, portal: httpx.Client,
                                     tracker_officer: httpx.Client) -> None:
    citizen = adult(tracker)
    read(tracker_officer, citizen, "trong kỳ")
    tracker.flush()
    newest = usages(portal, citizen)["usages"][0]
    at = newest["logtime"]
    exact = usages(portal, citizen, periodStart=at, periodEnd=at)
    assert [u["action"] for u in exact["usages"]] == ["trong kỳ"]
    assert exact["totalUsages"] == 1
    later = usages(portal, citizen, periodStart="2999-01-01T00:00:00+07:00")
    assert later == {"totalUsages": 0, "usages": []}


# -- covert access ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def investigator(tracker: TrackerEnv) -> Iterator[httpx.Client]:
    with tracker.operator(("officer", "investigator"), org_name="Cơ quan điều tra") as client:
        yield client


def test_covert_read_is_hidden_until_the_date_then_shown_with_its_legal_basis(
        tracker_clock: TrackerEnv, portal: httpx.Client, investigator: httpx.Client) -> None:
    tracker = tracker_clock
    citizen = adult(tracker)
    auditor = tracker.operator(("auditor",), "*")  # tokens minted before the clock moves
    tracker.clock.offset = timedelta(days=-10)  # tokens stay valid when the clock goes back
    until = tracker.clock.today() + timedelta(days=3)
    response = read(investigator, citizen, "Điều tra vụ án số 7",
                    hidden_until=until.isoformat(), legal_basis="Điều 88 BLTTHS 2015")
    assert response.status_code == 200, response.text
    tracker.flush()
    hidden = usages(portal, citizen)
    assert hidden["totalUsages"] == 1
    assert [u["action"] for u in hidden["usages"]] == ["Cấp số định danh cá nhân cho bạn"]
    with auditor:
        logged = auditor.get("/v1/audit/events", params={"pin": citizen,
                                                        "action": "person.read"}).json()
    (event,) = logged["events"]
    assert event["details"] == {"hidden_until": until.isoformat(),
                                "legal_basis": "Điều 88 BLTTHS 2015"}
    proof = portal.get("/datatracker/v2/proof", params={"auditIndex": event["index"]},
                       headers=usage_headers(citizen))
    assert proof.status_code == 404 and proof.json()["code"] == "not_found"

    tracker.clock.offset = timedelta(days=-10 + 3)  # the date itself: shown
    shown = usages(portal, citizen)
    assert shown["totalUsages"] == 2
    covert = shown["usages"][0]
    assert covert["action"] == "Điều tra vụ án số 7. Căn cứ pháp lý: Điều 88 BLTTHS 2015"
    assert covert["legalBasis"] == "Điều 88 BLTTHS 2015"
    assert covert["hiddenUntil"] == until.isoformat()
    assert covert["receiverName"] == "Cơ quan điều tra"


def test_covert_search_marks_every_returned_record(
        tracker: TrackerEnv, portal: httpx.Client, investigator: httpx.Client) -> None:
    citizen = tracker.person(years_before(tracker.clock.today(), 40),
                             full_name="Đoàn Văn Covert Search")
    until = tracker.clock.today() + timedelta(days=30)
    found = investigator.get("/v1/persons", params={
        "full_name": "Đoàn Văn Covert Search", "purpose": "truy tìm",
        "hidden_until": until.isoformat(), "legal_basis": "Quyết định 1/2026"})
    assert found.status_code == 200 and found.json()["count"] == 1
    tracker.flush()
    assert usages(portal, citizen)["totalUsages"] == 1
    rows = tracker.sql("SELECT details FROM audit_event WHERE action = 'person.search' "
                       "AND pin = $1", citizen)
    assert rows[0]["details"]["hidden_until"] == until.isoformat()


def test_hidden_until_from_a_non_investigator_is_forbidden_and_audited(
        tracker: TrackerEnv, tracker_officer: httpx.Client) -> None:
    citizen = adult(tracker)
    until = (tracker.clock.today() + timedelta(days=5)).isoformat()
    response = read(tracker_officer, citizen, "ẩn", hidden_until=until, legal_basis="không có")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    rows = tracker.sql("SELECT outcome, details FROM audit_event WHERE action = 'person.read' "
                       "AND pin = $1", citizen)
    assert [(r["outcome"], r["details"]) for r in rows] == \
        [("refused", {"code": "forbidden", "covert": True})]


@pytest.mark.parametrize(("days", "legal_basis", "field"), [
    (5, None, "legal_basis"), (5, "  ", "legal_basis"), (0, "Điều 1", "hidden_until"),
    (-1, "Điều 1", "hidden_until"), (366, "Điều 1", "hidden_until"),
    (None, "Điều 1", "legal_basis"),
])
def test_investigator_without_legal_basis_or_good_date_is_invalid_field(
        tracker: TrackerEnv, investigator: httpx.Client, days: int | None,
        legal_basis: str | None, field: str) -> None:
    citizen = adult(tracker)
    params: dict[str, str] = {}
    if days is not None:
        params["hidden_until"] = (tracker.clock.today() + timedelta(days=days)).isoformat()
    if legal_basis is not None:
        params["legal_basis"] = legal_basis
    response = read(investigator, citizen, "điều tra", **params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_field" and response.json()["field"] == field
    rows = tracker.sql("SELECT outcome FROM audit_event WHERE action = 'person.read' "
                       "AND pin = $1", citizen)
    assert [r["outcome"] for r in rows] == ["refused"]


def test_hidden_until_at_the_maximum_is_accepted(tracker: TrackerEnv,
                                                 investigator: httpx.Client) -> None:
    citizen = adult(tracker)
    until = tracker.clock.today() + timedelta(days=365)
    response = read(investigator, citizen, "điều tra", hidden_until=until.isoformat(),
                    legal_basis="Điều 88")
    assert response.status_code == 200, response.text


# -- the page link -----------------------------------------------------------------------------


def test_page_link_is_single_use_and_names_no_pin(tracker: TrackerEnv,
                                                  portal: httpx.Client) -> None:
    citizen = adult(tracker)
    link = portal.post("/datatracker/v2/pageLink", headers=usage_headers(citizen))
    assert link.status_code == 201, link.text
    url = link.json()["url"]
    assert url.startswith(f"{tracker.base_url}/citizen/usage?ticket=") and citizen not in url
    assert 0 < link.json()["expires_in"] <= 120
    first = httpx.get(url)
    assert first.status_code == 303 and first.headers["location"] == "/citizen/usage"
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/citizen" in cookie
    again = httpx.get(url)
    assert again.status_code == 401 and "idservice_citizen" not in again.headers.get(
        "set-cookie", "")
    with httpx.Client(cookies=first.cookies) as browser:
        page = browser.get(f"{tracker.base_url}/citizen/usage")
    assert page.status_code == 200 and "Cấp số định danh cá nhân cho bạn" in page.text
    assert "<script" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_page_link_for_someone_elses_record_is_forbidden(tracker: TrackerEnv,
                                                         portal: httpx.Client) -> None:
    citizen, other = adult(tracker), adult(tracker)
    response = portal.post("/datatracker/v2/pageLink", params={"userCode": other},
                           headers=usage_headers(citizen))
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_page_session_ends_with_the_portals_token(tracker: TrackerEnv) -> None:
    citizen = adult(tracker)
    with tracker.portal() as own_portal:
        url = own_portal.post("/datatracker/v2/pageLink",
                              headers=usage_headers(citizen)).json()["url"]
        opened = httpx.get(url)
        assert own_portal.post("/v1/auth/logout").status_code == 204
    with httpx.Client(cookies=opened.cookies) as browser:
        page = browser.get(f"{tracker.base_url}/citizen/usage")
    assert page.status_code == 401 and "Phiên xem đã kết thúc" in page.text

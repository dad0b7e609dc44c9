"""The auditor pages as auditors found them (issue 15, item 8), over real HTTP without a browser:
Vietnam time, newest first with previous / first / total, the Action list, the actor by name,
an inverted range explained, exports equal to the API's, readable details, a PIN's history
with the person's name, status and replacement. The browser flow is test_auditor_ui.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta

import httpx
import pytest

from idservice.web.formats import VIETNAM
from tests.support.bodies import issue_body
from tests.support.server import ServerThread


def _issue(registrar: httpx.Client, **kw: object) -> str:
    response = registrar.post("/v1/pins", json=issue_body("052", **kw))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def _wait_sequenced(service_db: Callable[..., list], pin: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if service_db("SELECT count(*) AS n FROM audit_entry WHERE pin = $1", pin)[0]["n"] >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} events of {pin} were not sequenced in time")


@pytest.fixture
def auditor(server: ServerThread, officer_token: Callable[..., str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60, cookies={
            "idservice_ui": officer_token("*", roles=("auditor",))}) as client:
        yield client


@pytest.fixture
def busy_pin(registrar: httpx.Client, officer: httpx.Client,
             service_db: Callable[..., list]) -> str:
    """A PIN with 1 issuance and 4 reads (5 events), sequenced."""
    pin = _issue(registrar)
    for i in range(4):
        assert officer.get(f"/v1/persons/{pin}", params={"purpose": f"p{i}"}).status_code == 200
    _wait_sequenced(service_db, pin, 5)
    return pin


def _indexes(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td class="num">([0-9]+)</td>', html)]


def test_events_newest_first_with_previous_first_and_total(auditor: httpx.Client,
                                                           busy_pin: str) -> None:
    page = auditor.get("/ui/events", params={"pin": busy_pin, "action": "person.read",
                                             "limit": "3"})
    assert page.status_code == 200, page.text
    first = _indexes(page.text)
    assert len(first) == 3 and first == sorted(first, reverse=True)
    assert "3 sự kiện trên trang này, trong tổng số 4, mới nhất trước" in page.text
    assert 'id="page-newer"' not in page.text and 'id="page-first"' not in page.text
    older = re.search(r'id="page-older" rel="next" href="([^"]+)"', page.text)
    assert older is not None
    second = auditor.get(older.group(1).replace("&amp;", "&"))
    rest = _indexes(second.text)
    assert len(rest) == 1 and rest[0] < min(first)
    assert 'id="page-older"' not in second.text
    newer = re.search(r'id="page-newer" rel="prev" href="([^"]+)"', second.text)
    assert newer is not None and 'id="page-first"' in second.text
    back = auditor.get(newer.group(1).replace("&amp;", "&"))
    assert _indexes(back.text) == first


def test_times_are_shown_and_filtered_in_vietnam_time(auditor: httpx.Client,
                                                      busy_pin: str,
                                                      service_db: Callable[..., list]) -> None:
    at = service_db("SELECT at FROM audit_entry WHERE pin = $1 AND action = 'pin.issue'",
                    busy_pin)[0]["at"]
    local = at.astimezone(VIETNAM)
    page = auditor.get("/ui/events", params={"pin": busy_pin, "action": "pin.issue"})
    assert local.strftime("%d/%m/%Y %H:%M") in page.text
    assert "Từ (giờ Việt Nam)" in page.text
    # A filter typed in Vietnam time: from one minute after the issuance finds nothing.
    after = (local + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    before = (local - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert _indexes(auditor.get("/ui/events", params={
        "pin": busy_pin, "action": "pin.issue", "since": after}).text) == []
    assert len(_indexes(auditor.get("/ui/events", params={
        "pin": busy_pin, "action": "pin.issue", "since": before}).text)) == 1
    # The end one minute after, typed in Vietnam time, includes it; the same clock time
    # read as UTC would be 7 hours later, so "until" the UTC clock reading (7 hours earlier
    # in Vietnam time) excludes it: the filter is not read as UTC.
    until_local = (local + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    until_utc = (at.astimezone(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert len(_indexes(auditor.get("/ui/events", params={
        "pin": busy_pin, "action": "pin.issue", "until": until_local}).text)) == 1
    assert _indexes(auditor.get("/ui/events", params={
        "pin": busy_pin, "action": "pin.issue", "until": until_utc}).text) == []


def test_inverted_range_says_why(auditor: httpx.Client) -> None:
    page = auditor.get("/ui/events", params={"since": "2026-12-05T10:00",
                                             "until": "2026-12-04T10:00"})
    assert page.status_code == 422
    assert "nằm sau thời điểm kết thúc" in page.text and "05/12/2026 10:00" in page.text


def test_action_filter_is_a_list(auditor: httpx.Client) -> None:
    page = auditor.get("/ui/events")
    select = re.search(r'<select id="f-action" name="action">(.*?)</select>', page.text, re.S)
    assert select is not None
    options = re.findall(r'<option value="([^"]*)"', select.group(1))
    assert options[0] == "" and {"person.read", "pin.issue", "audit.read"} <= set(options)


def test_actor_filter_by_name(auditor: httpx.Client, registrar: httpx.Client,
                              server: ServerThread, officer_token: Callable[..., str],
                              service_db: Callable[..., list],
                              admin_db: Callable[..., list]) -> None:
    pin = _issue(registrar)
    token = officer_token("052")
    operator_id = server.services.verifier.verify(token).id
    admin_db("UPDATE operator SET name = 'Đặng Thị Tên Riêng' WHERE id = $1", operator_id)
    with server.client(token) as named:
        assert named.get(f"/v1/persons/{pin}", params={"purpose": "x"}).status_code == 200
    _wait_sequenced(service_db, pin, 2)
    page = auditor.get("/ui/events", params={"actor": "dang thi ten rieng", "pin": pin})
    assert page.status_code == 200
    assert len(_indexes(page.text)) == 1 and "Đặng Thị Tên Riêng" in page.text


def test_export_buttons_download_what_the_api_sends(auditor: httpx.Client, busy_pin: str,
                                                    server: ServerThread,
                                                    officer_token: Callable[..., str]) -> None:
    page = auditor.get("/ui/events", params={"pin": busy_pin, "action": "person.read"})
    links = dict(re.findall(r'id="export-(csv|ndjson)" href="([^"]+)"', page.text))
    assert set(links) == {"csv", "ndjson"}
    api_token = officer_token("*", roles=("auditor",))
    for fmt, link in links.items():
        ui_file = auditor.get(link.replace("&amp;", "&"))
        assert ui_file.status_code == 200
        assert ui_file.headers["content-disposition"].startswith("attachment")
        api_file = httpx.get(f"{server.base_url}/v1/audit/export", headers={
            "Authorization": f"Bearer {api_token}"}, params={
            "pin": busy_pin, "action": "person.read", "format": fmt})
        assert ui_file.content == api_file.content
        if fmt == "csv":
            assert ui_file.content.startswith("\ufeff".encode())
            assert ui_file.content.count(b"\r\n") == 5  # header + 4 reads


def test_details_are_expandable(auditor: httpx.Client, busy_pin: str) -> None:
    page = auditor.get("/ui/events", params={"pin": busy_pin})
    assert "<details><summary>" in page.text and "<pre>" in page.text


def test_pin_history_shows_name_status_and_replacement(
    auditor: httpx.Client, registrar: httpx.Client, officer: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar, full_name="Lý Thị Được Thay", sex="F")
    corrected = officer.post(f"/v1/persons/{pin}/corrections",
                             json={"changes": {"sex": "M"}, "reason": "nhầm"})
    assert corrected.status_code == 200, corrected.text
    new_pin = corrected.json()["pin"]
    page = auditor.get(f"/ui/pins/{pin}")
    assert page.status_code == 200
    assert "Lý Thị Được Thay" in page.text and "Đã hủy" in page.text
    assert f'id="pin-replaced-by" href="/ui/pins/{new_pin}"' in page.text
    new = auditor.get(f"/ui/pins/{new_pin}")
    assert f'href="/ui/pins/{pin}"' in new.text and "Đang hiệu lực" in new.text
    summary = service_db("SELECT details FROM audit_event WHERE action = 'audit.read' AND "
                         "pin = $1 AND details->>'what' = 'person_summary'", pin)
    assert summary  # the name was read as an audited auditor read
    bad = auditor.get("/ui/pins/12ab")
    assert bad.status_code == 422 and "12 chữ số" in bad.text
    assert 'href="/ui/events"' in bad.text


def test_header_search_box_opens_a_pin(auditor: httpx.Client) -> None:
    response = auditor.get("/ui/pins", params={"pin": " 052 3 24 000001 "})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/pins/052324000001"


def test_newest_first_cursor_out_of_range_is_explained(auditor: httpx.Client) -> None:
    page = auditor.get("/ui/events", params={"before": "x1"})
    assert page.status_code == 422 and "Liên kết trang này đã cũ" in page.text

"""The officers' pages over real HTTP, without a browser (issue 15, items 1-3, 5, 7): the session
server, officer tokens minted by its own HSM key (the `officer_token` fixture) put in the UI
cookie exactly as `POST /ui/session` puts them. These are the crafted requests a browser would
never send: no purpose, a forged purpose cookie, another province's PIN in the address, a
form post from elsewhere. The browser flows are tests/integration/test_officer_ui.py.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.bodies import issue_body
from tests.support.server import ServerThread

PURPOSE = {"purpose": "civil_status", "purpose_detail": "HS-42/2026"}
PURPOSE_TEXT = "Giải quyết hồ sơ hộ tịch (đăng ký, thay đổi, trích lục) — HS-42/2026"
REQUIRED_VI = "Mục đích truy cập là bắt buộc"


def _issue(registrar: httpx.Client, province: str = "052", **kw: object) -> str:
    response = registrar.post("/v1/pins", json=issue_body(province, **kw))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def _events(service_db: Callable[..., list], action: str, pin: str) -> list:
    return service_db("SELECT * FROM audit_event WHERE action = $1 AND pin = $2 ORDER BY id",
                      action, pin)


@pytest.fixture
def ui(server: ServerThread, officer_token: Callable[..., str]) -> Iterator[httpx.Client]:
    """A browser-less UI session of an officer of 052."""
    with httpx.Client(base_url=server.base_url, timeout=60,
                      cookies={"idservice_ui": officer_token("052")}) as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


# -- the purpose cannot be skipped -------------------------------------------------------------


def test_record_without_purpose_shows_purpose_form_and_reads_nothing(
    ui: httpx.Client, registrar: httpx.Client, service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar, full_name="Phạm Văn Không Mục Đích")
    for query in ("", "?purpose=", "?purpose=other&purpose_detail=", "?purpose=nonsense"):
        response = ui.get(f"/ui/persons/{pin}{query}")
        assert response.status_code in (400, 422), (query, response.status_code)
        assert response.headers["content-type"].startswith("text/html")
        assert "Phạm Văn Không Mục Đích" not in response.text
        assert 'name="purpose"' in response.text  # the purpose form instead
    assert REQUIRED_VI in ui.get(f"/ui/persons/{pin}").text
    assert _events(service_db, "person.read", pin) == []


def test_search_without_purpose_searches_nothing(
    ui: httpx.Client, registrar: httpx.Client, service_db: Callable[..., list],
) -> None:
    _issue(registrar, full_name="Đỗ Thị Tìm Kiếm", dob="2024-03-02")
    before = len(service_db("SELECT 1 FROM audit_event WHERE action = 'person.search'"))
    response = ui.get("/ui/persons", params={"search": "1", "full_name": "Đỗ Thị Tìm Kiếm"})
    assert response.status_code == 400
    assert REQUIRED_VI in response.text
    assert 'value="Đỗ Thị Tìm Kiếm"' in response.text  # the typed search is kept
    assert "/ui/persons/052" not in response.text
    after = len(service_db("SELECT 1 FROM audit_event WHERE action = 'person.search'"))
    assert after == before


def test_forged_purpose_cookie_is_ignored(
    ui: httpx.Client, server: ServerThread, officer_token: Callable[..., str],
    registrar: httpx.Client, service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar)
    # A purpose stated in another session: its cookie is bound to that session's token.
    with httpx.Client(base_url=server.base_url, timeout=60,
                      cookies={"idservice_ui": officer_token("052")}) as other:
        stated = other.get(f"/ui/persons/{pin}", params=PURPOSE)
        assert stated.status_code == 200
        cookie = stated.cookies["idservice_purpose"]
    ui.cookies.set("idservice_purpose", cookie, path="/ui")
    assert ui.get(f"/ui/persons/{pin}").status_code == 400
    ui.cookies.set("idservice_purpose", "aGVsbG8.bm90LWEtbWFj", path="/ui")  # hand-written
    assert ui.get(f"/ui/persons/{pin}").status_code == 400
    assert len(_events(service_db, "person.read", pin)) == 1  # only the other session's read


def test_stated_purpose_is_recorded_and_remembered_for_the_session(
    ui: httpx.Client, registrar: httpx.Client, service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar, full_name="Vũ Thị Có Mục Đích")
    first = ui.get(f"/ui/persons/{pin}", params=PURPOSE)
    assert first.status_code == 200, first.text
    assert "Vũ Thị Có Mục Đích" in first.text and PURPOSE_TEXT in first.text
    cookie = first.headers["set-cookie"].lower()
    assert "idservice_purpose=" in cookie and "httponly" in cookie and "path=/ui" in cookie
    again = ui.get(f"/ui/persons/{pin}")  # no purpose in the request: the session's
    assert again.status_code == 200
    reads = _events(service_db, "person.read", pin)
    assert [r["purpose"] for r in reads] == [PURPOSE_TEXT, PURPOSE_TEXT]
    history = _events(service_db, "person.history", pin)
    assert len(history) == 2 and history[0]["purpose"] == PURPOSE_TEXT


def test_correction_post_without_session_purpose_changes_nothing(
    ui: httpx.Client, server: ServerThread, registrar: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar)
    page = ui.get("/ui/persons")
    response = ui.post(f"/ui/persons/{pin}/correct/name",
                       data={"csrf": _csrf(page.text), "full_name": "Tên Mới",
                             "reason": "sai chính tả"}, headers={"Origin": server.base_url})
    assert response.status_code == 400 and REQUIRED_VI in response.text
    assert _events(service_db, "person.correct", pin) == []


# -- jurisdiction and bad addresses ------------------------------------------------------------


def test_other_province_record_by_edited_address_is_refused_html(
    ui: httpx.Client, client_token: Callable[..., str], server: ServerThread,
    service_db: Callable[..., list],
) -> None:
    with server.client(client_token("001")) as hanoi:
        pin = _issue(hanoi, "001", full_name="Hoàng Văn Hà Nội")
    for path in (f"/ui/persons/{pin}", f"/ui/persons/{pin}/notice",
                 f"/ui/persons/{pin}/correct/name"):
        response = ui.get(path, params=PURPOSE)
        assert response.status_code == 403, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Hoàng Văn Hà Nội" not in response.text
        assert "ngoài địa bàn của bạn" in response.text
    refused = _events(service_db, "person.read", pin)
    assert refused and all((r["outcome"], r["details"]["code"]) == ("refused", "forbidden")
                           for r in refused), refused


def test_bad_pin_and_unknown_address_are_html_pages_with_a_way_back(ui: httpx.Client) -> None:
    bad = ui.get("/ui/persons/12ab", params=PURPOSE)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert "12 chữ số" in bad.text and 'href="/ui/persons"' in bad.text
    missing = ui.get("/ui/nope")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "Không tìm thấy trang" in missing.text and 'href="/ui/' in missing.text
    unknown = ui.get("/ui/persons/052399999871", params=PURPOSE)
    assert unknown.status_code == 404 and "Không có công dân nào" in unknown.text


def test_officer_at_auditor_page_gets_a_clear_message(ui: httpx.Client) -> None:
    response = ui.get("/ui/events")
    assert response.status_code == 403
    assert "Trang này dành cho kiểm toán viên" in response.text
    assert "requires role" not in response.text
    assert 'href="/ui/persons"' in response.text


def test_auditor_at_officer_page_gets_a_clear_message(
    server: ServerThread, officer_token: Callable[..., str],
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60, cookies={
            "idservice_ui": officer_token("*", roles=("auditor",))}) as auditor:
        response = auditor.get("/ui/persons")
        assert response.status_code == 403 and "Trang này dành cho cán bộ" in response.text
        root = auditor.get("/ui/")
        assert root.status_code == 303 and root.headers["location"] == "/ui/events"


def test_client_token_gets_no_session(server: ServerThread,
                                      client_token: Callable[..., str]) -> None:
    response = httpx.post(f"{server.base_url}/ui/session",
                          json={"access_token": client_token("052")},
                          headers={"Origin": server.base_url})
    assert response.status_code == 403 and "set-cookie" not in response.headers


# -- session expiry keeps the typed search -----------------------------------------------------


def test_ended_session_goes_to_login_with_the_search_in_next(server: ServerThread) -> None:
    params = {"search": "1", "full_name": "Nguyễn Thị Hạnh", "date_of_birth": "05/01/2026",
              **PURPOSE}
    with httpx.Client(base_url=server.base_url, timeout=60,
                      cookies={"idservice_ui": "expired.or.bogus"}) as gone:
        response = gone.get("/ui/persons", params=params)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/ui/login"
    back = parse_qs(location.query)["next"][0]
    assert back.startswith("/ui/persons?")
    assert parse_qs(urlsplit(back).query) == {k: [v] for k, v in params.items()}
    login = httpx.get(f"{server.base_url}{response.headers['location']}")
    shown = re.search(r'data-next="([^"]+)"', login.text)
    assert shown is not None and html.unescape(shown.group(1)) == back


def test_login_next_refuses_other_sites(server: ServerThread) -> None:
    for evil in ("https://evil.example/", "//evil.example/ui/", "/\\evil.example", "/v1/pins"):
        page = httpx.get(f"{server.base_url}/ui/login", params={"next": evil})
        assert 'data-next="/ui/"' in page.text, evil


# -- language ----------------------------------------------------------------------------------


def test_language_switch_is_remembered_in_a_cookie(ui: httpx.Client) -> None:
    assert "Tra cứu công dân" in ui.get("/ui/persons").text  # Vietnamese by default
    switched = ui.get("/ui/lang/en", params={"next": "/ui/persons?pin=1"})
    assert switched.status_code == 303 and switched.headers["location"] == "/ui/persons?pin=1"
    assert ui.cookies.get("idservice_lang") == "en"
    page = ui.get("/ui/persons")
    assert "Find a person" in page.text and '<html lang="en">' in page.text
    assert ui.get("/ui/lang/en", params={"next": "https://evil.example"}).headers[
        "location"] == "/ui/"
    ui.get("/ui/lang/vi")
    assert '<html lang="vi">' in ui.get("/ui/persons").text


# -- search, record, corrections ---------------------------------------------------------------


def test_search_by_name_and_date_shows_only_own_province(
    ui: httpx.Client, registrar: httpx.Client, client_token: Callable[..., str],
    server: ServerThread, service_db: Callable[..., list],
) -> None:
    here = _issue(registrar, full_name="Trương Thị Trùng Tên", dob="2024-02-29")
    with server.client(client_token("001")) as hanoi:
        there = _issue(hanoi, "001", full_name="Trương Thị Trùng Tên", dob="2024-02-29")
    response = ui.get("/ui/persons", params={"search": "1", "full_name": "truong thi trung ten",
                                             "date_of_birth": "29/02/2024", **PURPOSE})
    assert response.status_code == 200, response.text
    assert f"/ui/persons/{here}" in response.text and there not in response.text
    assert "29/02/2024" in response.text
    searched = _events(service_db, "person.search", here)
    assert searched and searched[-1]["purpose"] == PURPOSE_TEXT
    by_pin = ui.get("/ui/persons", params={"search": "1", "pin": f" {here[:3]} {here[3:]} "})
    assert by_pin.status_code == 303 and by_pin.headers["location"] == f"/ui/persons/{here}"


def test_name_correction_reviews_then_applies_with_the_same_pin(
    ui: httpx.Client, server: ServerThread, registrar: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar, full_name="Ngô Văn Sai")
    form = ui.get(f"/ui/persons/{pin}/correct/name", params=PURPOSE)
    assert form.status_code == 200 and 'value="Ngô Văn Sai"' in form.text
    origin = {"Origin": server.base_url}
    fields = {"csrf": _csrf(form.text), "full_name": "Ngô Văn Đúng", "other_names": ""}
    no_reason = ui.post(f"/ui/persons/{pin}/correct/name", data={**fields, "reason": " "},
                        headers=origin)
    assert no_reason.status_code == 422 and "Lý do điều chỉnh là bắt buộc" in no_reason.text
    unchanged = ui.post(f"/ui/persons/{pin}/correct/name",
                        data={**fields, "full_name": "Ngô Văn Sai", "reason": "x"},
                        headers=origin)
    assert unchanged.status_code == 422 and "Chưa có gì thay đổi" in unchanged.text
    review = ui.post(f"/ui/persons/{pin}/correct/name",
                     data={**fields, "reason": "sai chính tả"}, headers=origin)
    assert review.status_code == 200 and "Mã định danh giữ nguyên" in review.text
    assert _events(service_db, "person.correct", pin) == []  # nothing changed yet
    changes = re.search(r'name="changes" value="([^"]+)"', review.text)
    assert changes is not None
    done = ui.post(f"/ui/persons/{pin}/correct/name/confirm", headers=origin, data={
        "csrf": fields["csrf"], "changes": html.unescape(changes.group(1)),
        "reason": "sai chính tả"})
    assert json.loads(html.unescape(changes.group(1))) == {"full_name": "Ngô Văn Đúng"}
    assert done.status_code == 200, done.text
    assert "mã định danh không đổi" in done.text
    corrected = _events(service_db, "person.correct", pin)
    assert len(corrected) == 1 and corrected[0]["outcome"] == "corrected"
    record = ui.get(f"/ui/persons/{pin}")
    assert "Ngô Văn Đúng" in record.text and "sai chính tả" in record.text  # history


def test_sex_correction_warns_of_a_new_pin_then_reissues(
    ui: httpx.Client, server: ServerThread, registrar: httpx.Client,
) -> None:
    pin = _issue(registrar, sex="F")
    form = ui.get(f"/ui/persons/{pin}/correct/sex", params=PURPOSE)
    csrf = _csrf(form.text)
    origin = {"Origin": server.base_url}
    review = ui.post(f"/ui/persons/{pin}/correct/sex",
                     data={"csrf": csrf, "sex": "M", "reason": "nhầm giới tính"}, headers=origin)
    assert review.status_code == 200
    assert 'id="reissue-warning"' in review.text and "HỦY mã" in review.text
    done = ui.post(f"/ui/persons/{pin}/correct/sex/confirm", headers=origin, data={
        "csrf": csrf, "changes": '{"sex": "M"}', "reason": "nhầm giới tính"})
    assert done.status_code == 200, done.text
    new_pin = re.search(r'href="/ui/persons/([0-9]{12})"', done.text)
    assert new_pin is not None and new_pin.group(1) != pin
    old = ui.get(f"/ui/persons/{pin}")
    assert 'id="replaced-by"' in old.text and f"/ui/persons/{new_pin.group(1)}" in old.text
    new = ui.get(f"/ui/persons/{new_pin.group(1)}")
    assert f"/ui/persons/{pin}" in new.text  # "this PIN replaced ..."


def test_form_posts_need_our_origin_and_csrf(
    ui: httpx.Client, server: ServerThread, registrar: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    pin = _issue(registrar)
    csrf = _csrf(ui.get(f"/ui/persons/{pin}", params=PURPOSE).text)
    data = {"csrf": csrf, "changes": '{"full_name": "Kẻ Gian"}', "reason": "csrf"}
    for headers, body in (({"Origin": "http://evil.example"}, data), ({}, data),
                          ({"Origin": server.base_url}, {**data, "csrf": "forged"})):
        response = ui.post(f"/ui/persons/{pin}/correct/name/confirm", data=body,
                           headers=headers)
        assert response.status_code == 403
        assert "tải lại trang" in response.text
    assert _events(service_db, "person.correct", pin) == []


# -- a deceased person's record and undoing the death (issue 15 item 4a, contract 9) -----------

DEATH = {"registration": {"authority": "UBND xã Tân Lập", "number": "KT-17/2025",
                          "registered_on": "2025-01-10", "province_code": "052"},
         "date_of_death": "2025-01-05", "place_of_death": "Bệnh viện Đa khoa tỉnh"}


def _deceased(registrar: httpx.Client, name: str) -> str:
    pin = _issue(registrar, full_name=name, dob="2001-02-03", registered_on="2001-02-10")
    body = {**DEATH, "registration": {**DEATH["registration"], "number": f"KT-{pin}"}}
    response = registrar.post(f"/v1/persons/{pin}/death", json=body)
    assert response.status_code == 200, response.text
    return pin


def test_deceased_record_shows_the_death_registration_and_the_undo_link(
    ui: httpx.Client, registrar: httpx.Client,
) -> None:
    pin = _deceased(registrar, "Lý Văn Đã Mất")
    page = ui.get(f"/ui/persons/{pin}", params=PURPOSE)
    assert page.status_code == 200, page.text
    assert '<span class="status deceased">Đã mất</span>' in page.text
    death = page.text[page.text.index('id="death"'):]
    for shown in ("05/01/2025", "Bệnh viện Đa khoa tỉnh", "UBND xã Tân Lập", f"KT-{pin}",
                  "10/01/2025", 'id="death-province">052 '):
        assert shown in death, shown
    assert f'href="/ui/persons/{pin}/undo-death"' in death
    active = ui.get(f"/ui/persons/{_issue(registrar)}")
    assert 'id="death"' not in active.text and "/undo-death" not in active.text


def test_undo_death_needs_a_reason_and_a_confirmation_then_is_audited(
    ui: httpx.Client, server: ServerThread, registrar: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    pin = _deceased(registrar, "Mạc Thị Khai Nhầm")
    form = ui.get(f"/ui/persons/{pin}/undo-death", params=PURPOSE)
    assert form.status_code == 200 and 'id="f-reason"' in form.text
    origin, csrf = {"Origin": server.base_url}, _csrf(form.text)
    no_reason = ui.post(f"/ui/persons/{pin}/undo-death", data={"csrf": csrf, "reason": "  "},
                        headers=origin)
    assert no_reason.status_code == 422
    assert "Lý do là bắt buộc: hãy ghi rõ vì sao đăng ký khai tử này sai" in no_reason.text
    review = ui.post(f"/ui/persons/{pin}/undo-death",
                     data={"csrf": csrf, "reason": "Khai tử nhầm người"}, headers=origin)
    assert review.status_code == 200 and 'id="undo-warning"' in review.text
    assert "Hồ sơ sẽ trở lại trạng thái còn hiệu lực" in review.text
    assert _events(service_db, "person.correct", pin) == []  # nothing changed yet
    done = ui.post(f"/ui/persons/{pin}/undo-death/confirm", headers=origin,
                   data={"csrf": csrf, "reason": "Khai tử nhầm người"})
    assert done.status_code == 200, done.text
    assert "Đã hủy đăng ký khai tử" in done.text and "Việc tiếp theo" in done.text
    [event] = _events(service_db, "person.correct", pin)
    details = event["details"] if isinstance(event["details"], dict) else json.loads(
        event["details"])
    assert event["outcome"] == "corrected" and details["fields"] == ["status"]
    assert details["reason"] == "Khai tử nhầm người"
    assert details["before"]["death"]["registration"]["number"] == f"KT-{pin}"
    record = ui.get(f"/ui/persons/{pin}")
    assert '<span class="status active">' in record.text and 'id="death"' not in record.text
    assert "Khai tử nhầm người" in record.text  # the correction history
    again = ui.get(f"/ui/persons/{pin}/undo-death")
    assert again.status_code == 409 and "không được đăng ký là đã mất" in again.text


def test_undo_death_confirm_without_reason_or_csrf_changes_nothing(
    ui: httpx.Client, server: ServerThread, registrar: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    pin = _deceased(registrar, "Tạ Văn Vẫn Mất")
    csrf = _csrf(ui.get(f"/ui/persons/{pin}", params=PURPOSE).text)
    url = f"/ui/persons/{pin}/undo-death/confirm"
    no_reason = ui.post(url, data={"csrf": csrf, "reason": " "},
                        headers={"Origin": server.base_url})
    assert no_reason.status_code == 422 and "Lý do là bắt buộc" in no_reason.text
    for headers, body in (({"Origin": server.base_url}, {"reason": "x"}),
                          ({"Origin": server.base_url}, {"csrf": "forged", "reason": "x"}),
                          ({"Origin": "http://evil.example"}, {"csrf": csrf, "reason": "x"})):
        refused = ui.post(url, data=body, headers=headers)
        assert refused.status_code == 403 and "tải lại trang" in refused.text
    assert _events(service_db, "person.correct", pin) == []
    assert "status deceased" in ui.get(f"/ui/persons/{pin}").text


# -- the province administrator's reservations (issue 15 item 4b, contract 8) ------------------


def _reserve(client: httpx.Client, count: int = 2) -> dict:
    year = datetime.now(UTC).year
    response = client.post("/v1/reservations", json={
        "buckets": [{"sex": "M", "birth_year": year, "count": count}], "days": 30})
    assert response.status_code == 201, response.text
    body: dict = response.json()
    return body


@pytest.fixture
def admin_ui(server: ServerThread, officer_token: Callable[..., str]
             ) -> Callable[[str], httpx.Client]:
    def make(province: str = "052") -> httpx.Client:
        return httpx.Client(base_url=server.base_url, timeout=60, cookies={
            "idservice_ui": officer_token(province, roles=("admin",))})
    return make


def _release_events(service_db: Callable[..., list], rid: str) -> list[tuple[str, str | None]]:
    rows = service_db("SELECT outcome, details->>'code' AS code FROM audit_event "
                      "WHERE action = 'pin.release' AND details->>'reservation_id' = $1 "
                      "ORDER BY id", rid)
    return [(r["outcome"], r["code"]) for r in rows]


def test_admin_sees_own_province_reservations_only(
    admin_ui: Callable[[str], httpx.Client], registrar: httpx.Client,
    client_token: Callable[..., str], server: ServerThread,
) -> None:
    ours = _reserve(registrar, 3)
    with server.client(client_token("001")) as hanoi:
        theirs = _reserve(hanoi)
    with admin_ui("052") as admin:
        start = admin.get("/ui/")
        assert start.status_code == 303 and start.headers["location"] == "/ui/reservations"
        page = admin.get("/ui/reservations")
    assert page.status_code == 200, page.text
    assert "Mã dành trước ngoại tuyến" in page.text
    row = page.text[page.text.index(f'id="res-{ours["reservation_id"]}"'):]
    row = row[:row.index("</tr>")]
    assert ours["client_id"] in row
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)] == [0, 3, 0]
    assert f'/ui/reservations/{ours["reservation_id"]}/release' in row
    assert theirs["reservation_id"] not in page.text


def test_admin_releases_after_confirmation_with_csrf_audited(
    admin_ui: Callable[[str], httpx.Client], registrar: httpx.Client, server: ServerThread,
    service_db: Callable[..., list],
) -> None:
    rid = _reserve(registrar, 2)["reservation_id"]
    url = f"/ui/reservations/{rid}/release"
    with admin_ui("052") as admin:
        confirm = admin.get(url)
        assert confirm.status_code == 200 and 'id="release-warning"' in confirm.text
        csrf = _csrf(confirm.text)
        assert _release_events(service_db, rid) == []  # nothing released by looking
        for headers, body in (({"Origin": server.base_url}, {}),
                              ({"Origin": server.base_url}, {"csrf": "forged"}),
                              ({"Origin": "http://evil.example"}, {"csrf": csrf})):
            refused = admin.post(url, data=body, headers=headers)
            assert refused.status_code == 403 and "tải lại trang" in refused.text
        assert _release_events(service_db, rid) == []
        done = admin.post(url, data={"csrf": csrf}, headers={"Origin": server.base_url})
        assert done.status_code == 200, done.text
        assert 'id="released"' in done.text and "Việc tiếp theo" in done.text
        assert 'id="r-retired">2<' in done.text
    assert _release_events(service_db, rid) == [("released", None)]
    assert registrar.get(f"/v1/reservations/{rid}").json()["counts"] == {
        "reserved": 0, "issued": 0, "retired": 2}


def test_other_province_admin_is_refused_403_and_audited(
    admin_ui: Callable[[str], httpx.Client], registrar: httpx.Client, server: ServerThread,
    service_db: Callable[..., list],
) -> None:
    rid = _reserve(registrar)["reservation_id"]
    url = f"/ui/reservations/{rid}/release"
    with admin_ui("001") as other:
        page = other.get(url)
        assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
        assert "chỉ quản trị viên của tỉnh đó" in page.text
        csrf = _csrf(other.get("/ui/reservations").text)
        refused = other.post(url, data={"csrf": csrf}, headers={"Origin": server.base_url})
    assert refused.status_code == 403 and "chỉ quản trị viên của tỉnh đó" in refused.text
    assert _release_events(service_db, rid) == [("refused", "forbidden")]
    assert registrar.get(f"/v1/reservations/{rid}").json()["counts"]["reserved"] == 2


def test_officer_without_admin_role_cannot_see_or_release_reservations(
    ui: httpx.Client, registrar: httpx.Client, server: ServerThread,
    service_db: Callable[..., list],
) -> None:
    rid = _reserve(registrar)["reservation_id"]
    page = ui.get("/ui/reservations")
    assert page.status_code == 403 and "dành cho quản trị viên cấp tỉnh" in page.text
    assert rid not in page.text and 'href="/ui/reservations"' not in ui.get("/ui/persons").text
    csrf = _csrf(ui.get("/ui/persons").text)
    refused = ui.post(f"/ui/reservations/{rid}/release", data={"csrf": csrf},
                      headers={"Origin": server.base_url})
    assert refused.status_code == 403
    assert registrar.get(f"/v1/reservations/{rid}").json()["counts"]["reserved"] == 2

"""The citizen's page end to end (issue 14 item 5): headless Debian Chromium (Playwright) with
JavaScript switched off, against the tracker server (tests/integration/conftest.py).

The portal, server to server, asks for a page link with its token and the citizen's
X-Road-UserId; the browser follows it. A citizen sees an officer's read with its purpose; a
parent sees the child's; a covert read is absent, then present after its date (the app's
injected clock is moved: first back, to make the covert read, then forward to now), and each
entry's "Kiểm chứng" link shows its verified proof.

No skip: a missing /usr/bin/chromium fails the test (scripts/bootstrap.sh installs it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.datatracker import TrackerEnv, adult, read, usage_headers, years_before

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path("/tmp")


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/bootstrap.sh"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        yield browser
        browser.close()


def _open(browser: Browser, portal: httpx.Client, citizen: str,
          subject: str | None = None) -> tuple[BrowserContext, Page]:
    """What a portal does: ask for a link for its logged-in citizen, send the browser there."""
    params = {"userCode": subject} if subject else {}
    link = portal.post("/datatracker/v2/pageLink", params=params,
                       headers=usage_headers(citizen))
    assert link.status_code == 201, link.text
    context = browser.new_context(java_script_enabled=False, locale="vi-VN",
                                  viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(link.json()["url"])
    return context, page


def _rows(page: Page) -> list[str]:
    return [r.inner_text() for r in page.locator("table.usages tbody tr").all()]


def test_citizen_and_parent_see_usages_and_a_covert_read_appears_after_its_date(
        tracker_clock: TrackerEnv, portal: httpx.Client, tracker_officer: httpx.Client,
        browser: Browser) -> None:
    tracker = tracker_clock
    origin = tracker.base_url
    mother = adult(tracker)
    child = tracker.person(years_before(tracker.clock.today(), 7), mother=mother)
    assert read(tracker_officer, mother, "Xác nhận tình trạng hôn nhân").status_code == 200
    assert read(tracker_officer, child, "Đăng ký nhập học lớp 1").status_code == 200
    investigator = tracker.operator(("officer", "investigator"), org_name="Cơ quan điều tra")
    tracker.flush()

    # The citizen: an officer's read, with its purpose, organisation and Vietnam time.
    context, page = _open(browser, portal, mother)
    expect(page).to_have_url(f"{origin}/citizen/usage")  # the ticket left the address bar
    expect(page.locator("h1")).to_have_text("Ai đã sử dụng thông tin của bạn")
    rows = _rows(page)
    assert len(rows) == 2
    assert "Xác nhận tình trạng hôn nhân" in rows[0] and "UBND phường Hoàn Kiếm" in rows[0]
    assert "Mã cơ quan: H40.001" in rows[0] and "Phần mềm hộ tịch" in rows[0]
    when = page.locator("td.when").first.inner_text()
    assert len(when) == 16 and when[2] == when[5] == "/" and when[10] == " "  # dd/mm/yyyy HH:mm
    assert "Cấp số định danh cá nhân cho bạn" in rows[1]
    cookie = next(c for c in context.cookies() if c["name"] == "idservice_citizen")
    assert cookie["httpOnly"] and cookie["path"] == "/citizen"
    assert mother not in cookie["value"]
    page.screenshot(path=str(SCREENSHOTS / "citizen-usage.png"), full_page=True)

    # "Kiểm chứng": the entry's proof, verified against the log's key.
    page.locator("td.verify a").first.click()
    expect(page.locator("#proof-result")).to_contain_text("Đã kiểm chứng")
    expect(page.locator("#proof-action")).to_have_text("Xác nhận tình trạng hôn nhân")
    expect(page.locator("#proof-checkpoint")).to_contain_text("/idservice/audit")
    with page.expect_download() as download:
        page.click("#proof-download")
    proof = json.loads(Path(download.value.path()).read_text("utf-8"))
    assert proof["event"]["purpose"] == "Xác nhận tình trạng hôn nhân"
    page.screenshot(path=str(SCREENSHOTS / "citizen-proof.png"), full_page=True)
    context.close()

    # The mother sees her 7-year-old's record.
    context, page = _open(browser, portal, mother, child)
    expect(page.locator("h1")).to_have_text("Ai đã sử dụng thông tin của con bạn")
    assert "Đăng ký nhập học lớp 1" in _rows(page)[0]
    context.close()

    # A covert read: made with the clock 10 days back, hidden for 3 days from then.
    tracker.clock.offset = timedelta(days=-10)
    until = tracker.clock.today() + timedelta(days=3)
    covert = read(investigator, mother, "Xác minh nguồn gốc tài sản",
                  hidden_until=until.isoformat(), legal_basis="Điều 88 Bộ luật TTHS")
    assert covert.status_code == 200, covert.text
    tracker.flush()
    context, page = _open(browser, portal, mother)
    assert len(_rows(page)) == 2
    expect(page.locator("table.usages")).not_to_contain_text("Xác minh nguồn gốc tài sản")
    context.close()

    tracker.clock.offset = timedelta(0)  # now: 7 days after the date
    context, page = _open(browser, portal, mother)
    rows = _rows(page)
    assert len(rows) == 3
    assert "Xác minh nguồn gốc tài sản. Căn cứ pháp lý: Điều 88 Bộ luật TTHS" in rows[0]
    assert f"giữ kín đến ngày {until.strftime('%d/%m/%Y')}" in rows[0]
    assert "Cơ quan điều tra" in rows[0]
    page.screenshot(path=str(SCREENSHOTS / "citizen-usage-covert.png"), full_page=True)
    context.close()
    investigator.close()


def test_page_refuses_a_used_link_and_a_missing_session(tracker: TrackerEnv,
                                                        portal: httpx.Client,
                                                        browser: Browser) -> None:
    citizen = adult(tracker)
    link = portal.post("/datatracker/v2/pageLink", headers=usage_headers(citizen)).json()["url"]
    assert httpx.get(link).status_code == 303  # someone used it first
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    response = page.goto(link)
    assert response is not None and response.status == 401
    expect(page.locator("h1")).to_have_text("Phiên xem đã kết thúc")
    expect(page.locator("p.error")).to_contain_text("Cổng dịch vụ công")
    response = page.goto(f"{tracker.base_url}/citizen/usage")
    assert response is not None and response.status == 401
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    context.close()

"""The officers' application end to end (issue 15): headless Debian Chromium (Playwright)
against a real server and the real signing agent with SoftHSM "USB tokens"
(tests/support/ui_env.py). Each test is one task as an officer does it: find a person with a
purpose, read the record, correct it (keeping or replacing the PIN), print the PIN notice and
check its QR code offline; an edited address to another province, markup in every field,
keyboard only, a phone-width screen, an ended session; axe-core on every page in both
languages, with screenshots (docs/screens when IDSERVICE_SCREENSHOTS says so).

No skip: a missing /usr/bin/chromium or axe-core fails (scripts/bootstrap.sh installs them).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from idservice.persons.notice_token import verify_notice
from tests.support.bodies import issue_body
from tests.support.ui_env import UiEnv, axe_violations, check_page, login, screenshot

pytestmark = pytest.mark.slow

XSS = {
    "name": "<script>window.__pwned = 1</script>",
    "other": "<img src=x onerror=\"window.__pwned = 2\">",
    "place": "\"><svg onload=window.__pwned=3>",
    "town": "<b>in đậm</b>",
    "ethnicity": "<iframe src=javascript:alert(4)>",
    "authority": "UBND <a href=javascript:alert(5)>xã</a>",
    "number": "'><script>window.__pwned=6</script>",
    "parent": "<style>body{display:none}</style>Cha",
}
PURPOSE_DETAIL = "HS-42/2026"


@pytest.fixture(scope="module")
def people(ui_env: UiEnv) -> dict[str, str]:
    """Records to work on: a father and his child in 052, a record with markup in every text
    field, and a record of Hà Nội (001)."""
    father = issue_body("052", sex="M", dob="1990-05-01", registered_on="1990-05-10",
                        full_name="Nguyễn Văn Hùng")
    father["father"] = father["mother"] = None
    father_pin = ui_env.issue(father)
    child = issue_body("052", sex="F", dob="2024-03-02", registered_on="2024-03-10",
                       full_name="Nguyễn Thị Minh Ánh")
    child["father"]["pin"] = father_pin
    child["mother"] = {"full_name": "Trần Thị Lan", "pin": "052199999999", "nationality": "VN"}
    xss = issue_body("052", full_name=XSS["name"], other_names=[XSS["other"]],
                     authority=XSS["authority"], number=XSS["number"])
    xss["child"].update(place_of_birth=XSS["place"], home_town=XSS["town"],
                        ethnicity=XSS["ethnicity"])
    xss["registration"]["book"] = XSS["number"]
    xss["father"] = {"full_name": XSS["parent"], "pin": None, "nationality": "VN"}
    xss["mother"] = {"full_name": XSS["name"], "pin": None, "nationality": "VN"}
    return {"father": father_pin, "child": ui_env.issue(child), "xss": ui_env.issue(xss),
            "sex": ui_env.issue(issue_body("052", sex="F", full_name="Đinh Thị Đổi")),
            **{f"tour_{lang}": ui_env.issue(issue_body("052", full_name="Phan Thị Tham Quan"))
               for lang in ("vi", "en")},
            "hanoi": ui_env.issue(issue_body("001", full_name="Hoàng Văn Hà Nội"), "001")}


def _context(browser: Browser, width: int = 1280, height: int = 900, **kw: Any) -> BrowserContext:
    context = browser.new_context(viewport={"width": width, "height": height}, **kw)
    context.set_default_timeout(20_000)
    return context


def _state_purpose(page: Page, choice: str = "civil_status") -> None:
    page.check(f"#purpose-{choice}")
    page.fill("#purpose-detail", PURPOSE_DETAIL)


def _no_csp_errors(errors: list[str]) -> None:
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_officer_finds_reads_corrects_and_prints(ui_env: UiEnv, browser: Browser,
                                                 people: dict[str, str]) -> None:
    context = _context(browser, device_scale_factor=2)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    origin = ui_env.origin
    login(page, ui_env, "officer")
    expect(page).to_have_url(f"{origin}/ui/persons")
    expect(page.locator("html")).to_have_attribute("lang", "vi")

    # 1. Find a person: no purpose, no result; then with a purpose, by name and date of birth.
    page.fill("#full_name", "nguyen thi minh anh")
    page.fill("#date_of_birth", "02/03/2024")
    page.click("button[name=search]")
    expect(page.locator("p.error")).to_contain_text("Mục đích truy cập là bắt buộc")
    expect(page.locator("table.results")).to_have_count(0)
    expect(page.locator("#full_name")).to_have_value("nguyen thi minh anh")
    _state_purpose(page)
    page.click("button[name=search]")
    rows = page.locator("table.results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Nguyễn Thị Minh Ánh")
    expect(rows.first).to_contain_text("02/03/2024")
    expect(page.locator("#current-purpose")).to_contain_text(PURPOSE_DETAIL)

    # 2. The record: fields, the purpose stated, the father linked, the mother's PIN unknown.
    rows.first.locator("a.pin").click()
    expect(page).to_have_url(f"{origin}/ui/persons/{people['child']}")
    expect(page.locator("#person-name")).to_have_text("Nguyễn Thị Minh Ánh")
    expect(page.locator("#dob")).to_have_text("02/03/2024")
    expect(page.locator("#purpose-line")).to_contain_text(PURPOSE_DETAIL)
    expect(page.locator("#parent-father a.pin")).to_have_attribute(
        "href", f"/ui/persons/{people['father']}")
    expect(page.locator("#parent-mother a.pin")).to_have_count(0)
    expect(page.locator("#accesses")).to_have_count(0)  # not an auditor
    reads = ui_env.fetch("SELECT purpose FROM audit_event WHERE action = 'person.read' "
                         "AND pin = $1", people["child"])
    assert reads and all(PURPOSE_DETAIL in r["purpose"] for r in reads)

    # 3a. A name correction: form, reason required, review, confirm; the PIN stays.
    page.click("#correct-name")
    page.fill("#f-full_name", "Nguyễn Thị Minh Ánh Dương")
    page.click("form.correction button[type=submit]")
    expect(page.locator("#f-reason:invalid")).to_have_count(1)  # the browser asks first
    page.fill("#f-reason", "Sai chính tả khi đăng ký")
    page.click("form.correction button[type=submit]")
    expect(page.locator("#keep-pin")).to_be_visible()
    expect(page.locator("table.review")).to_contain_text("Nguyễn Thị Minh Ánh Dương")
    page.click("#confirm-button")
    expect(page.locator("#corrected-same-pin")).to_be_visible()
    page.click("a.button >> nth=0")
    expect(page.locator("#person-name")).to_have_text("Nguyễn Thị Minh Ánh Dương")
    expect(page.locator("table.history")).to_contain_text("Sai chính tả khi đăng ký")

    # 3b. A sex correction: the review says a new PIN replaces this one; then it does.
    page.goto(f"{origin}/ui/persons/{people['sex']}/correct/sex")
    page.check("#f-sex-M")
    page.fill("#f-reason", "Nhầm giới tính")
    page.click("form.correction button[type=submit]")
    expect(page.locator("#reissue-warning")).to_contain_text("HỦY mã")
    page.click("#confirm-button")
    expect(page.locator("#corrected-new-pin")).to_be_visible()
    page.click("a.button >> nth=0")
    new_pin = page.url.rsplit("/", 1)[1]
    assert new_pin != people["sex"] and new_pin[3] == "2"  # G: born 2000-2099, male
    expect(page.locator("#replaces a.pin")).to_have_attribute(
        "href", f"/ui/persons/{people['sex']}")
    page.goto(f"{origin}/ui/persons/{people['sex']}")
    expect(page.locator("#replaced-by a.pin")).to_have_attribute(
        "href", f"/ui/persons/{new_pin}")
    corrected = ui_env.fetch("SELECT outcome FROM audit_event WHERE action = 'person.correct' "
                             "AND pin = ANY($1::text[]) ORDER BY id",
                             [people["child"], people["sex"]])
    assert [r["outcome"] for r in corrected] == ["corrected", "reissued"]

    # 5. The printable notice: A5 print sheet; the QR code decodes to a notice that verifies
    # offline with the service's published keys.
    page.goto(f"{origin}/ui/persons/{people['father']}")
    page.click("#notice-link")
    expect(page.locator("#notice-pin")).to_have_text(
        f"{people['father'][:3]} {people['father'][3]} {people['father'][4:6]} "
        f"{people['father'][6:]}")
    expect(page.locator("#notice-name")).to_have_text("Nguyễn Văn Hùng")
    expect(page.locator("#notice-dob")).to_have_text("01/05/1990")
    png = page.locator(".qr svg").screenshot()
    decoded = [r.text for r in zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)]
    assert decoded == [page.locator("#notice-payload").input_value()]
    jwks = httpx.get(f"{origin}/.well-known/jwks.json").json()
    claims = verify_notice(decoded[0], jwks, issuer=origin)
    assert claims["pin"] == people["father"] and claims["name"] == "Nguyễn Văn Hùng"
    assert claims["dob"] == "1990-05-01"
    signed = ui_env.fetch("SELECT details FROM audit_event WHERE action = 'pin.notice' "
                          "AND pin = $1", people["father"])
    assert len(signed) == 1
    page.emulate_media(media="print")
    assert page.locator(".toolbar").is_hidden()
    pdf_size = page.pdf(format="A5")
    assert pdf_size.startswith(b"%PDF")
    page.emulate_media(media="screen")
    _no_csp_errors(errors)
    context.close()


def test_other_province_by_url_and_markup_in_every_field(ui_env: UiEnv, browser: Browser,
                                                         people: dict[str, str]) -> None:
    context = _context(browser)
    page = context.new_page()
    origin = ui_env.origin
    login(page, ui_env, "officer")
    # An officer of 052 edits the address to a record of Hà Nội (001).
    response = page.goto(f"{origin}/ui/persons/{people['hanoi']}?purpose=civil_status")
    assert response is not None and response.status == 403
    expect(page.locator("#error-message")).to_contain_text("ngoài địa bàn của bạn")
    expect(page.locator("body")).not_to_contain_text("Hoàng Văn Hà Nội")
    refused = ui_env.fetch("SELECT outcome, details->>'code' AS code FROM audit_event "
                           "WHERE action = 'person.read' AND pin = $1", people["hanoi"])
    assert [(r["outcome"], r["code"]) for r in refused] == [("refused", "forbidden")]
    # Markup in every text field renders as text: no element, no script run.
    page.goto(f"{origin}/ui/persons/{people['xss']}?purpose=civil_status")
    main = page.locator("main")
    for payload in XSS.values():
        expect(main).to_contain_text(payload)
    assert page.locator("main script, main img, main svg, main iframe, main b, main style, "
                        "main a[href^=javascript]").count() == 0
    page.goto(f"{origin}/ui/persons?search=1&full_name={XSS['name']}&purpose=civil_status")
    expect(page.locator("table.results")).to_contain_text(XSS["name"])
    page.goto(f"{origin}/ui/persons/{people['xss']}/notice")
    expect(page.locator("#notice-name")).to_have_text(XSS["name"])
    page.goto(f"{origin}/ui/persons/{people['xss']}/correct/father")
    expect(page.locator("#f-full_name")).to_have_value(XSS["parent"])
    assert page.evaluate("window.__pwned") is None
    context.close()


def test_keyboard_only_and_small_screens(ui_env: UiEnv, browser: Browser,
                                         people: dict[str, str]) -> None:
    origin = ui_env.origin
    context = _context(browser, 1024, 768)
    page = context.new_page()
    ui_env.use("officer")
    page.goto(f"{origin}/ui/login")
    _tab_to(page, "#login-button")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{origin}/ui/persons")
    _tab_to(page, "#purpose-civil_status")
    page.keyboard.press("Space")
    assert page.locator("#purpose-civil_status").is_checked()
    _tab_to(page, "#pin")
    page.keyboard.type(people["father"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{origin}/ui/persons/{people['father']}")
    _tab_to(page, "#notice-link")  # a link among many, reached with Tab, focus visible
    assert _overflow(page) == 0
    context.close()

    phone = _context(browser, 390, 844, is_mobile=True, has_touch=True)
    page = phone.new_page()
    login(page, ui_env, "officer")
    for path in ("/ui/persons", f"/ui/persons/{people['father']}?purpose=civil_status"):
        page.goto(origin + path)
        box = page.locator("header .who button").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        assert _overflow(page) == 0, path
    screenshot(page, "vi-phone-record")
    phone.close()


def _tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until `selector` has the focus; the focus must be visible (an outline)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)",
                         selector):
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("none", ""), f"{selector} has no visible focus"
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def _overflow(page: Page) -> int:
    """How far the page scrolls sideways (0: it fits the screen)."""
    width: int = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return max(0, width)


def test_ended_session_keeps_the_typed_search(ui_env: UiEnv, browser: Browser,
                                              people: dict[str, str]) -> None:
    context = _context(browser)
    page = context.new_page()
    login(page, ui_env, "officer")
    page.fill("#full_name", "Nguyễn Văn Hùng")
    page.fill("#date_of_birth", "01/05/1990")
    _state_purpose(page)
    context.clear_cookies()  # the session ends (expiry, revocation: the same for the page)
    page.click("button[name=search]")
    page.wait_for_url(lambda url: "/ui/login?next=" in url)
    login(page, ui_env, "officer", goto=False)
    expect(page.locator("#full_name")).to_have_value("Nguyễn Văn Hùng")
    expect(page.locator("#date_of_birth")).to_have_value("01/05/1990")
    expect(page.locator("table.results tbody tr")).to_have_count(1)
    context.close()


def test_every_officer_page_in_both_languages_passes_axe(ui_env: UiEnv, browser: Browser,
                                                         people: dict[str, str]) -> None:
    origin = ui_env.origin
    seen: dict[str, list[dict[str, Any]]] = {}
    for lang in ("vi", "en"):
        context = _context(browser, 1024, 768, locale="vi-VN" if lang == "vi" else "en-GB")
        page = context.new_page()
        page.goto(f"{origin}/ui/lang/{lang}?next=/ui/login")
        check_page(page, f"{lang}-login", seen)
        login(page, ui_env, "officer_auditor")
        page.goto(f"{origin}/ui/persons/{people['child']}")  # no purpose yet
        expect(page.locator("html")).to_have_attribute("lang", lang)
        check_page(page, f"{lang}-purpose-required", seen)
        page.goto(f"{origin}/ui/persons")
        check_page(page, f"{lang}-search", seen)
        _state_purpose(page)
        page.fill("#full_name", "Nguyễn Văn Hùng")
        page.click("button[name=search]")
        check_page(page, f"{lang}-search-results", seen)
        page.goto(f"{origin}/ui/persons/{people['child']}")
        expect(page.locator("#accesses")).to_be_visible()  # an auditor sees who read it
        check_page(page, f"{lang}-record", seen)
        page.goto(f"{origin}/ui/persons/{people['child']}/correct/father")
        check_page(page, f"{lang}-correct-father", seen)
        tour = people[f"tour_{lang}"]
        page.goto(f"{origin}/ui/persons/{tour}/correct/name")
        check_page(page, f"{lang}-correct-name", seen)
        page.fill("#f-full_name", "Phan Thị Tham Quan Mới")
        page.fill("#f-reason", "Sai chính tả")
        page.click("form.correction button[type=submit]")
        page.click("#confirm-button")
        check_page(page, f"{lang}-corrected", seen)
        page.goto(f"{origin}/ui/persons/{tour}/correct/birth")
        page.fill("#f-date_of_birth", "02/03/2023")
        page.fill("#f-reason", "Nhầm năm sinh")
        page.click("form.correction button[type=submit]")
        expect(page.locator("#reissue-warning")).to_be_visible()
        check_page(page, f"{lang}-correct-confirm", seen)
        page.click("#confirm-button")
        expect(page.locator("#corrected-new-pin")).to_be_visible()
        check_page(page, f"{lang}-corrected-new-pin", seen)
        page.goto(f"{origin}/ui/persons/{people['child']}/notice")
        check_page(page, f"{lang}-notice", seen)
        page.goto(f"{origin}/ui/persons/{people['hanoi']}")
        check_page(page, f"{lang}-error-jurisdiction", seen)
        page.goto(f"{origin}/ui/nope")
        check_page(page, f"{lang}-error-not-found", seen)
        context.close()
    assert {name: v for name, v in seen.items() if v} == {}
    assert len(seen) == 26


def test_axe_check_can_fail(browser: Browser) -> None:
    """The axe helper reports what it should: an unlabelled field and unreadable text."""
    page = browser.new_page()
    page.set_content('<html lang="vi"><head><title>x</title></head><body><main>'
                     '<input type="text"><p style="color:#ccc;background:#fff">mờ</p>'
                     '</main></body></html>')
    found = {v["id"] for v in axe_violations(page)}
    assert {"label", "color-contrast"} <= found
    page.close()


def _register_death(ui_env: UiEnv, pin: str, number: str) -> None:
    with ui_env.registrar() as registrar:
        response = registrar.post(f"/v1/persons/{pin}/death", json={
            "registration": {"authority": "UBND phường Quy Nhơn", "number": number,
                             "registered_on": "2025-03-12", "province_code": "052"},
            "date_of_death": "2025-03-10", "place_of_death": "Số 5 Lê Lợi, Quy Nhơn"})
    assert response.status_code == 200, response.text


def test_deceased_record_shows_the_death_and_an_officer_undoes_it(
    ui_env: UiEnv, browser: Browser,
) -> None:
    """Issue 15 item 4a: the death registration on the record, then undone with a reason and a
    confirmation, by keyboard; axe-core on each page in both languages; a phone-width record."""
    origin = ui_env.origin
    pins = {lang: ui_env.issue(issue_body("052", full_name="Lâm Văn Khai Nhầm", dob="1950-01-02",
                                          registered_on="1950-01-20")) for lang in ("vi", "en")}
    for lang, pin in pins.items():
        _register_death(ui_env, pin, f"KT-{lang}-{pin}")
    seen: dict[str, list[dict[str, Any]]] = {}
    for lang, pin in pins.items():
        context = _context(browser, 1024, 768)
        page = context.new_page()
        page.goto(f"{origin}/ui/lang/{lang}?next=/ui/login")
        login(page, ui_env, "officer", goto=False)
        page.goto(f"{origin}/ui/persons/{pin}?purpose=civil_status")
        badge = page.locator(".status-line .status.deceased")
        expect(badge).to_have_text("Đã mất" if lang == "vi" else "Deceased")
        expect(page.locator("#death-date")).to_have_text("10/03/2025")
        expect(page.locator("#death-place")).to_have_text("Số 5 Lê Lợi, Quy Nhơn")
        expect(page.locator("#death-authority")).to_have_text("UBND phường Quy Nhơn")
        expect(page.locator("#death-number")).to_have_text(f"KT-{lang}-{pin}")
        expect(page.locator("#death-registered-on")).to_have_text("12/03/2025")
        expect(page.locator("#death-province")).to_contain_text("052")
        check_page(page, f"{lang}-record-deceased", seen)
        _tab_to(page, "#undo-death-link")  # keyboard only from here
        page.keyboard.press("Enter")
        page.wait_for_url(f"{origin}/ui/persons/{pin}/undo-death")
        check_page(page, f"{lang}-undo-death", seen)
        _tab_to(page, "#undo-review")
        page.keyboard.press("Enter")
        expect(page.locator("#f-reason:invalid")).to_have_count(1)  # the reason is required
        _tab_to(page, "#f-reason")
        page.keyboard.type("Khai tử nhầm người, xem công văn 12/UBND")
        _tab_to(page, "#undo-review")
        page.keyboard.press("Enter")
        expect(page.locator("#undo-warning")).to_be_visible()
        check_page(page, f"{lang}-undo-death-confirm", seen)
        _tab_to(page, "#confirm-button")
        page.keyboard.press("Enter")
        expect(page.locator("#death-undone")).to_be_visible()
        check_page(page, f"{lang}-undo-death-done", seen)
        page.click("a.button >> nth=0")
        expect(page.locator(".status-line .status.active")).to_be_visible()
        expect(page.locator("#death")).to_have_count(0)
        expect(page.locator("table.history")).to_contain_text("công văn 12/UBND")
        context.close()
    undone = ui_env.fetch("SELECT pin, outcome, details->>'reason' AS reason FROM audit_event "
                          "WHERE action = 'person.correct' AND pin = ANY($1::text[])",
                          list(pins.values()))
    assert sorted((r["pin"], r["outcome"], r["reason"]) for r in undone) == sorted(
        (pin, "corrected", "Khai tử nhầm người, xem công văn 12/UBND") for pin in pins.values())
    assert {name: v for name, v in seen.items() if v} == {}

    phone_pin = ui_env.issue(issue_body("052", full_name="Lâm Thị Điện Thoại", dob="1950-01-02",
                                        registered_on="1950-01-20"))
    _register_death(ui_env, phone_pin, f"KT-phone-{phone_pin}")
    phone = _context(browser, 390, 844, is_mobile=True, has_touch=True)
    page = phone.new_page()
    login(page, ui_env, "officer")
    page.goto(f"{origin}/ui/persons/{phone_pin}?purpose=civil_status")
    expect(page.locator("#death")).to_be_visible()
    assert _overflow(page) == 0
    screenshot(page, "vi-phone-record-deceased")
    phone.close()


def test_province_admin_sees_reservations_and_releases_one(ui_env: UiEnv,
                                                          browser: Browser) -> None:
    """Issue 15 item 4b: the administrator of 052 logs in with the USB token, sees the
    offices' reservations of 052 (not 001's), releases one by keyboard after the
    confirmation; axe-core on each page in both languages; phone width."""
    origin = ui_env.origin
    year = datetime.now(UTC).year
    made: dict[str, dict[str, Any]] = {}
    for name, province in (("vi", "052"), ("en", "052"), ("hanoi", "001")):
        with ui_env.registrar(province) as registrar:
            response = registrar.post("/v1/reservations", json={"buckets": [
                {"sex": "F", "birth_year": year, "count": 4}], "days": 10})
        assert response.status_code == 201, response.text
        made[name] = response.json()
    seen: dict[str, list[dict[str, Any]]] = {}
    for lang in ("vi", "en"):
        rid = made[lang]["reservation_id"]
        context = _context(browser, 1024, 768)
        page = context.new_page()
        page.goto(f"{origin}/ui/lang/{lang}?next=/ui/login")
        login(page, ui_env, "admin", goto=False)
        expect(page).to_have_url(f"{origin}/ui/reservations")
        row = page.locator(f"#res-{rid}")
        expect(row).to_contain_text(made[lang]["client_id"])
        expect(row.locator("td.num")).to_have_text(["0", "4", "0"])
        expect(page.locator(f"#res-{made['hanoi']['reservation_id']}")).to_have_count(0)
        check_page(page, f"{lang}-reservations", seen)
        _tab_to(page, f"#release-{rid}")  # keyboard only
        page.keyboard.press("Enter")
        page.wait_for_url(f"{origin}/ui/reservations/{rid}/release")
        expect(page.locator("#release-warning")).to_contain_text("4")
        check_page(page, f"{lang}-reservation-release", seen)
        _tab_to(page, "#confirm-release")
        page.keyboard.press("Enter")
        expect(page.locator("#released")).to_be_visible()
        expect(page.locator("#r-retired")).to_have_text("4")
        check_page(page, f"{lang}-reservation-released", seen)
        page.goto(f"{origin}/ui/reservations")
        expect(page.locator(f"#res-{rid} .status.cancelled")).to_be_visible()
        expect(page.locator(f"#release-{rid}")).to_have_count(0)
        context.close()
    released = ui_env.fetch("SELECT outcome, details->>'reservation_id' AS rid FROM audit_event "
                            "WHERE action = 'pin.release'")
    assert sorted((r["outcome"], r["rid"]) for r in released) == sorted(
        ("released", made[lang]["reservation_id"]) for lang in ("vi", "en"))
    assert {name: v for name, v in seen.items() if v} == {}

    phone = _context(browser, 390, 844, is_mobile=True, has_touch=True)
    page = phone.new_page()
    login(page, ui_env, "admin")
    box = page.locator("header .who button").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert _overflow(page) == 0
    screenshot(page, "vi-phone-reservations")
    phone.close()

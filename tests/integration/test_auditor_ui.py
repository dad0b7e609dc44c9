"""The auditors' pages end to end: headless Debian Chromium (Playwright) against a real server
and the real signing agent (tests/support/ui_env.py, shared with the officers' test). The
auditor logs in with the USB token, searches (newest first, previous / first / total, the Action
list, the actor by name, Vietnam time), exports, opens a PIN's history with the person's name
and status, sees the checkpoint and runs a verification; the agent's two failures are told
apart; an officer at these pages is told what they are for; axe-core on every page in both
languages, with screenshots.

No skip: a missing /usr/bin/chromium fails the test (scripts/bootstrap.sh installs it).
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from hsm.agent import SigningAgent
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Actor
from idservice.db.pool import connect
from tests.support.bodies import issue_body
from tests.support.ui_env import UiEnv, check_page, login, screenshot

pytestmark = pytest.mark.slow

PIN = "052099000123"
OTHER_PIN = "052099000456"
XSS_DETAIL = "<script>window.__pwned = 1</script>"
XSS_ACTOR = "<img src=x onerror=\"window.__pwned = 2\">"
SEED_CLIENT = "seed-client-ui"


async def _seed(service_url: str) -> None:
    """Events an auditor will look for, one of them with markup in every text field."""
    conn = await connect(service_url)
    try:
        async with conn.transaction():
            await record(conn, RequestContext(Actor("client", XSS_ACTOR), "req-xss", "10.0.0.9"), [
                AuditEvent("person.read", "ok", pin=PIN, purpose="<b>bold purpose</b>",
                           details={"note": XSS_DETAIL})])
        for i in range(3):
            async with conn.transaction():
                await record(conn, RequestContext(Actor("client", SEED_CLIENT), f"req-{i}",
                                                  "10.0.0.1"),
                             [AuditEvent("pin.issue", "ok", pin=OTHER_PIN if i else PIN,
                                         purpose="registration", details={"n": i})])
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def seeded(ui_env: UiEnv) -> UiEnv:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _seed(ui_env.urls.service)).result()
    return ui_env


def _api_token(env: UiEnv, person: str) -> str:
    """An access token through the agent (as the page does, over plain HTTP)."""
    env.use(person)
    nonce = httpx.post(f"{env.origin}/v1/auth/challenge").json()["nonce"]
    signed = httpx.post(f"{env.agent.url}/sign", json={"nonce": nonce, "origin": env.origin},
                        headers={"Origin": env.origin}, timeout=30)
    assert signed.status_code == 200, signed.text
    login = httpx.post(f"{env.origin}/v1/auth/token",
                       json={"nonce": nonce, "auth_token": signed.json()}, timeout=60)
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def replaced(seeded: UiEnv) -> tuple[str, str]:
    """A PIN cancelled by a sex correction, and the PIN that replaced it."""
    pin = seeded.issue(issue_body("052", sex="F", full_name="Lương Thị Được Thay"))
    officer = _api_token(seeded, "officer")
    response = httpx.post(f"{seeded.origin}/v1/persons/{pin}/corrections",
                          headers={"Authorization": f"Bearer {officer}"}, timeout=60,
                          json={"changes": {"sex": "M"}, "reason": "nhầm giới tính"})
    assert response.status_code == 200, response.text
    return pin, response.json()["pin"]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def _wait_sequenced(env: UiEnv, actor_id: str, count: int) -> None:
    for _ in range(200):
        rows = env.fetch("SELECT count(*) AS n FROM audit_entry WHERE actor_id = $1", actor_id)
        if rows[0]["n"] >= count:
            return
        time.sleep(0.05)
    raise AssertionError("events not sequenced")


def test_auditor_logs_in_searches_and_verifies(seeded: UiEnv, page: Page,
                                               replaced: tuple[str, str]) -> None:
    env = seeded
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    origin = env.origin
    _wait_sequenced(env, SEED_CLIENT, 3)

    # Not logged in: the UI sends us to the login page, keeping where we were going.
    page.goto(f"{origin}/ui/events")
    expect(page).to_have_url(f"{origin}/ui/login?next=%2Fui%2Fevents")
    login(page, env, "auditor", goto=False)
    expect(page).to_have_url(f"{origin}/ui/events")
    cookie = next(c for c in page.context.cookies() if c["name"] == "idservice_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert "idservice_ui" not in page.evaluate("document.cookie")
    assert page.evaluate("window.sessionStorage.length + window.localStorage.length") == 0
    expect(page.locator("header .who .user")).to_contain_text(env.operators["auditor"])

    # Search by PIN: the event with markup in it renders as inert text; details expand.
    page.fill("#f-pin", PIN)
    page.click("form.search button[type=submit]")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(2)
    table = page.locator("table.events")
    for text in (XSS_DETAIL, XSS_ACTOR, "<b>bold purpose</b>"):
        expect(table).to_contain_text(text)
    assert page.locator("table.events script, table.events img, table.events b").count() == 0
    assert page.evaluate("window.__pwned") is None
    pre = rows.nth(1).locator("details pre")
    expect(pre).to_be_hidden()
    rows.nth(1).locator("summary").click()
    expect(pre).to_be_visible()
    expect(page.locator("#event-count")).to_contain_text("trong tổng số 2, mới nhất trước")

    # Newest first, one per page: older, older, then newer and back to the newest.
    page.goto(f"{origin}/ui/events")
    page.fill("#f-actor", f"client:{SEED_CLIENT}")
    page.select_option("#f-action", "pin.issue")
    page.fill("#f-limit", "1")
    page.click("form.search button[type=submit]")
    seen = []
    for step in range(3):
        expect(rows).to_have_count(1)
        seen.append(int(rows.first.locator("td.num").inner_text()))
        expect(page.locator("#page-first")).to_have_count(0 if step == 0 else 1)
        if step < 2:
            page.click("#page-older")
    assert seen == sorted(seen, reverse=True)
    expect(page.locator("#page-older")).to_have_count(0)
    page.click("#page-newer")
    assert int(rows.first.locator("td.num").inner_text()) == seen[1]
    page.click("#page-first")
    assert int(rows.first.locator("td.num").inner_text()) == seen[0]

    # The export buttons download the current filter: CSV with a byte-order mark.
    with page.expect_download() as download:
        page.click("#export-csv")
    content = Path(download.value.path()).read_bytes()
    assert content.startswith("\ufeff".encode()) and content.count(b"\r\n") == 4

    # An inverted range says why; a bad PIN is an HTML page with a way back.
    page.goto(f"{origin}/ui/events?since=2026-12-05T10:00&until=2026-12-01T10:00")
    expect(page.locator("p.error")).to_contain_text("nằm sau thời điểm kết thúc")
    response = page.goto(f"{origin}/ui/pins/12ab")
    assert response is not None and response.status == 422
    expect(page.locator("#error-message")).to_contain_text("12 chữ số")
    page.click("a.button")
    expect(page).to_have_url(f"{origin}/ui/events")

    # A PIN's history from the header box: name, status, the replacement linked.
    old, new = replaced
    page.fill("#header-pin", old)
    page.press("#header-pin", "Enter")
    page.wait_for_url(f"{origin}/ui/pins/{old}")
    expect(page.locator("#pin-name")).to_have_text("Lương Thị Được Thay")
    expect(page.locator("#pin-person")).to_contain_text("Đã hủy")
    page.click("#pin-replaced-by")
    page.wait_for_url(f"{origin}/ui/pins/{new}")
    expect(page.locator("table.events")).to_contain_text("pin.issue")

    # Checkpoint status; then a verification run in the service, recorded and shown.
    page.goto(f"{origin}/ui/checkpoint")
    for _ in range(50):
        if page.locator("#cp-size").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(page.locator("#cp-signature")).to_contain_text("hợp lệ, do 127.0.0.1:")
    assert int(page.locator("#cp-size").inner_text()) >= 4
    assert len(base64.b64decode(page.locator("#cp-root").inner_text())) == 32
    page.click("#verify-button")
    page.wait_for_url(f"{origin}/ui/checkpoint")
    for _ in range(100):  # the page refreshes itself while the run is going
        if page.locator("#verify-outcome").count():
            break
        page.wait_for_timeout(200)
    expect(page.locator("#verify-outcome")).to_have_text("ok")

    # Every read was audited like the API's, by this auditor.
    auditor_id = env.operators["auditor"]
    reads = env.fetch("SELECT pin, details->>'what' AS what FROM audit_event "
                      "WHERE action = 'audit.read' AND actor_id = $1", auditor_id)
    assert {"events", "checkpoint_status", "export", "person_summary"} <= {r["what"]
                                                                          for r in reads}
    verified = env.fetch("SELECT * FROM audit_event WHERE action = 'audit.verify' AND "
                         "actor_id = $1", auditor_id)
    assert len(verified) == 1 and verified[0]["outcome"] == "ok"

    # Logout revokes the token and drops the cookie.
    old_token = cookie["value"]
    page.click("header .who button")
    page.wait_for_url(f"{origin}/ui/login")
    assert not [c for c in page.context.cookies() if c["name"] == "idservice_ui"]
    assert httpx.get(f"{origin}/v1/audit/checkpoint",
                     headers={"Authorization": f"Bearer {old_token}"}).status_code == 401
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_agent_not_running_and_refusing_this_site_are_told_apart(seeded: UiEnv,
                                                                 page: Page) -> None:
    env = seeded
    port = env.agent.port
    page.goto(f"{env.origin}/ui/login")
    env.agent.stop()
    stranger: SigningAgent | None = None
    try:
        page.click("#login-button")
        expect(page.locator("#login-status")).to_contain_text("chưa chạy trên máy tính này")
        expect(page.locator("#login-status")).to_have_class("error")
        stranger = SigningAgent(allowed_origin="http://127.0.0.1:9", port=port,
                                sign_challenge=lambda o, n: {}).start()
        page.click("#login-button")
        expect(page.locator("#login-status")).to_contain_text("không chấp nhận trang này")
        expect(page.locator("#login-status")).to_contain_text(env.origin)
        screenshot(page, "vi-login-agent-wrong-origin")
    finally:
        if stranger is not None:
            stranger.stop()
        env.agent = SigningAgent(allowed_origin=env.origin, port=port,
                                 sign_challenge=lambda o, n: env.signers[env.slot[0]](o, n)
                                 ).start()
    login(page, env, "auditor")
    expect(page).to_have_url(f"{env.origin}/ui/events")


def test_officer_at_auditor_pages_is_told_what_they_are_for(seeded: UiEnv, page: Page) -> None:
    login(page, seeded, "officer")
    response = page.goto(f"{seeded.origin}/ui/events")
    assert response is not None and response.status == 403
    expect(page.locator("#error-message")).to_contain_text(
        "Trang này dành cho kiểm toán viên")
    expect(page.locator("body")).not_to_contain_text("requires role")
    page.click("a.button")
    expect(page).to_have_url(f"{seeded.origin}/ui/persons")


def test_auditor_pages_in_both_languages_pass_axe_and_fit_a_phone(
    seeded: UiEnv, browser: Browser, replaced: tuple[str, str],
) -> None:
    origin = seeded.origin
    seen: dict[str, list[dict[str, Any]]] = {}
    for lang in ("vi", "en"):
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      locale="vi-VN" if lang == "vi" else "en-GB")
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto(f"{origin}/ui/lang/{lang}?next=/ui/login")
        login(page, seeded, "auditor")
        page.goto(f"{origin}/ui/events?pin={PIN}")
        check_page(page, f"{lang}-audit-events", seen)
        page.goto(f"{origin}/ui/events?since=2026-12-05T10:00&until=2026-12-01T10:00")
        check_page(page, f"{lang}-audit-events-inverted", seen)
        page.goto(f"{origin}/ui/pins/{replaced[0]}")
        check_page(page, f"{lang}-audit-pin-history", seen)
        page.goto(f"{origin}/ui/checkpoint")
        check_page(page, f"{lang}-audit-checkpoint", seen)
        context.close()
        # The officer at the auditor pages.
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{origin}/ui/lang/{lang}?next=/ui/login")
        login(page, seeded, "officer")
        page.goto(f"{origin}/ui/events")
        check_page(page, f"{lang}-audit-officer-refused", seen)
        context.close()
    assert {name: v for name, v in seen.items() if v} == {}

    # A phone: the header wraps, "Log out" stays on screen, nothing scrolls sideways but the
    # table inside its own box.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    login(page, seeded, "auditor")
    page.goto(f"{origin}/ui/events?pin={PIN}")
    box = page.locator("header .who button").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    screenshot(page, "vi-phone-audit-events")
    phone.close()


def test_headers_redirects_and_csrf(seeded: UiEnv) -> None:
    env = seeded
    origin = env.origin
    login_page = httpx.get(f"{origin}/ui/login")
    assert login_page.status_code == 200
    csp = login_page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert f"connect-src 'self' {env.agent.url}" in csp and "unsafe-inline" not in csp
    assert login_page.headers["x-frame-options"] == "DENY"
    assert login_page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)", login_page.text)  # no inline script
    assert not re.search(r"\son[a-z]+=", login_page.text)  # no inline handlers
    assert not re.search(r"\sstyle=", login_page.text)
    script = httpx.get(f"{origin}/ui/static/login.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{origin}/ui/static/../app.py").status_code == 404

    for path in ("/ui/events", "/ui/pins/052099000123", "/ui/checkpoint", "/ui/persons"):
        response = httpx.get(f"{origin}{path}")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=")

    token = _api_token(env, "auditor")
    # The session endpoint: same origin only, operators with a page only.
    cross = httpx.post(f"{origin}/ui/session", json={"access_token": token},
                       headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    bogus = httpx.post(f"{origin}/ui/session", json={"access_token": "x.y.z"},
                       headers={"Origin": origin})
    assert bogus.status_code == 401
    with env.registrar() as registrar:
        client_token = registrar.headers["authorization"].split()[1]
    machine = httpx.post(f"{origin}/ui/session", json={"access_token": client_token},
                         headers={"Origin": origin})
    assert machine.status_code == 403
    ok = httpx.post(f"{origin}/ui/session", json={"access_token": token},
                    headers={"Origin": origin})
    assert ok.status_code == 204
    set_cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/ui" in set_cookie

    with httpx.Client(base_url=origin, cookies={"idservice_ui": token}) as client:
        checkpoint = client.get("/ui/checkpoint")
        assert checkpoint.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', checkpoint.text)
        assert csrf is not None
        before = len(env.fetch("SELECT 1 FROM audit_event WHERE action = 'audit.verify'"))
        no_csrf = client.post("/ui/checkpoint/verify", data={}, headers={"Origin": origin})
        wrong_origin = client.post("/ui/checkpoint/verify", data={"csrf": csrf.group(1)},
                                   headers={"Origin": "http://evil.example"})
        no_origin = client.post("/ui/checkpoint/verify", data={"csrf": csrf.group(1)})
        assert no_csrf.status_code == wrong_origin.status_code == no_origin.status_code == 403
        logout_no_csrf = client.post("/ui/logout", data={}, headers={"Origin": origin})
        assert logout_no_csrf.status_code == 403
        assert client.get("/ui/events").status_code == 200  # still logged in
        assert len(env.fetch("SELECT 1 FROM audit_event WHERE action = 'audit.verify'")) \
            == before

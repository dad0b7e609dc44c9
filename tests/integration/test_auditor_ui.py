"""The auditors' web UI end to end: headless Debian Chromium (Playwright) against a real server.

The server is the officer-login test server (test PKI, its own SoftHSM service token) on a fresh
database of the session cluster, so that its checkpoints are the only ones and "Verify now" has
a clean log to verify. The auditor's USB token is a SoftHSM token with a key generated on it and
a certificate of the test PKI; the real signing agent (`hsm/agent.py`, as `idservice agent`
runs it) listens on a loopback port and allows exactly the server's origin. The browser logs in
through it, searches, pages, opens a PIN's history, sees the checkpoint and runs a verification.

No skip: a missing /usr/bin/chromium fails the test (scripts/bootstrap.sh installs it).
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pydantic import SecretStr

from hsm.agent import SigningAgent
from idservice.app import create_app
from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.principal import Actor
from idservice.cli.agent import token_signer
from idservice.db.migrate import migrate
from idservice.db.pool import connect
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.debian_pg import PgServer
from tests.support.fixtures_db import drop_database
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.officer_pki import POLICY_OID, OfficerPki
from tests.support.officer_server import OfficerLoginEnv
from tests.support.officer_tokens import provision, write_certificate
from tests.support.server import ServerThread, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PIN = "052099000123"
OTHER_PIN = "052099000456"
XSS_DETAIL = "<script>window.__pwned = 1</script>"
XSS_ACTOR = "<img src=x onerror=\"window.__pwned = 2\">"
SCREENSHOTS = Path("/tmp")


@dataclass
class UiEnv:
    officer_env: OfficerLoginEnv
    agent: SigningAgent
    urls: Any  # DatabaseUrls of the fresh database
    auditor_id: str

    @property
    def origin(self) -> str:
        return self.officer_env.origin

    def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async def main() -> list[asyncpg.Record]:
            conn = await connect(self.urls.service)
            try:
                return await conn.fetch(sql, *args)
            finally:
                await conn.close()

        # In a thread: sync Playwright runs an event loop in the test's thread.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, main()).result()

    def api_login(self) -> str:
        """An auditor access token through the agent (as the page does, over plain HTTP)."""
        nonce = self.officer_env.challenge()
        signed = httpx.post(f"{self.agent.url}/sign", json={"nonce": nonce, "origin": self.origin},
                            headers={"Origin": self.origin}, timeout=30)
        assert signed.status_code == 200, signed.text
        login = self.officer_env.post_token(nonce, signed.json())
        assert login.status_code == 200, login.text
        token: str = login.json()["access_token"]
        return token


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
                await record(conn, RequestContext(Actor("client", "seed-client"), f"req-{i}",
                                                  "10.0.0.1"),
                             [AuditEvent("pin.issue", "ok", pin=OTHER_PIN if i else PIN,
                                         purpose="registration", details={"n": i})])
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def ui_env(settings: Settings, pg_server: PgServer, pg_superuser_url: str,
           softhsm_dir: SoftHsmDir,
           softhsm_token_factory: Callable, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[UiEnv]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/bootstrap.sh"
    name = f"test_ui_{uuid.uuid4().hex[:10]}"
    urls = asyncio.run(pg_server.ensure_database(name))
    asyncio.run(migrate(urls.owner))
    database = DatabaseTarget(service_url=urls.service, owner_url=urls.owner,
                              auditor_url=urls.auditor, embedded=None, admin_url=urls.admin)
    workdir = tmp_path_factory.mktemp("auditor-ui-pki")
    pki = OfficerPki.build(datetime.now(UTC))
    officer = provision(softhsm_token_factory(f"auditor-usb-{secrets.token_hex(3)}"), workdir)
    cert = pki.officer_cert(officer.public_key, "Audrey Auditor")
    write_certificate(officer, cert, workdir)
    files = pki.write(workdir)
    service_token = softhsm_token_factory("auditor-ui-svc")
    port, agent_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{port}"
    token = officer.token
    agent = SigningAgent(allowed_origin=origin, port=agent_port,
                         sign_challenge=token_signer(token.module_path, token.token_label,
                                                     lambda _o, _n: token.user_pin)).start()
    ui_settings = settings.model_copy(update={
        "pkcs11_module": service_token.module_path,
        "pkcs11_token_label": service_token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "auditor-ui-es256",
        "origin": origin, "agent_url": agent.url, "cert_policies": [POLICY_OID],
        "audit_integrator_interval": 0.1, "audit_checkpoint_interval": 0.2, **files})
    thread = ServerThread(create_app(ui_settings, database=database), port).start()
    env = OfficerLoginEnv(thread, pki, workdir, officer, database)
    try:
        auditor_id = env.register(cert, roles=("auditor",), jurisdiction="*")
        asyncio.run(_seed(urls.service))
        yield UiEnv(env, agent, urls, auditor_id)
    finally:
        thread.stop()
        agent.stop()
        asyncio.run(drop_database(pg_superuser_url, name))


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        yield browser
        browser.close()


def _events_of(env: UiEnv, action: str) -> list[asyncpg.Record]:
    return env.fetch("SELECT * FROM audit_entry WHERE action = $1 ORDER BY index", action)


def test_auditor_logs_in_searches_and_verifies(ui_env: UiEnv, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page: Page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_default_timeout(20_000)
    origin = ui_env.origin

    # Not logged in: the UI sends us to the login page.
    page.goto(f"{origin}/ui/events")
    expect(page).to_have_url(f"{origin}/ui/login")

    # Login through the signing agent: challenge, agent, token, session cookie.
    page.click("#login-button")
    page.wait_for_url(f"{origin}/ui/events")
    cookie = next(c for c in context.cookies() if c["name"] == "idservice_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert "idservice_ui" not in page.evaluate("document.cookie")
    assert page.evaluate("window.sessionStorage.length + window.localStorage.length") == 0
    expect(page.locator("header .who span")).to_have_text(f"operator:{ui_env.auditor_id}")

    # Search by PIN: the event with markup in it renders as inert text.
    page.fill("form.search input[name=pin]", PIN)
    page.click("form.search button[type=submit]")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("table.events")).to_contain_text(XSS_DETAIL)
    expect(page.locator("table.events")).to_contain_text(XSS_ACTOR)
    expect(page.locator("table.events")).to_contain_text("<b>bold purpose</b>")
    assert page.locator("table.events script, table.events img, table.events b").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(SCREENSHOTS / "auditor-ui-events.png"), full_page=True)

    # Paging with the API's cursor: one pin.issue per page.
    page.fill("form.search input[name=pin]", "")
    page.fill("form.search input[name=action]", "pin.issue")
    page.fill("form.search input[name=limit]", "1")
    page.click("form.search button[type=submit]")
    seen = []
    for _ in range(3):
        expect(rows).to_have_count(1)
        seen.append(rows.first.locator("td").nth(4).inner_text())
        page.click("a[rel=next]")
    expect(page.locator("p.empty")).to_have_text("No events match.")
    assert sorted(seen) == sorted([PIN, OTHER_PIN, OTHER_PIN])

    # A time range in the future matches nothing; a bad PIN is an error on the page.
    page.goto(f"{origin}/ui/events?since=2999-01-01T00:00&search=1")
    expect(page.locator("p.empty")).to_be_visible()
    response = page.goto(f"{origin}/ui/events?pin=12ab&search=1")
    assert response is not None and response.status == 422
    expect(page.locator("p.error")).to_contain_text("PIN")

    # Per-PIN history, from the header box.
    page.fill("header input[name=pin]", PIN)
    page.press("header input[name=pin]", "Enter")
    page.wait_for_url(f"{origin}/ui/pins/{PIN}")
    expect(page.locator("h1")).to_contain_text(PIN)
    expect(page.locator("table.events")).to_contain_text("person.read")
    expect(page.locator("table.events")).to_contain_text("pin.issue")

    # Checkpoint status; then a verification run in the service, recorded and shown.
    page.goto(f"{origin}/ui/checkpoint")
    for _ in range(50):
        if page.locator("#cp-size").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(page.locator("#cp-signature")).to_contain_text("valid, signed by 127.0.0.1:")
    assert int(page.locator("#cp-size").inner_text()) >= 4
    assert len(base64.b64decode(page.locator("#cp-root").inner_text())) == 32
    expect(page.locator("#verify-none")).to_be_visible()
    page.click("#verify-button")
    page.wait_for_url(f"{origin}/ui/checkpoint")
    for _ in range(100):  # the page refreshes itself while the run is going
        if page.locator("#verify-outcome").count():
            break
        page.wait_for_timeout(200)
    expect(page.locator("#verify-outcome")).to_have_text("ok")
    assert int(page.locator("#verify-rows").inner_text()) >= 4
    page.screenshot(path=str(SCREENSHOTS / "auditor-ui-checkpoint.png"), full_page=True)

    # Every read was audited like the API's, by this auditor.
    reads = ui_env.fetch("SELECT pin, details->>'what' AS what FROM audit_entry "
                         "WHERE action = 'audit.read' AND actor_id = $1", ui_env.auditor_id)
    assert {"events", "checkpoint_status"} <= {r["what"] for r in reads}
    assert any(r["pin"] == PIN for r in reads)
    verified = _events_of(ui_env, "audit.verify")
    assert len(verified) == 1 and verified[0]["outcome"] == "ok"
    assert verified[0]["actor_type"] == "operator" and verified[0]["actor_id"] == ui_env.auditor_id

    # Logout revokes the token and drops the cookie.
    old_token = cookie["value"]
    page.click("header .who button")
    page.wait_for_url(f"{origin}/ui/login")
    assert not [c for c in context.cookies() if c["name"] == "idservice_ui"]
    assert httpx.get(f"{origin}/v1/audit/checkpoint",
                     headers={"Authorization": f"Bearer {old_token}"}).status_code == 401
    page.goto(f"{origin}/ui/events")
    expect(page).to_have_url(f"{origin}/ui/login")
    assert not [e for e in errors if "Content Security Policy" in e], errors
    context.close()


def test_headers_redirects_and_csrf(ui_env: UiEnv) -> None:
    origin = ui_env.origin
    login = httpx.get(f"{origin}/ui/login")
    assert login.status_code == 200
    csp = login.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert f"connect-src 'self' {ui_env.agent.url}" in csp and "unsafe-inline" not in csp
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)", login.text)  # no inline script
    assert not re.search(r"\son[a-z]+=", login.text)  # no inline handlers
    script = httpx.get(f"{origin}/ui/static/login.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{origin}/ui/static/../app.py").status_code == 404

    for path in ("/ui/events", "/ui/pins/052099000123", "/ui/checkpoint"):
        response = httpx.get(f"{origin}{path}")
        assert response.status_code == 303 and response.headers["location"] == "/ui/login"

    token = ui_env.api_login()
    # The session endpoint: same origin only, auditors only.
    cross = httpx.post(f"{origin}/ui/session", json={"access_token": token},
                       headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    bogus = httpx.post(f"{origin}/ui/session", json={"access_token": "x.y.z"},
                       headers={"Origin": origin})
    assert bogus.status_code == 401
    officer_cert = ui_env.officer_env.pki.officer_cert(ui_env.officer_env.officer.public_key,
                                                       "Otto Officer")
    ui_env.officer_env.register(officer_cert, roles=("officer",))
    officer = ui_env.officer_env.login(officer_cert)
    assert officer.status_code == 200, officer.text
    not_auditor = httpx.post(f"{origin}/ui/session",
                             json={"access_token": officer.json()["access_token"]},
                             headers={"Origin": origin})
    assert not_auditor.status_code == 403
    ok = httpx.post(f"{origin}/ui/session", json={"access_token": token},
                    headers={"Origin": origin})
    assert ok.status_code == 204
    set_cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/ui" in set_cookie

    with httpx.Client(base_url=origin, cookies={"idservice_ui": token}) as client:
        page = client.get("/ui/checkpoint")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        before = len(_events_of(ui_env, "audit.verify"))
        no_csrf = client.post("/ui/checkpoint/verify", data={}, headers={"Origin": origin})
        wrong_origin = client.post("/ui/checkpoint/verify", data={"csrf": csrf.group(1)},
                                   headers={"Origin": "http://evil.example"})
        no_origin = client.post("/ui/checkpoint/verify", data={"csrf": csrf.group(1)})
        assert no_csrf.status_code == wrong_origin.status_code == no_origin.status_code == 403
        logout_no_csrf = client.post("/ui/logout", data={}, headers={"Origin": origin})
        assert logout_no_csrf.status_code == 403
        assert client.get("/ui/events").status_code == 200  # still logged in
        assert len(_events_of(ui_env, "audit.verify")) == before

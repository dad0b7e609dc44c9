"""The web pages end to end: one real server (test PKI, its own SoftHSM service token, a fresh
database of the session cluster), the real signing agent on a loopback port, and USB tokens
(SoftHSM, key generated on the token, certificate of the test PKI) for several people: an
officer of 052, an officer of 052 who is also an auditor, an auditor for every province, the
administrator of 052. The agent signs with whichever token `use(name)` put in its slot, as if
that person had plugged their token in. Headless Debian Chromium (Playwright,
`executable_path`) drives the pages.

Shared by test_officer_ui.py and test_auditor_ui.py (session scope: one server for both).
Also: axe-core (installed by scripts/bootstrap.sh under tests/ui/node_modules) run in a page,
and screenshots (kept under `$IDSERVICE_SCREENSHOTS`, e.g. docs/screens, else a temp dir).
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright
from pydantic import SecretStr

from hsm.agent import SigningAgent
from idservice.app import create_app
from idservice.auth.administration import admin_actor
from idservice.auth.assertion import client_token_form
from idservice.auth.client_registry import add_client
from idservice.auth.operators import add_operator
from idservice.cli.agent import token_signer
from idservice.db.migrate import migrate
from idservice.db.pool import connect
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.debian_pg import PgServer
from tests.support.fixtures_db import drop_database
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.officer_pki import POLICY_OID, OfficerPki
from tests.support.officer_tokens import provision, write_certificate
from tests.support.pki import new_client_key
from tests.support.server import ServerThread, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "ui" / "node_modules" / "axe-core" / "axe.min.js"

# name -> (display name, roles, jurisdiction)
PEOPLE: dict[str, tuple[str, tuple[str, ...], str]] = {
    "officer": ("Nguyễn Văn An", ("officer",), "052"),
    "officer_auditor": ("Trần Thị Bình", ("officer", "auditor"), "052"),
    "auditor": ("Lê Thị Kiểm", ("auditor",), "*"),
    "admin": ("Đỗ Văn Quản", ("admin",), "052"),  # the province administrator (reservations)
}


@dataclass
class UiEnv:
    server: ServerThread
    agent: SigningAgent
    urls: Any
    operators: dict[str, str]  # person -> operator id
    signers: dict[str, Callable[[str, str], Mapping[str, Any]]]
    registrar_keys: dict[str, tuple[str, object]]
    slot: list[str] = field(default_factory=lambda: ["officer"])

    @property
    def origin(self) -> str:
        return self.server.base_url

    def use(self, person: str) -> None:
        """Plug `person`'s token in: the agent signs with it from now on."""
        self.slot[0] = person

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

    def registrar(self, province: str = "052") -> httpx.Client:
        client_id, key = self.registrar_keys[province]
        form = client_token_form(client_id, key, f"{self.origin}/v1/auth/client-token")
        response = httpx.post(f"{self.origin}/v1/auth/client-token", data=form, timeout=30)
        assert response.status_code == 200, response.text
        return self.server.client(response.json()["access_token"])

    def issue(self, body: dict[str, Any], province: str = "052") -> str:
        with self.registrar(province) as client:
            response = client.post("/v1/pins", json=body)
        assert response.status_code in (200, 201), response.text
        pin: str = response.json()["pin"]
        return pin


def _run(coro: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def ui_env(settings: Settings, pg_server: PgServer, pg_superuser_url: str,
           softhsm_dir: SoftHsmDir, softhsm_token_factory: Callable,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiEnv]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/bootstrap.sh"
    assert AXE.exists(), f"{AXE} is missing: run scripts/bootstrap.sh"
    name = f"test_ui_{uuid.uuid4().hex[:10]}"
    urls = _run(pg_server.ensure_database(name))
    _run(migrate(urls.owner))
    database = DatabaseTarget(service_url=urls.service, owner_url=urls.owner,
                              auditor_url=urls.auditor, embedded=None, admin_url=urls.admin)
    workdir = tmp_path_factory.mktemp("ui-pki")
    pki = OfficerPki.build(datetime.now(UTC))
    certs = {}
    signers: dict[str, Callable[[str, str], Mapping[str, Any]]] = {}
    for person, (display, _roles, _jur) in PEOPLE.items():
        token = provision(softhsm_token_factory(f"ui-{person}-{secrets.token_hex(3)}"), workdir)
        cert = pki.officer_cert(token.public_key, display)
        write_certificate(token, cert, workdir)
        certs[person] = cert
        t = token.token
        signers[person] = token_signer(t.module_path, t.token_label,
                                       lambda _o, _n, pin=t.user_pin: pin)
    files = pki.write(workdir)
    service_token = softhsm_token_factory("ui-svc")
    port, agent_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{port}"
    slot = ["officer"]
    agent = SigningAgent(allowed_origin=origin, port=agent_port,
                         sign_challenge=lambda o, n: signers[slot[0]](o, n)).start()
    ui_settings = settings.model_copy(update={
        "pkcs11_module": service_token.module_path,
        "pkcs11_token_label": service_token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "ui-es256",
        "origin": origin, "agent_url": agent.url, "cert_policies": [POLICY_OID],
        "audit_integrator_interval": 0.1, "audit_checkpoint_interval": 0.2, **files})
    thread = ServerThread(create_app(ui_settings, database=database), port).start()

    async def register() -> tuple[dict[str, str], dict[str, tuple[str, object]]]:
        conn = await connect(urls.admin)  # registering is administration
        by = admin_actor()
        try:
            operators = {}
            for person, (display, roles, jur) in PEOPLE.items():
                operators[person] = await add_operator(
                    conn, cert_pem=certs[person].public_bytes(Encoding.PEM), name=display,
                    roles=list(roles), jurisdiction=jur,
                    operator_id=f"{person.replace('_', '-')}-{secrets.token_hex(3)}", by=by)
            keys = {}
            for province in ("052", "001"):
                client_id = f"ui-registrar-{province}-{secrets.token_hex(3)}"
                key = new_client_key(client_id)
                await add_client(conn, client_id=client_id, cert_pem=key.cert_pem,
                                 roles=["registrar"], jurisdiction=province, by=by)
                keys[province] = (client_id, key.key)
            return operators, keys
        finally:
            await conn.close()

    operators, keys = _run(register())
    env = UiEnv(thread, agent, urls, operators, signers, keys, slot)
    try:
        yield env
    finally:
        thread.stop()
        agent.stop()
        _run(drop_database(pg_superuser_url, name))


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        yield browser
        browser.close()


def login(page: Page, env: UiEnv, person: str, *, goto: bool = True) -> None:
    """Log in through the page's button, the agent and `person`'s token (`goto=False`: the
    page is on the login page already, e.g. sent there with a `next`)."""
    env.use(person)
    if goto:
        page.goto(f"{env.origin}/ui/login")
    page.click("#login-button")
    page.wait_for_url(lambda url: "/ui/login" not in url)


# -- axe-core and screenshots ----------------------------------------------------------------

_AXE_SOURCE: str | None = None


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is (WCAG 2.1 A and AA)."""
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = AXE.read_text("utf-8")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_AXE_SOURCE)  # DevTools evaluation: not subject to the page's CSP
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {
              runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                              'best-practice']},
              resultTypes: ['violations']})).violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))""")
    return violations


def screens_dir() -> Path:
    configured = os.environ.get("IDSERVICE_SCREENSHOTS")
    path = Path(configured) if configured else Path("/tmp/idservice-screens")
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG reduced to 64 colours (the pages are flat colours and text)."""
    raw = page.screenshot(full_page=True)
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    path = screens_dir() / f"{name}.png"
    image.quantize(colors=64).save(path, optimize=True)
    return path


def check_page(page: Page, name: str, seen: dict[str, list[dict[str, Any]]]) -> None:
    """axe-core on the page, and its screenshot; violations are collected per page name."""
    seen[name] = axe_violations(page)
    screenshot(page, name)

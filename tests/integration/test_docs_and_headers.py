"""`/docs` and `/redoc` load everything from the service itself, and every response carries a
Content-Security-Policy (issue 9 item 15, contract 7 "Docs and headers").

The pages are read twice: as HTML (every `src`/`href` is on the service and answers 200) and in
Debian's headless Chromium (Playwright, `executable_path`), which records every request the
page makes and every CSP violation it reports: a page that works offline makes no request to
another host, and one whose policy is right logs no violation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from idservice.api.docs import DOCS_CSP
from idservice.api.headers import API_CSP
from tests.support.bodies import issue_body
from tests.support.server import ServerThread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ASSET = re.compile(r"""(?:src|href)="([^"]+)\"""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_references_only_the_service_and_every_asset_is_served(
    server: ServerThread, page: str,
) -> None:
    response = httpx.get(f"{server.base_url}{page}")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert "<script>" not in response.text  # no inline script: every script is a file
    assets = ASSET.findall(response.text)
    assert len(assets) >= 2
    for url in [*assets, "/openapi.json"]:
        assert url.startswith("/") and not url.startswith("//"), url
        fetched = httpx.get(f"{server.base_url}{url}")
        assert fetched.status_code == 200, url
        assert fetched.headers["content-type"].split(";")[0] in (
            "text/javascript", "text/css", "image/png", "application/json"), url
    assert httpx.get(f"{server.base_url}/docs/assets/nothing.js").status_code == 404


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Per test: Playwright's sync API keeps an event loop running in this thread while it
    is open, which other fixtures' `asyncio.run` cannot share."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        yield browser
        browser.close()


@pytest.mark.parametrize(("page", "rendered"), [
    ("/docs", ".swagger-ui .info .title"),  # Swagger UI's title, from /openapi.json
    ("/redoc", "redoc h1"),
])
def test_docs_page_renders_in_a_browser_with_no_other_host_and_no_csp_violation(
    server: ServerThread, browser: Browser, page: str, rendered: str,
) -> None:
    context = browser.new_context()
    tab = context.new_page()
    requested: list[str] = []
    console: list[str] = []
    tab.on("request", lambda request: requested.append(request.url))
    tab.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    tab.goto(f"{server.base_url}{page}")
    tab.wait_for_selector(rendered, timeout=20_000)
    tab.wait_for_load_state("networkidle")
    assert "idservice" in tab.inner_text(rendered)
    context.close()
    hosts = {urlsplit(url).netloc for url in requested if not url.startswith(("data:", "blob:"))}
    assert hosts == {urlsplit(server.base_url).netloc}, requested
    violations = [line for line in console if "Content Security Policy" in line]
    assert violations == []


def test_every_kind_of_response_carries_a_csp(
    server: ServerThread, registrar: httpx.Client, officer_token: Callable[..., str],
) -> None:
    base = server.base_url
    batch = registrar.post("/v1/pins:batch", headers={"Content-Type": "application/x-ndjson"},
                           content=json.dumps(issue_body("052")).encode() + b"\n")
    auditor = httpx.Client(base_url=base, headers={
        "Authorization": f"Bearer {officer_token('*', roles=('auditor',))}"})
    answers = {
        "json": httpx.get(f"{base}/healthz"),
        "problem+json": httpx.get(f"{base}/v1/persons/052326415904"),  # no token: 401
        "ndjson": batch,
        "text": httpx.get(f"{base}/metrics"),
        "checkpoint text": auditor.get("/v1/audit/checkpoint"),
        "csv": auditor.get("/v1/audit/export", params={"format": "csv", "limit": 1}),
        "html (docs)": httpx.get(f"{base}/docs"),
        "html (ui)": httpx.get(f"{base}/ui/login"),
        "404": httpx.get(f"{base}/no/such/path"),
        "405": httpx.get(f"{base}/v1/pins"),
        "asset": httpx.get(f"{base}/docs/assets/swagger-init.js"),
        "openapi": httpx.get(f"{base}/openapi.json"),
        "redirect": httpx.get(f"{base}/", follow_redirects=False),
    }
    auditor.close()
    expected_types = {"json": "application/json", "problem+json": "application/problem+json",
                      "ndjson": "application/x-ndjson", "text": "text/plain",
                      "html (docs)": "text/html", "404": "application/problem+json"}
    for kind, response in answers.items():
        assert "content-security-policy" in response.headers, kind
        if kind in expected_types:
            assert response.headers["content-type"].startswith(expected_types[kind]), kind
        assert response.headers["x-content-type-options"] == "nosniff", kind
        assert len(response.headers.get_list("content-security-policy")) == 1, kind
    for kind in ("json", "problem+json", "ndjson", "text", "404", "405", "openapi", "asset"):
        assert answers[kind].headers["content-security-policy"] == API_CSP, kind
    assert "frame-ancestors 'none'" in answers["html (ui)"].headers["content-security-policy"]

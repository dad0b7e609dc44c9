"""`/docs` (Swagger UI) and `/redoc`, served without any CDN (issue 9 item 15, contract 7).

Government networks often have no internet, and a script from a CDN runs with the service's
origin. Every asset is served by the service under `/docs/assets/`: the Swagger UI and Redoc
bundles come from the `fastapi-offline` wheel (hash-locked with the other dependencies,
`deploy/requirements.lock`), the start-up script is ours (`docs_assets/`). The pages have no
inline script, and their own Content-Security-Policy: scripts, styles, fonts and images from the
service only (Redoc and Swagger UI set inline styles, and Redoc's search runs in a worker made
from a blob), requests to the service only (`/openapi.json`, "Try it out").
"""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from idservice.errors import NotFound

__all__ = ["DOCS_CSP", "router"]

router = APIRouter(include_in_schema=False)

DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_VENDOR = Path(fastapi_offline.__file__).resolve().parent / "static"
_OURS = Path(__file__).resolve().parent / "docs_assets"
_JS, _CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
_FILES: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (_VENDOR / "swagger-ui-bundle.js", _JS),
    "swagger-ui.css": (_VENDOR / "swagger-ui.css", _CSS),
    "favicon.png": (_VENDOR / "favicon.png", "image/png"),
    "swagger-init.js": (_OURS / "swagger-init.js", _JS),
}
_REDOC_BUNDLE = "redoc.standalone.js"
_REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
_CACHE = "public, max-age=3600"


@functools.cache
def _redoc_bundle() -> bytes:
    """Redoc's bundle without its one request to another host (see the module docstring)."""
    bundle = (_VENDOR / _REDOC_BUNDLE).read_bytes()
    if bundle.count(_REDOC_LOGO) != 1:
        raise RuntimeError("the Redoc bundle changed: check what it loads from other hosts")
    return bundle.replace(_REDOC_LOGO, b'"data:,"')

_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>idservice API (Swagger UI)</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head><body>
<div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body></html>
"""

_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>idservice API (Redoc)</title>
<link rel="icon" href="/docs/assets/favicon.png">
</head><body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/docs/assets/redoc.standalone.js"></script>
</body></html>
"""


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP,
                                       "Cache-Control": "no-cache"})


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return _page(_SWAGGER)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return _page(_REDOC)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    if name == _REDOC_BUNDLE:
        return Response(_redoc_bundle(), media_type=_JS, headers={"Cache-Control": _CACHE})
    found = _FILES.get(name)
    if found is None:
        raise NotFound("no such documentation asset")
    path, media = found
    return FileResponse(path, media_type=media, headers={"Cache-Control": _CACHE})

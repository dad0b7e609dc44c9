"""Rendering: Jinja2 templates with autoescaping, and the security headers of every UI response.

No inline script or style anywhere (the CSP forbids them): the login script and the style sheet
are files under `static/`, served by `web/routes.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import Response

__all__ = ["STATIC", "csp", "render", "secure"]

_HERE = Path(__file__).resolve().parent
_ENV = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=1,
                                                  sort_keys=True)
_ENV.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S UTC") \
    if isinstance(value, datetime) else value

STATIC: dict[str, tuple[bytes, str]] = {
    "login.js": ((_HERE / "static" / "login.js").read_bytes(), "text/javascript; charset=utf-8"),
    "ui.css": ((_HERE / "static" / "ui.css").read_bytes(), "text/css; charset=utf-8"),
    "citizen.css": ((_HERE / "static" / "citizen.css").read_bytes(), "text/css; charset=utf-8"),
}


def csp(connect: str = "") -> str:
    extra = f" {connect}" if connect else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self'{extra}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def secure(response: Response, connect: str = "") -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = csp(connect)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Chrome send Origin: null
    headers["Cache-Control"] = "no-store"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return response


def render(template: str, context: Mapping[str, Any], status: int = 200,
           connect: str = "") -> Response:
    html = _ENV.get_template(template).render(**context)
    return secure(Response(html, status_code=status, media_type="text/html; charset=utf-8"),
                  connect)

"""Rendering: Jinja2 templates with autoescaping and the i18n extension, one environment per
language, and the security headers of every UI response.

No inline script or style anywhere (the CSP forbids them): the scripts and the style sheets
are files under `static/`, served by `web/routes.py`. The QR code of the PIN notice is inline
SVG markup made by segno from base64url text (no style attribute, no script).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import Response

from idservice.pin.format import grouped
from idservice.web import formats
from idservice.web.i18n import LANGUAGE_NAMES, LOCALES, Locale, translations

__all__ = ["STATIC", "csp", "render", "secure"]

_HERE = Path(__file__).resolve().parent


def _environment(locale: Locale) -> Environment:
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=1,
                                                     sort_keys=True)
    env.filters["when"] = formats.show_time
    env.filters["day"] = formats.show_date
    env.filters["pin"] = grouped
    env.filters["brief"] = formats.brief
    env.globals["lang"] = locale
    env.globals["language_names"] = LANGUAGE_NAMES
    return env


_ENVS = {loc: _environment(loc) for loc in LOCALES}

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
STATIC: dict[str, tuple[bytes, str]] = {
    path.name: (path.read_bytes(), _STATIC_TYPES[path.suffix])
    for path in sorted((_HERE / "static").iterdir()) if path.suffix in _STATIC_TYPES
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
           connect: str = "", locale: Locale = "vi") -> Response:
    html = _ENVS[locale].get_template(template).render(**context)
    return secure(Response(html, status_code=status, media_type="text/html; charset=utf-8"),
                  connect)

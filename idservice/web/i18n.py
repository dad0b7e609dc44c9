"""The pages' languages (issue 15, item 6): Vietnamese by default, English on request.

The catalogues and their compilation are `idservice/i18n.py` (shared with the office tool);
this module adds what is the web's own: the choice is a cookie (`idservice_lang`, path /ui, a
year), not a secret, so not HttpOnly.
"""

from __future__ import annotations

from starlette.requests import Request

from idservice.i18n import DEFAULT, LOCALES, N_, Locale, translations

__all__ = ["DEFAULT", "LANGUAGE_NAMES", "LANG_COOKIE", "LOCALES", "N_", "Locale", "locale_of",
           "translations"]

LANG_COOKIE = "idservice_lang"
# Each language by its own name, the same on every page (not translated).
LANGUAGE_NAMES: dict[str, str] = {"vi": "Tiếng Việt", "en": "English"}


def locale_of(request: Request) -> Locale:
    chosen = request.cookies.get(LANG_COOKIE)
    for loc in LOCALES:
        if chosen == loc:
            return loc
    return DEFAULT

"""The pages' languages (issue 15, item 6): Vietnamese by default, English on request.

Texts are written in English in the templates and the code (`{% trans %}`, `_()`, and `N_()`
for texts kept in data), and translated from gettext catalogues kept as text in the repository:
`web/locale/<lang>/LC_MESSAGES/messages.po`. They are compiled in memory when this module is
imported (Babel reads the `.po`, writes the `.mo` into a buffer), so no binary is committed or
built by hand; a catalogue that does not parse stops the start. `scripts/i18n.sh` re-extracts
the texts and updates the catalogues; `tests/unit/web/test_i18n.py` fails on a template text
outside the catalogue or a Vietnamese translation missing.

The choice is a cookie (`idservice_lang`, path /ui, a year): not a secret, so not HttpOnly.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path
from typing import Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from starlette.requests import Request

__all__ = ["DEFAULT", "LANGUAGE_NAMES", "LANG_COOKIE", "LOCALES", "N_", "Locale", "locale_of",
           "translations"]

Locale = Literal["vi", "en"]
LOCALES: tuple[Locale, ...] = ("vi", "en")
DEFAULT: Locale = "vi"
LANG_COOKIE = "idservice_lang"
# Each language by its own name, the same on every page (not translated).
LANGUAGE_NAMES: dict[str, str] = {"vi": "Tiếng Việt", "en": "English"}
_DIR = Path(__file__).resolve().parent / "locale"


def N_(message: str) -> str:  # the gettext convention for "translate later"
    """Marks a text for extraction without translating it here (it is data, translated where
    it is shown)."""
    return message


def _compile(locale: str) -> gettext.GNUTranslations:
    path = _DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out: they are not translations yet
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


_TRANSLATIONS: dict[str, gettext.GNUTranslations] = {loc: _compile(loc) for loc in LOCALES}


def translations(locale: Locale) -> gettext.GNUTranslations:
    return _TRANSLATIONS[locale]


def locale_of(request: Request) -> Locale:
    chosen = request.cookies.get(LANG_COOKIE)
    for loc in LOCALES:
        if chosen == loc:
            return loc
    return DEFAULT

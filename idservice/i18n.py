"""The texts people read, in their language: Vietnamese by default, English on request.

One set of gettext catalogues for every user-facing surface: the officers' and auditors' web
pages (`idservice/web/i18n.py` chooses the page's language from a cookie) and the offline office
tool (`idservice office`, used by commune civil-status officers; language from
`IDSERVICE_LANG`). Texts are written in English in the code and templates (`_()`, and `N_()` for
texts kept in data or raised as errors) and translated in `locale/<lang>/LC_MESSAGES/messages.po`,
kept as text in the repository. They are compiled in memory when this module is imported (Babel
reads the `.po`, writes the `.mo` into a buffer), so no binary is committed or built by hand; a
catalogue that does not parse stops the start. `scripts/i18n.sh` re-extracts the texts and
updates the catalogues; `tests/unit/web/test_i18n.py` fails on a text without its Vietnamese
translation.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path
from typing import Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

__all__ = ["DEFAULT", "LOCALES", "N_", "Locale", "locale_named", "translations"]

Locale = Literal["vi", "en"]
LOCALES: tuple[Locale, ...] = ("vi", "en")
DEFAULT: Locale = "vi"
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


def locale_named(name: str | None) -> Locale:
    """The locale a setting or cookie names (`vi`, `en`, also `en_US.UTF-8`); the default for
    anything else, so a stray value never leaves a user without a language."""
    prefix = (name or "").split("_")[0].split(".")[0].lower()
    for loc in LOCALES:
        if prefix == loc:
            return loc
    return DEFAULT

"""Every visible text of the web pages comes from the catalogue (issue 15, item 6).

1. No template has visible text outside `{% trans %}` / `_()`: the templates are stripped of
   their Jinja parts (tags, expressions, comments, trans blocks) and parsed as HTML; any text
   node or visible attribute (`placeholder`, `title`, `alt`, `aria-label`, a button's `value`)
   left with a letter in it is a text nobody can translate.
2. Every text marked in the templates, in `idservice/web/*.py` and in the offline office tool
   (`idservice/office/`, `idservice/cli/office.py`) has a Vietnamese translation (not empty, not
   fuzzy) in `idservice/locale/vi/LC_MESSAGES/messages.po`, and the same placeholders.
3. The catalogues compile (the service compiles them at start) and the pages use them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from idservice.web import pages
from idservice.web.i18n import translations

WEB = Path(__file__).resolve().parents[3] / "idservice" / "web"
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
_VISIBLE_ATTRS = {"placeholder", "title", "alt", "aria-label"}
_JINJA = [
    re.compile(r"{%-?\s*trans\b.*?%}.*?{%-?\s*endtrans\s*-?%}", re.S),  # translated blocks
    re.compile(r"{#.*?#}", re.S),
    re.compile(r"{%.*?%}", re.S),
    re.compile(r"{{.*?}}", re.S),
]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        values = dict(attrs)
        for name, value in attrs:
            visible = name in _VISIBLE_ATTRS or (
                name == "value" and values.get("type") in ("submit", "button", "reset"))
            if visible and value and re.search(r"[^\W\d_]", value):
                self.found.append(f"{tag}[{name}]={value!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and re.search(r"[^\W\d_]", data):
            self.found.append(data.strip())


def untranslated(source: str) -> list[str]:
    for pattern in _JINJA:
        source = pattern.sub(" ", source)
    parser = _Text()
    parser.feed(source)
    return parser.found


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_template_has_no_text_outside_the_catalogue(template: Path) -> None:
    assert untranslated(template.read_text("utf-8")) == []


def test_checker_finds_raw_text_and_attributes() -> None:
    source = ('<p>{{ _("Fine") }} Not fine</p><input placeholder="Name">'
              '<button title="{{ _(\'ok\') }}">{% trans %}Also fine{% endtrans %}</button>'
              '<span>{{ x }} · 12/05 →</span>')
    assert untranslated(source) == ["Not fine", "input[placeholder]='Name'"]


def _marked() -> set[str]:
    keywords = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
    found: set[str] = set()
    method_map = [("idservice/web/templates/**.html", "jinja2"), ("idservice/web/**.py", "python"),
                  ("idservice/office/**.py", "python"), ("idservice/cli/office.py", "python")]
    options = {"idservice/web/templates/**.html": {"extensions": "jinja2.ext.i18n",
                                                   "trim_blocks": "True",
                                                   "lstrip_blocks": "True"}}
    root = WEB.parents[1]
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(root), method_map=method_map, options_map=options, keywords=keywords):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_marked_text_has_a_vietnamese_translation() -> None:
    with (WEB.parent / "locale" / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="vi")
    translated = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if all(strings):
            translated[key] = strings
    marked = _marked()
    assert len(marked) > 150
    missing = sorted(m for m in marked if m not in translated)
    assert missing == []
    for key, strings in translated.items():
        wanted = set(re.findall(r"%\(\w+\)s|\{\w+\}", key))
        for string in strings:
            assert set(re.findall(r"%\(\w+\)s|\{\w+\}", string)) == wanted, key


def test_pages_render_in_vietnamese_by_default_and_english_on_request() -> None:
    context = {"title": "x", "message": "y", "back": None, "here": "/ui/nope"}
    vi = pages.render("error.html", context).body.decode()
    en = pages.render("error.html", context, locale="en").body.decode()
    assert '<html lang="vi">' in vi and "Về trang đầu" in vi and "Sổ định danh cá nhân" in vi
    assert '<html lang="en">' in en and "Go to the start page" in en
    assert translations("vi").gettext("Log out") == "Đăng xuất"

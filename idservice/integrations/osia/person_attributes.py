"""OSIA Person Attributes of a record (contract 10), for Data Access read, match and verify.

`PERSON_ATTRIBUTES` says, per OSIA attribute name, how its value is taken from a person record
(the view `persons.views.person_view` returns) and how a given value compares with it. Values
are JSON strings (so they satisfy the spec's `Attributes`). Names follow the Vietnamese order:
`lastName` is the first word of the full name, `firstName` the last, `middleName` the rest.
Name comparisons are those of our own verification (`persons.names.same_name`: case and
spacing ignored, diacritics significant): match and verify reveal nothing more than it does.
Pure: no I/O.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from idservice.integrations.osia.codes import OsiaCode, OsiaError
from idservice.persons.names import same_name

__all__ = [
    "ATTRIBUTE_NAMES",
    "PERSON_ATTRIBUTES",
    "Expression",
    "PersonAttribute",
    "check_match_request",
    "evaluate",
    "match",
    "parse_expressions",
    "read_values",
    "select",
]

Kind = Literal["name", "date", "gender", "exact"]
Getter = Callable[[Mapping[str, Any]], str | None]


def _child(key: str) -> Getter:
    return lambda view: view.get("child", {}).get(key)


def _death(key: str) -> Getter:
    """Death registration (contract 9) records `death`; absent until a death is registered."""
    return lambda view: (view.get("death") or {}).get(key)


def _words(view: Mapping[str, Any]) -> list[str]:
    return str(view["child"]["full_name"]).split()


def _middle(view: Mapping[str, Any]) -> str | None:
    words = _words(view)
    return " ".join(words[1:-1]) or None


@dataclass(frozen=True, slots=True)
class PersonAttribute:
    name: str
    get: Getter
    kind: Kind


PERSON_ATTRIBUTES: tuple[PersonAttribute, ...] = (
    PersonAttribute("uin", lambda view: view["pin"], "exact"),
    PersonAttribute("firstName", lambda view: _words(view)[-1], "name"),
    PersonAttribute("lastName", lambda view: _words(view)[0], "name"),
    PersonAttribute("middleName", _middle, "name"),
    PersonAttribute("fullName", _child("full_name"), "name"),
    PersonAttribute("dateOfBirth", _child("date_of_birth"), "date"),
    PersonAttribute("placeOfBirth", _child("place_of_birth"), "name"),
    PersonAttribute("gender", lambda view: {"M": "1", "F": "2"}[view["child"]["sex"]], "gender"),
    PersonAttribute("dateOfDeath", _death("date_of_death"), "date"),
    PersonAttribute("placeOfDeath", _death("place_of_death"), "name"),
    PersonAttribute("status", lambda view: view["status"], "exact"),
)
_BY_NAME = {a.name: a for a in PERSON_ATTRIBUTES}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(_BY_NAME)

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _unknown(name: object) -> OsiaError:
    shown = repr(name[:64]) if isinstance(name, str) else "of a non-string type"
    return OsiaError(OsiaCode.UNKNOWN_ATTRIBUTE,
                     f"unknown attribute name {shown}; known names: {', '.join(_BY_NAME)}")


def select(names: Sequence[str]) -> list[PersonAttribute]:
    """The attributes asked for, in order, duplicates once; an unknown name refuses all."""
    chosen: dict[str, PersonAttribute] = {}
    for name in names:
        if name not in _BY_NAME:
            raise _unknown(name)
        chosen.setdefault(name, _BY_NAME[name])
    return list(chosen.values())


def read_values(view: Mapping[str, Any],
                attributes: Sequence[PersonAttribute]) -> dict[str, Any]:
    """readPersonAttributes' 200: a string per attribute, or an `Error` where the record has
    no value (the spec's per-attribute error)."""
    values: dict[str, Any] = {}
    for attribute in attributes:
        value = attribute.get(view)
        values[attribute.name] = value if value is not None else {
            "code": int(OsiaCode.NO_VALUE), "message": "no value recorded for this attribute"}
    return values


def _given(attribute: PersonAttribute, value: object) -> Any:
    """A caller's value in comparable form; a value the attribute can never have is 400."""
    bad = OsiaError(OsiaCode.INVALID_ATTRIBUTE_VALUE,
                    f"{attribute.name}: {_EXPECTED[attribute.kind]}")
    if isinstance(value, bool):
        raise bad
    if attribute.kind == "gender":
        if isinstance(value, int | str) and str(value).strip() in ("1", "2"):
            return str(value).strip()
        raise bad
    if not isinstance(value, str):
        raise bad
    if attribute.kind == "date":
        try:
            if not _DATE.fullmatch(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise bad from None
    return value


_EXPECTED: dict[Kind, str] = {
    "name": "must be a string", "exact": "must be a string",
    "date": "must be a date YYYY-MM-DD", "gender": "must be 1 (male) or 2 (female)"}


def _compare(attribute: PersonAttribute, recorded: str, op: str, given: Any) -> bool:
    if attribute.kind == "name":
        return same_name(recorded, given)
    if attribute.kind == "date":
        return _OPERATORS[op](date.fromisoformat(recorded), given)
    return bool(recorded == given)


def match(view: Mapping[str, Any], given: Mapping[str, object]) -> list[dict[str, Any]]:
    """matchPersonAttributes' 200: one `{attributeName, errorCode}` per attribute that does not
    match (0: the record has no value for it, 1: it has another), in the order given."""
    checks = [(_BY_NAME[name], value) for name, value in given.items()]
    errors: list[dict[str, Any]] = []
    for attribute, value in checks:
        recorded = attribute.get(view)
        if recorded is None:
            errors.append({"attributeName": attribute.name, "errorCode": 0})
        elif not _compare(attribute, recorded, "=", value):
            errors.append({"attributeName": attribute.name, "errorCode": 1})
    return errors


def check_match_request(given: Mapping[str, object]) -> dict[str, Any]:
    """The match body checked before any I/O: known names, possible values."""
    checked: dict[str, Any] = {}
    for name, value in given.items():
        if name not in _BY_NAME:
            raise _unknown(name)
        checked[name] = _given(_BY_NAME[name], value)
    return checked


@dataclass(frozen=True, slots=True)
class Expression:
    attribute: PersonAttribute
    operator: str
    value: Any


def parse_expressions(body: object) -> list[Expression]:
    """verifyPersonAttributes' body (`Expressions`), checked before any I/O."""
    if not isinstance(body, list):
        raise OsiaError(OsiaCode.MALFORMED_REQUEST, "body must be a JSON array of expressions")
    parsed: list[Expression] = []
    for index, item in enumerate(body):
        if not isinstance(item, dict) or set(item) != {"attributeName", "operator", "value"}:
            raise OsiaError(OsiaCode.MALFORMED_REQUEST,
                            f"expression {index} must be an object with exactly "
                            f"attributeName, operator and value")
        name, op = item["attributeName"], item["operator"]
        if not isinstance(name, str) or name not in _BY_NAME:
            raise _unknown(name)
        attribute = _BY_NAME[name]
        if op not in _OPERATORS:
            raise OsiaError(OsiaCode.MALFORMED_REQUEST,
                            f"expression {index}: operator must be one of "
                            f"{', '.join(_OPERATORS)}")
        if op != "=" and attribute.kind != "date":
            raise OsiaError(OsiaCode.OPERATOR_NOT_SUPPORTED,
                            f"{name} can only be compared with '='")
        parsed.append(Expression(attribute, op, _given(attribute, item["value"])))
    return parsed


def evaluate(view: Mapping[str, Any], expressions: Sequence[Expression]) -> bool:
    """True when every expression holds; an attribute the record lacks makes it false."""
    result = True
    for e in expressions:  # evaluate all: the time taken does not say which one failed
        recorded = e.attribute.get(view)
        result = (recorded is not None and _compare(e.attribute, recorded, e.operator, e.value)
                  ) and result
    return result

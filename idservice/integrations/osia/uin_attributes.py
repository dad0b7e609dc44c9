"""OSIA UIN attributes -> a `POST /v1/pins` body (contract 10), the mapping as data.

`UIN_ATTRIBUTES` says, per flat OSIA attribute, where its value goes in our `IssueRequest`,
how its JSON value is read (OSIA's `Attributes` allow string, integer, number, boolean) and the
OSIA error code of its rules. Only the reading of the value happens here; every rule of the
registration itself (lengths, dates, province, PIN format) is the request model's and
`persons/rules.py`'s, whose errors name our field, which `attribute_for_field` turns back into
the attribute. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from idservice.integrations.osia.codes import OsiaCode, OsiaError

__all__ = [
    "NAME_PARTS",
    "UIN_ATTRIBUTES",
    "UinAttribute",
    "attribute_for_field",
    "osia_message",
    "to_issue_body",
]

Reader = Callable[[object], object]


class _BadValue(ValueError):
    pass


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise _BadValue("must be a string")
    return value


def _text_or_integer(value: object) -> object:
    """Registration numbers and books are often numbered: 125 is read as "125"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _gender(value: object) -> object:
    """ISO/IEC 5218: 1 male, 2 female, as an integer or a string (0 and 9 have no PIN digit)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _BadValue("must be 1 (male) or 2 (female), ISO/IEC 5218")
    sex = {"1": "M", "2": "F"}.get(str(value).strip())
    if sex is None:
        raise _BadValue("must be 1 (male) or 2 (female), ISO/IEC 5218")
    return sex


def _name_list(value: object) -> object:
    """`otherNames`: names separated by `;` (empty parts dropped)."""
    return [part.strip() for part in str(_text(value)).split(";") if part.strip()]


@dataclass(frozen=True, slots=True)
class UinAttribute:
    name: str  # the OSIA attribute
    path: tuple[str, ...]  # where its value goes in the IssueRequest body
    read: Reader  # JSON value -> the body's value (raises _BadValue)
    code: OsiaCode | int  # the OSIA code of every rule of this attribute


# Order: the order of the docs' table. Codes 1201.. are stable; never renumber.
UIN_ATTRIBUTES: tuple[UinAttribute, ...] = (
    UinAttribute("registrationAuthority", ("registration", "authority"), _text, 1201),
    UinAttribute("registrationNumber", ("registration", "number"), _text_or_integer, 1202),
    UinAttribute("registrationBook", ("registration", "book"), _text_or_integer, 1203),
    UinAttribute("registrationDate", ("registration", "registered_on"), _text, 1204),
    UinAttribute("registrationProvince", ("registration", "province_code"), _text, 1205),
    UinAttribute("fullName", ("child", "full_name"), _text, 1206),
    UinAttribute("lastName", ("child", "full_name"), _text, 1206),
    UinAttribute("middleName", ("child", "full_name"), _text, 1206),
    UinAttribute("firstName", ("child", "full_name"), _text, 1206),
    UinAttribute("otherNames", ("child", "other_names"), _name_list, 1207),
    UinAttribute("gender", ("child", "sex"), _gender, 1208),
    UinAttribute("dateOfBirth", ("child", "date_of_birth"), _text, 1209),
    UinAttribute("placeOfBirth", ("child", "place_of_birth"), _text, 1210),
    UinAttribute("homeTown", ("child", "home_town"), _text, 1211),
    UinAttribute("ethnicity", ("child", "ethnicity"), _text, 1212),
    UinAttribute("nationality", ("child", "nationality"), _text, 1213),
    UinAttribute("fatherFullName", ("father", "full_name"), _text, 1214),
    UinAttribute("fatherUin", ("father", "pin"), _text, 1215),
    UinAttribute("motherFullName", ("mother", "full_name"), _text, 1216),
    UinAttribute("motherUin", ("mother", "pin"), _text, 1217),
)

_BY_NAME: dict[str, UinAttribute] = {a.name: a for a in UIN_ATTRIBUTES}
# Vietnamese order: family name first (contract 10).
NAME_PARTS: tuple[str, ...] = ("lastName", "middleName", "firstName")
# Our field -> the attribute named in errors (for the name parts: fullName).
_BY_FIELD: dict[str, UinAttribute] = {}
for _attribute in UIN_ATTRIBUTES:
    _BY_FIELD.setdefault(".".join(_attribute.path), _attribute)


def attribute_for_field(field: str | None) -> UinAttribute | None:
    """The attribute a problem's `field` (e.g. `child.other_names.2`) comes from, if any."""
    while field:
        if field in _BY_FIELD:
            return _BY_FIELD[field]
        field = field.rpartition(".")[0]
    return None


def osia_message(message: str) -> str:
    """A message of our rules with our field names replaced by the attributes' names."""
    for field in sorted(_BY_FIELD, key=len, reverse=True):
        message = message.replace(field, _BY_FIELD[field].name)
    for leaf in ("date_of_birth", "registered_on", "province_code"):  # unambiguous bare names
        message = message.replace(leaf, _BY_FIELD[_leaf_path(leaf)].name)
    return message


def _leaf_path(leaf: str) -> str:
    return next(f for f in _BY_FIELD if f.endswith("." + leaf))


def _refuse(attribute: UinAttribute, message: str) -> OsiaError:
    return OsiaError(attribute.code, f"{attribute.name} {message}", field=attribute.name)


def _full_name(attributes: Mapping[str, object]) -> object | None:
    parts = [p for p in NAME_PARTS if p in attributes]
    if "fullName" in attributes:
        if parts:
            raise _refuse(_BY_NAME["fullName"],
                          f"must be given alone, or as lastName, middleName and firstName; "
                          f"not with {', '.join(parts)}")
        return _BY_NAME["fullName"].read(attributes["fullName"])
    if not parts:
        return None
    for required in ("lastName", "firstName"):
        if required not in attributes:
            raise _refuse(_BY_NAME[required],
                          "is required with the other name parts (or give fullName)")
    words = [str(_BY_NAME[p].read(attributes[p])).strip() for p in parts]
    for part, word in zip(parts, words, strict=True):
        if not word and part != "middleName":
            raise _refuse(_BY_NAME[part], "must not be empty")
    return " ".join(w for w in words if w)


def to_issue_body(attributes: Mapping[str, object], *,
                  default_province: str | None) -> dict[str, Any]:
    """The `POST /v1/pins` body for these attributes. Raises `OsiaError` for an unknown
    attribute or a value of the wrong JSON type; what is missing or breaks a rule is left to
    the request model (so the rules stay in one place)."""
    unknown = sorted(name for name in attributes if name not in _BY_NAME)
    if unknown:
        shown = ", ".join(repr(n[:64]) for n in unknown[:5])
        raise OsiaError(OsiaCode.UNKNOWN_ATTRIBUTE,
                        f"unknown attribute name {shown}; known names: "
                        f"{', '.join(_BY_NAME)}", field=unknown[0][:64])
    body: dict[str, Any] = {"registration": {}, "child": {}}
    try:
        full_name = _full_name(attributes)
    except _BadValue as exc:
        raise _refuse(_BY_NAME["fullName"], str(exc)) from None
    if full_name is not None:
        body["child"]["full_name"] = full_name
    for name, value in attributes.items():
        attribute = _BY_NAME[name]
        if name == "fullName" or name in NAME_PARTS:
            continue
        try:
            converted = attribute.read(value)
        except _BadValue as exc:
            raise _refuse(attribute, str(exc)) from None
        section, key = attribute.path
        body.setdefault(section, {})[key] = converted
    if "province_code" not in body["registration"] and default_province is not None:
        body["registration"]["province_code"] = default_province
    return body

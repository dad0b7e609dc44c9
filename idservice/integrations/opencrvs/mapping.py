"""An OpenCRVS birth declaration -> a `POST /v1/pins` body (contract 10), the mapping as data.

Field ids are those of the v1.9 birth form (opencrvs-countryconfig v1.9,
src/form/v2/birth/forms/pages/child.ts, mother.ts, father.ts); name values are
`{firstname, surname, middlename}` and addresses `{country, addressType, administrativeArea,
streetLevelDetails}` (opencrvs-core commons/src/events/CompositeFieldValue.ts). The standard
form has no home town, ethnicity or nationality of the child: a country configuration that
needs them adds the custom fields named in `CHILD_FIELDS` (documented defaults otherwise).
Only the reading of values happens here; every rule of the registration is the request
model's and `persons/rules.py`'s, whose errors `opencrvs_message` words with these field ids.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from idservice.integrations.opencrvs.errors import OpenCrvsRefusal

__all__ = ["CHILD_FIELDS", "PARENT_FIELDS", "REGISTRATION_SOURCES", "opencrvs_message",
           "to_issue_body"]

Reader = Callable[[str, object], object]


def _text(field: str, value: object) -> object:
    if not isinstance(value, str):
        raise OpenCrvsRefusal(f"{field} must be text")
    return value


def _name(field: str, value: object) -> object:
    """`{surname, middlename, firstname}` -> "surname middlename firstname" (family name
    first, as Vietnamese names are written)."""
    if not isinstance(value, dict) or not all(
            isinstance(value.get(k, ""), str) for k in ("surname", "middlename", "firstname")):
        raise OpenCrvsRefusal(f"{field} must be a name {{surname, middlename, firstname}}")
    parts = [str(value.get(k) or "").strip() for k in ("surname", "middlename", "firstname")]
    return " ".join(p for p in parts if p)


def _gender(field: str, value: object) -> object:
    sex = {"male": "M", "female": "F"}.get(value) if isinstance(value, str) else None
    if sex is None:
        raise OpenCrvsRefusal(f"{field} must be male or female: a PIN encodes the sex "
                              f"(the record says {str(value)[:32]!r})")
    return sex


def _country(field: str, value: object) -> object:
    """ISO 3166 alpha-2 as is; Vietnam's alpha-3 `VNM` (the form's country codes) as `VN`."""
    if not isinstance(value, str):
        raise OpenCrvsRefusal(f"{field} must be a country code")
    return {"VNM": "VN"}.get(value, value)


def _address_text(value: Mapping[str, Any]) -> str:
    """Every non-empty text of an address, street-level details first, in the order sent."""
    details = value.get("streetLevelDetails")
    parts = [v for v in (details.values() if isinstance(details, dict) else ())
             if isinstance(v, str) and v.strip()]
    parts += [v for k, v in value.items()
              if k not in ("addressType", "urbanOrRural", "streetLevelDetails")
              and isinstance(v, str) and v.strip()]
    return ", ".join(p.strip() for p in parts)


def _place_of_birth(declaration: Mapping[str, Any]) -> object | None:
    """`child.placeOfBirthName` (custom) if given; else the health facility's location id, or
    the text of the private-home / other address, as `child.placeOfBirth` says."""
    if "child.placeOfBirthName" in declaration:
        return _text("child.placeOfBirthName", declaration["child.placeOfBirthName"])
    kind = declaration.get("child.placeOfBirth")
    source = {"HEALTH_FACILITY": "child.birthLocation",
              "PRIVATE_HOME": "child.birthLocation.privateHome",
              "OTHER": "child.birthLocation.other"}.get(kind) if isinstance(kind, str) else None
    value = declaration.get(source) if source else None
    if isinstance(value, dict):
        return _address_text(value) or None
    return _text(source or "", value) if value is not None else None


@dataclass(frozen=True, slots=True)
class FieldMap:
    field: str  # the OpenCRVS declaration field id
    target: str  # our IssueRequest field (section.key)
    read: Reader
    required: bool = False
    default: object = None


CHILD_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("child.name", "child.full_name", _name, required=True),
    FieldMap("child.gender", "child.sex", _gender, required=True),
    FieldMap("child.dob", "child.date_of_birth", _text, required=True),
    # not in the standard form: custom fields a Vietnamese configuration adds
    FieldMap("child.homeTown", "child.home_town", _text),
    FieldMap("child.ethnicity", "child.ethnicity", _text),
    FieldMap("child.nationality", "child.nationality", _country, default="VN"),
)
# Per parent (`mother.`, `father.`): skipped when `<parent>.detailsNotAvailable` is true or no
# name was declared. `nid` is a PIN (a Vietnamese citizen's ID number is the PIN), used when
# `<parent>.idType` is NATIONAL_ID or not given.
PARENT_FIELDS: tuple[FieldMap, ...] = (
    FieldMap("name", "full_name", _name, required=True),
    FieldMap("nid", "pin", _text),
    FieldMap("nationality", "nationality", _country),
)
# Where the registration's fields come from (for the docs and for error messages).
REGISTRATION_SOURCES: dict[str, str] = {
    "registration.province_code": "the client's jurisdiction",
    "registration.authority": "the REGISTER action's createdAtLocation",
    "registration.number": "the event id",
    "registration.registered_on": "the REGISTER action's createdAt date",
    "child.place_of_birth": "child.placeOfBirthName / child.birthLocation*",
}


def _parent(declaration: Mapping[str, Any], parent: str) -> dict[str, Any] | None:
    if declaration.get(f"{parent}.detailsNotAvailable") is True:
        return None
    if f"{parent}.name" not in declaration:
        return None
    out: dict[str, Any] = {}
    for m in PARENT_FIELDS:
        field = f"{parent}.{m.field}"
        if field not in declaration:
            continue
        if m.field == "nid" and declaration.get(f"{parent}.idType") not in (None, "NATIONAL_ID"):
            continue
        value = m.read(field, declaration[field])
        if m.field == "nationality" and not (isinstance(value, str) and len(value) == 2):
            continue  # another country's alpha-3 code: not recorded (optional for a parent)
        out[m.target] = value
    return out if out.get("full_name") else None


def to_issue_body(declaration: Mapping[str, Any], *, province_code: str, authority: str,
                  number: str, registered_on: date) -> dict[str, Any]:
    child: dict[str, Any] = {}
    for m in CHILD_FIELDS:
        if m.field in declaration:
            child[m.target.partition(".")[2]] = m.read(m.field, declaration[m.field])
        elif m.required:
            raise OpenCrvsRefusal(f"{m.field} is required to issue a PIN; complete the "
                                  f"declaration and register again")
        elif m.default is not None:
            child[m.target.partition(".")[2]] = m.default
    place = _place_of_birth(declaration)
    if place is not None:
        child["place_of_birth"] = place
    return {
        "registration": {"authority": authority, "number": number,
                         "registered_on": registered_on.isoformat(),
                         "province_code": province_code},
        "child": child,
        "father": _parent(declaration, "father"),
        "mother": _parent(declaration, "mother"),
    }


_NAMES: dict[str, str] = {
    **{m.target: m.field for m in CHILD_FIELDS},
    **{f"{p}.{m.target}": f"{p}.{m.field}" for p in ("mother", "father") for m in PARENT_FIELDS},
    **REGISTRATION_SOURCES,
}


def opencrvs_message(message: str) -> str:
    """A message of our rules with our field names replaced by their OpenCRVS sources."""
    for ours in sorted(_NAMES, key=len, reverse=True):
        message = message.replace(ours, _NAMES[ours])
    for leaf, ours in (("date_of_birth", "child.date_of_birth"),
                       ("registered_on", "registration.registered_on")):
        message = message.replace(leaf, _NAMES[ours])
    return message

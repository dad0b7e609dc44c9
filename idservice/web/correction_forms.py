"""The correction forms (issue 15, item 3): one form per kind of change, read into the
`changes` of `POST /v1/persons/{pin}/corrections` (contract 4 and 7). Pure.

Only fields whose value differs from the record are sent, so a correction names exactly what
it changes; a parent is sent whole (name, PIN, nationality; an empty PIN or nationality as an
explicit null), which means the same whether corrections replace a parent or merge it field by
field. A change of sex or of birth year changes what the PIN encodes (G and YY): the service
then issues a new PIN and cancels the old one, and the confirmation page says so first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from idservice.errors import InvalidField
from idservice.persons.models import CorrectionRequest
from idservice.web.formats import parse_day, show_date
from idservice.web.i18n import N_

__all__ = ["FIELD_LABELS", "KINDS", "Kind", "changes_from_form", "form_values",
           "validated", "will_reissue"]

PARENTS = ("father", "mother")


@dataclass(frozen=True)
class Kind:
    label: str
    fields: tuple[str, ...]  # child fields, or () for a parent form

    @property
    def parent(self) -> bool:
        return not self.fields


KINDS: dict[str, Kind] = {
    "name": Kind(N_("Name"), ("full_name", "other_names")),
    "birth": Kind(N_("Date and place of birth"), ("date_of_birth", "place_of_birth")),
    "sex": Kind(N_("Sex"), ("sex",)),
    "origin": Kind(N_("Home town, ethnicity, nationality"),
                   ("home_town", "ethnicity", "nationality")),
    "father": Kind(N_("Father"), ()),
    "mother": Kind(N_("Mother"), ()),
}

FIELD_LABELS: dict[str, str] = {
    "full_name": N_("Full name"), "other_names": N_("Other names"), "sex": N_("Sex"),
    "date_of_birth": N_("Date of birth"), "place_of_birth": N_("Place of birth"),
    "home_town": N_("Home town"), "ethnicity": N_("Ethnicity"),
    "nationality": N_("Nationality"), "father": N_("Father"), "mother": N_("Mother"),
    "father.full_name": N_("Father's full name"), "father.pin": N_("Father's PIN"),
    "father.nationality": N_("Father's nationality"),
    "mother.full_name": N_("Mother's full name"), "mother.pin": N_("Mother's PIN"),
    "mother.nationality": N_("Mother's nationality"),
    # contract 9: a death registered, or undone (the correction history shows both)
    "status": N_("Status"), "death": N_("Death registration"),
}


def _text(form: dict[str, str], name: str) -> str | None:
    value = " ".join(form.get(name, "").split())
    return value or None


def form_values(kind: str, record: dict[str, Any]) -> dict[str, str]:
    """The form's fields filled with the record's current values."""
    child = record["child"]
    if kind in PARENTS:
        parent = record.get(kind) or {}
        return {"full_name": parent.get("full_name") or "", "pin": parent.get("pin") or "",
                "nationality": parent.get("nationality") or "", "remove": ""}
    values = {}
    for name in KINDS[kind].fields:
        value = child.get(name)
        if name == "other_names":
            values[name] = "; ".join(value or [])
        elif name == "date_of_birth":
            values[name] = show_date(value)
        else:
            values[name] = value or ""
    return values


def _child_value(name: str, form: dict[str, str]) -> Any:
    if name == "other_names":
        return [n for n in (" ".join(p.split()) for p in form.get(name, "").split(";")) if n]
    if name == "date_of_birth":
        text = _text(form, name)
        try:
            return parse_day(text or "").isoformat()
        except ValueError:
            raise InvalidField("must be a date dd/mm/yyyy", field="date_of_birth") from None
    if name == "nationality":
        text = _text(form, name)
        return text.upper() if text else text
    if name == "full_name":
        return _text(form, name) or ""
    return _text(form, name)


def changes_from_form(kind: str, form: dict[str, str], record: dict[str, Any]) -> dict[str, Any]:
    """The `changes` object for what the officer typed in the form of `kind`."""
    if kind in PARENTS:
        current = record.get(kind)
        if form.get("remove"):
            return {kind: None} if current is not None else {}
        new = {"full_name": _text(form, "full_name") or "", "pin": _text(form, "pin"),
               "nationality": (_text(form, "nationality") or "").upper() or None}
        if current is None and not any(new.values()):
            return {}
        old = {k: (current or {}).get(k) for k in new}
        return {kind: new} if new != old else {}
    child = record["child"]
    changes: dict[str, Any] = {}
    for name in KINDS[kind].fields:
        value = _child_value(name, form)
        before = child.get(name)
        if name == "other_names":
            before = before or []
        if value != before:
            changes[name] = value
    return changes


def validated(changes: dict[str, Any], reason: str | None) -> CorrectionRequest:
    """The correction as the API would parse it; `InvalidField` names the field at fault."""
    reason = " ".join((reason or "").split())
    if not changes:
        raise InvalidField("nothing to change", field="changes")
    if not reason:
        raise InvalidField("a reason is required", field="reason")
    try:
        return CorrectionRequest.model_validate({"changes": changes, "reason": reason})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        field = "reason" if loc.startswith("reason") else loc
        raise InvalidField(str(first["msg"]), field=field) from None


def will_reissue(changes: dict[str, Any], record: dict[str, Any]) -> bool:
    """True when the correction changes what the PIN encodes: sex, or the year of birth."""
    child = record["child"]
    if "sex" in changes and changes["sex"] != child["sex"]:
        return True
    new_dob = changes.get("date_of_birth")
    return isinstance(new_dob, str) and new_dob[:4] != str(child["date_of_birth"])[:4]

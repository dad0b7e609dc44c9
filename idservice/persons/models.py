"""Request and response bodies of the person endpoints (contract section 4).

Parsed in pydantic's strict JSON mode: a number is not a string, a date is an ISO `YYYY-MM-DD`
string, unknown fields are refused. Rules that need more than one field (dates against each
other, the province valid on the registration date) live in `persons/rules.py`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from idservice.persons.names import check_text
from idservice.pin.format import is_well_formed

__all__ = [
    "Child",
    "CorrectionChanges",
    "CorrectionRequest",
    "DeathRegistration",
    "DeathRequest",
    "DuplicateOverride",
    "IssueRequest",
    "Parent",
    "ParentChanges",
    "Registration",
    "VerifyRequest",
]

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _pin(value: str) -> str:
    if not is_well_formed(value):
        raise ValueError("must be a well-formed PIN: 12 ASCII digits")
    return value


def _iso_date(value: object) -> object:
    """Only `YYYY-MM-DD`: pydantic would also read a digit string as a Unix timestamp."""
    if not isinstance(value, str):
        return value  # a date object (Python callers); any other type fails strict `date`
    if not _DATE.fullmatch(value):
        raise ValueError("must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a real calendar date YYYY-MM-DD") from None


def _short(value: str) -> str:
    return check_text(value, max_length=200)


Name = Annotated[str, AfterValidator(check_text)]
Text = Annotated[str, AfterValidator(_short)]
PinStr = Annotated[str, AfterValidator(_pin)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
IsoDate = Annotated[date, BeforeValidator(_iso_date), Field(strict=True)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Registration(_Body):
    authority: Text
    number: Text
    book: Text | None = None
    registered_on: IsoDate
    province_code: Annotated[str, Field(pattern=r"^[0-9]{3}$")]


class Child(_Body):
    full_name: Name
    other_names: Annotated[list[Name], Field(max_length=20)] = []
    sex: Literal["M", "F"]
    date_of_birth: IsoDate
    place_of_birth: Text | None = None
    home_town: Text | None = None
    ethnicity: Text | None = None
    nationality: Country = "VN"


class Parent(_Body):
    full_name: Name
    pin: PinStr | None = None
    nationality: Country | None = None


class DuplicateOverride(_Body):
    """Contract 9: issue although the child matches an existing person, saying why."""

    reason: Annotated[str, AfterValidator(lambda v: check_text(v, max_length=1000))]


class IssueRequest(_Body):
    registration: Registration
    child: Child
    father: Parent | None = None
    mother: Parent | None = None
    # Not part of the record nor of the registration's digest: a replay with or without it
    # is the same registration.
    duplicate_override: DuplicateOverride | None = None

    def record(self) -> dict[str, Any]:
        """The record as stored (JSON types), without the override."""
        return self.model_dump(mode="json", exclude={"duplicate_override"})


class VerifyRequest(_Body):
    pin: Annotated[str, Field(max_length=64)]
    full_name: Annotated[str, Field(max_length=1000)]
    date_of_birth: IsoDate


class ParentChanges(_Body):
    """The fields of a parent a correction changes (contract 7): merged into the parent as
    recorded, a field not named stays as it is, an explicit null clears it. A parent has a
    name, so `full_name` cannot be cleared."""

    full_name: Name | None = None
    pin: PinStr | None = None
    nationality: Country | None = None

    @field_validator("full_name", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null: a parent has a name (to remove the parent, "
                             "send the parent itself as null)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> ParentChanges:
        if not self.model_fields_set:
            raise ValueError("name at least one field of the parent to change")
        return self


class CorrectionChanges(_Body):
    """Fields of the child (flat) and of the parents (`father`, `mother`: merged field by
    field, or null to remove that parent) that a correction changes (contract 7)."""

    full_name: Name | None = None
    other_names: Annotated[list[Name], Field(max_length=20)] | None = None
    sex: Literal["M", "F"] | None = None
    date_of_birth: IsoDate | None = None
    place_of_birth: Text | None = None
    home_town: Text | None = None
    ethnicity: Text | None = None
    nationality: Country | None = None
    father: ParentChanges | None = None
    mother: ParentChanges | None = None
    # Contract 9: `"status": "active"` undoes an erroneous death registration (alone).
    status: Literal["active"] | None = None

    @field_validator("full_name", "other_names", "sex", "date_of_birth", "nationality",
                     "status", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # An absent field means "unchanged"; an explicit null would blank a field every
        # record must have, and must be refused on that field (not later as `changes`).
        if value is None:
            raise ValueError("must not be null")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> CorrectionChanges:
        if not self.model_fields_set:
            raise ValueError("at least one field must change")
        if "status" in self.model_fields_set and len(self.model_fields_set) > 1:
            raise ValueError("undo a death registration (status) in a correction of its own")
        return self

    def as_dict(self) -> dict[str, Any]:
        """Only the fields the caller sent, in parents too (null: clear that field)."""
        return self.model_dump(mode="json", exclude_unset=True)


class CorrectionRequest(_Body):
    changes: CorrectionChanges
    reason: Annotated[str, AfterValidator(lambda v: check_text(v, max_length=1000))]


class DeathRegistration(_Body):
    authority: Text
    number: Text
    registered_on: IsoDate
    province_code: Annotated[str, Field(pattern=r"^[0-9]{3}$")]


class DeathRequest(_Body):
    """`POST /v1/persons/{pin}/death` (contract 9)."""

    registration: DeathRegistration
    date_of_death: IsoDate
    place_of_death: Text | None = None

"""Rules of a birth registration that span fields (contract section 4).

`date_of_birth <= registered_on <= today`, birth year within the PIN's centuries, and the
province code valid on the registration date (codes changed on 2025-07-01).
"""

from __future__ import annotations

from datetime import date

from idservice.errors import InvalidField
from idservice.persons.models import Child, IssueRequest
from idservice.pin.format import FIRST_BIRTH_YEAR, LAST_BIRTH_YEAR
from idservice.pin.provinces import ProvinceNotValidOn, ProvinceTable, UnknownProvince

__all__ = ["check_birth_year", "check_child", "check_issue", "check_province_exists"]


def check_province_exists(table: ProvinceTable, code: str, field: str) -> None:
    """A code that never was a province is a mistake in the request (422 invalid_field), and is
    answered as such before any jurisdiction check (403 is for a real province outside it)."""
    if not table.exists(code):
        raise InvalidField(f"{UnknownProvince(code)}: use the 3-digit code of the province "
                           "where the birth is registered", field=field)


def check_birth_year(dob: date, *, field: str) -> None:
    """The years a PIN can encode (its G digit): a rule of the date alone."""
    if dob.year < FIRST_BIRTH_YEAR or dob.year > LAST_BIRTH_YEAR:
        raise InvalidField(
            f"birth year must be between {FIRST_BIRTH_YEAR} and {LAST_BIRTH_YEAR}", field=field)


def check_child(child: Child, registered_on: date, *, prefix: str = "child") -> None:
    dob = child.date_of_birth
    check_birth_year(dob, field=f"{prefix}.date_of_birth")
    if dob > registered_on:
        raise InvalidField(
            "date_of_birth must not be after registration.registered_on",
            field=f"{prefix}.date_of_birth",
        )


def check_issue(req: IssueRequest, table: ProvinceTable, today: date) -> None:
    reg = req.registration
    if reg.registered_on > today:
        raise InvalidField("registered_on must not be in the future",
                           field="registration.registered_on")
    check_child(req.child, reg.registered_on)
    try:
        table.valid_on(reg.province_code, reg.registered_on)
    except (UnknownProvince, ProvinceNotValidOn) as exc:
        raise InvalidField(str(exc), field="registration.province_code") from exc

"""Who may see whose access report (contract section 11), and the identifiers' formats. No I/O.

The portal sends, for the citizen it authenticated, `X-Road-UserId: VN<PIN>` (the X-Road
convention: country code, then the personal code) and asks about `userCode` (the data
subject's PIN, bare or with the same `VN` prefix). Allowed when the user is the subject, or the
mother or father named by PIN on the subject's record while the subject is under 18 on the day
of the request (the Vietnamese civil date). Everything else is 403, including a subject PIN
that has no record, so a portal cannot probe which PINs exist.

The 18th birthday of someone born on 29 February is 28 February in a year without one (Civil
Code 2015, Art. 148: a period in years that ends in a month without that day ends on the
month's last day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from idservice.errors import Forbidden, MalformedRequest
from idservice.pin.format import is_well_formed

__all__ = ["ADULT_AGE", "COUNTRY", "USER_ID_HEADER", "Relation", "SubjectRecord",
           "adult_from", "parse_user_code", "parse_user_id", "relation"]

USER_ID_HEADER = "X-Road-UserId"
COUNTRY = "VN"
ADULT_AGE = 18


class Relation(StrEnum):
    SELF = "self"
    MOTHER = "mother"
    FATHER = "father"


@dataclass(frozen=True, slots=True)
class SubjectRecord:
    """What the rule needs from the subject's person record."""

    date_of_birth: date
    mother_pin: str | None
    father_pin: str | None


def parse_user_id(value: str | None) -> str:
    """The PIN in `X-Road-UserId: VN<PIN>`; 400 when missing or malformed."""
    if value is None or not value:
        raise MalformedRequest(f"the {USER_ID_HEADER} header is required: VN followed by the "
                               "12-digit PIN of the citizen logged in at the portal",
                               field=USER_ID_HEADER)
    pin = value[len(COUNTRY):] if value.startswith(COUNTRY) else ""
    if not is_well_formed(pin):
        raise MalformedRequest(f"{USER_ID_HEADER} must be VN followed by a 12-digit PIN",
                               field=USER_ID_HEADER)
    return pin


def parse_user_code(value: str | None, field: str = "userCode") -> str:
    """The subject's PIN: 12 digits, or `VN` + 12 digits as X-Road writes personal codes."""
    if value is None or not value:
        raise MalformedRequest(f"{field} is required: the data subject's 12-digit PIN",
                               field=field)
    pin = value[len(COUNTRY):] if value.startswith(COUNTRY) else value
    if not is_well_formed(pin):
        raise MalformedRequest(f"{field} must be a 12-digit PIN (optionally prefixed VN)",
                               field=field)
    return pin


def adult_from(born: date) -> date:
    """The day someone born on `born` turns 18."""
    year = born.year + ADULT_AGE
    try:
        return born.replace(year=year)
    except ValueError:  # 29 February, in a year without one
        return date(year, 2, 28)


def relation(requester: str, subject: str, record: SubjectRecord | None,
             today: date) -> Relation:
    """How `requester` may ask about `subject` today; `Forbidden` when not at all."""
    if requester == subject:
        return Relation.SELF
    refused = Forbidden("the citizen may see only their own report, or their child's while "
                        "the child is under 18 and names them as mother or father")
    if record is None or today >= adult_from(record.date_of_birth):
        raise refused
    if record.mother_pin == requester:
        return Relation.MOTHER
    if record.father_pin == requester:
        return Relation.FATHER
    raise refused

"""One person row: what a birth registration puts in the `person` table.

Every statement that writes a person takes its row as a `PersonRow`, sent as the database
composite type `person_row` (migrations/0012_person_row.sql): the one-statement issuance
`issue_pin()`, the exact allocator's claim, the batch insert and a correction. So the column
order is written down twice only, here and in that type, and a test compares the two
(tests/integration/test_person_row.py); no statement picks columns by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple

from idservice.persons.models import IssueRequest
from idservice.persons.names import fold_name
from idservice.pin.format import Sex, bucket_prefix

__all__ = ["PERSON_ROW_FIELDS", "PersonRow", "RegistrationKey", "key_arrays"]


class RegistrationKey(NamedTuple):
    """One birth registration (contract 7): the idempotency key of issuance. A tuple, so the
    SQL takes it as its arguments in this order (`*key`)."""

    province_code: str
    authority: str
    number: str


def key_arrays(keys: Sequence[RegistrationKey]) -> tuple[list[str], list[str], list[str]]:
    """Registration keys as the three arrays the bulk statements take."""
    return ([k.province_code for k in keys], [k.authority for k in keys],
            [k.number for k in keys])


@dataclass(frozen=True, slots=True)
class PersonRow:
    registration_authority: str
    registration_number: str
    registered_on: date
    province_code: str
    full_name: str
    name_folded: str
    other_names_folded: list[str]
    sex: Sex
    date_of_birth: date
    record: str  # the whole record as canonical JSON (persons/views.canonical_json)
    mother_pin: str | None  # the mother as the duplicate check compares her (contract 9)
    mother_name_folded: str | None

    @classmethod
    def of(cls, req: IssueRequest, record_json: str) -> PersonRow:
        """The row of a validated registration whose canonical JSON is `record_json`."""
        reg, child = req.registration, req.child
        return cls(
            registration_authority=reg.authority,
            registration_number=reg.number,
            registered_on=reg.registered_on,
            province_code=reg.province_code,
            full_name=child.full_name,
            name_folded=fold_name(child.full_name),
            other_names_folded=[fold_name(n) for n in child.other_names],
            sex=child.sex,
            date_of_birth=child.date_of_birth,
            record=record_json,
            mother_pin=req.mother.pin if req.mother is not None else None,
            mother_name_folded=fold_name(req.mother.full_name) if req.mother is not None
            else None,
        )

    @property
    def registration_key(self) -> RegistrationKey:
        return RegistrationKey(self.province_code, self.registration_authority,
                               self.registration_number)

    @property
    def prefix(self) -> str:
        """The PIN bucket `PPPGYY` this person's number is drawn from."""
        return bucket_prefix(self.province_code, self.date_of_birth.year, self.sex)

    def composite(self) -> tuple[Any, ...]:
        """The value asyncpg sends for a `person_row` parameter (attributes in type order)."""
        return _values(self)


PERSON_ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PersonRow))
_values = attrgetter(*PERSON_ROW_FIELDS)

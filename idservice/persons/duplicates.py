"""The duplicate rule of contract 9 between two person rows (pure).

The database has the same rule as SQL (`person_duplicates()`, migrations/0042) for rows
already stored; this one compares two rows of one batch chunk that are not stored yet, and
tests/unit/test_duplicates.py holds the cases both must agree on. Same folded full name,
date of birth and sex, and the same mother: equal mother PINs when both have one, else equal
folded mother names when both have a mother, else both without a mother.
"""

from __future__ import annotations

from idservice.persons.rows import PersonRow

__all__ = ["same_mother", "same_person"]


def same_mother(a: PersonRow, b: PersonRow) -> bool:
    if a.mother_pin is not None and b.mother_pin is not None:
        return a.mother_pin == b.mother_pin
    if a.mother_name_folded is not None and b.mother_name_folded is not None:
        return a.mother_name_folded == b.mother_name_folded
    return a.mother_name_folded is None and b.mother_name_folded is None


def same_person(a: PersonRow, b: PersonRow) -> bool:
    return (a.name_folded == b.name_folded and a.date_of_birth == b.date_of_birth
            and a.sex == b.sex and same_mother(a, b))

"""`duplicates.earlier_matches`: the batch chunk's in-chunk duplicate rule, grouped by name,
date of birth and sex, gives exactly what comparing every earlier row with `same_person` gives."""

from __future__ import annotations

import random
from datetime import date

from idservice.persons.duplicates import earlier_matches, same_person
from idservice.persons.rows import PersonRow


def _row(rng: random.Random, n: int) -> PersonRow:
    mother = rng.choice([(None, None), ("052190000001", "le thi hoa"),
                         ("052190000002", "le thi hoa"), (None, "le thi hoa"),
                         (None, "le thi mai")])
    return PersonRow(
        registration_authority="UBND", registration_number=str(n), registered_on=date(2024, 3, 4),
        province_code="52", full_name="x", name_folded=rng.choice(["nguyen van a", "tran thi b"]),
        other_names_folded=[], sex=rng.choice(["M", "F"]),
        date_of_birth=rng.choice([date(2024, 3, 2), date(2024, 3, 3)]), record="{}",
        mother_pin=mother[0], mother_name_folded=mother[1])


def test_grouped_rule_equals_pairwise_rule() -> None:
    rng = random.Random(16)
    rows = [_row(rng, n) for n in range(300)]
    pairwise = [[j for j in range(i) if same_person(rows[j], row)] for i, row in enumerate(rows)]
    assert earlier_matches(rows) == pairwise
    assert sum(map(len, pairwise)) > 300  # the sample has many matches to agree on
    assert any(not m for m in pairwise[50:])  # and rows that match nothing earlier

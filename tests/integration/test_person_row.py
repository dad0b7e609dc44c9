"""One person row (issue 10 item 1): `PersonRow` and the database type `person_row` agree, and
SQL builds PINs with the same rule as `idservice/pin/format.make_pin`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from idservice.persons.rows import PERSON_ROW_FIELDS
from idservice.pin.format import make_pin

_TYPE_ATTRIBUTES = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a
 WHERE a.attrelid = 'person_row'::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""

_PERSON_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a
 WHERE a.attrelid = 'person'::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""


def test_person_row_type_has_the_fields_of_person_row_in_order(
    service_db: Callable[..., list],
) -> None:
    """asyncpg sends a PersonRow by position: the order of the two must be the same."""
    assert tuple(r["attname"] for r in service_db(_TYPE_ATTRIBUTES)) == PERSON_ROW_FIELDS


def test_person_row_attributes_are_person_columns_of_the_same_type(
    service_db: Callable[..., list],
) -> None:
    columns = {r["attname"]: r["type"] for r in service_db(_PERSON_COLUMNS)}
    for row in service_db(_TYPE_ATTRIBUTES):
        expected = "jsonb" if row["attname"] == "record" else row["type"]  # sent as JSON text
        assert columns[row["attname"]] == expected, row["attname"]


@pytest.mark.parametrize(("prefix", "serial"), [("052325", 0), ("052325", 42),
                                                 ("001001", 999_999)])
def test_sql_make_pin_equals_python_make_pin(service_db: Callable[..., list], prefix: str,
                                             serial: int) -> None:
    assert service_db("SELECT make_pin($1, $2)", prefix, serial)[0][0] == make_pin(prefix, serial)


@pytest.mark.parametrize(("prefix", "serial"), [("05232", 1), ("0523251", 1), ("05232x", 1),
                                                 ("052325", -1), ("052325", 1_000_000)])
def test_sql_make_pin_of_bad_parts_is_null(service_db: Callable[..., list], prefix: str,
                                           serial: int) -> None:
    """Null, which person's primary key refuses: never a silently cut or padded PIN."""
    assert service_db("SELECT make_pin($1, $2)", prefix, serial)[0][0] is None

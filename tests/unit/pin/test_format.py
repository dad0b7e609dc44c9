"""PIN layout: Circular 07/2016/TT-BCA as in CONTRACT.md section 2."""

from __future__ import annotations

import pytest

from idservice.pin.format import (
    SERIAL_SPACE,
    InvalidPin,
    Pin,
    bucket_prefix,
    century_sex_digit,
    decode_birth,
    is_well_formed,
    make_pin,
    make_pins,
    parse_pin,
)


@pytest.mark.parametrize("text", ["001000000000", "096999999999", "052325012345", "024907000001"])
def test_well_formed_pin_round_trips(text: str) -> None:
    pin = parse_pin(text)
    assert str(pin) == text
    assert pin.prefix == text[:6]
    assert parse_pin(str(pin)) == pin


def test_pin_fields_split_as_ppp_g_yy_rrrrrr() -> None:
    pin = parse_pin("052325000042")
    assert pin == Pin(province_code="052", century_sex=3, year2=25, serial=42)
    assert (pin.birth_year, pin.sex) == (2025, "F")


@pytest.mark.parametrize("g", range(10))
def test_every_century_sex_digit_parses(g: int) -> None:
    assert parse_pin(f"001{g}00000000").century_sex == g


@pytest.mark.parametrize(
    ("year", "sex", "digit"),
    [
        (1900, "M", 0),
        (1900, "F", 1),
        (1999, "M", 0),
        (1999, "F", 1),
        (2000, "M", 2),
        (2000, "F", 3),
        (2099, "M", 2),
        (2099, "F", 3),
        (2100, "M", 4),
        (2100, "F", 5),
        (2199, "F", 5),
        (2200, "M", 6),
        (2200, "F", 7),
        (2299, "F", 7),
        (2300, "M", 8),
        (2300, "F", 9),
        (2399, "M", 8),
        (2399, "F", 9),
    ],
)
def test_century_boundary_year_gives_contract_digit(year: int, sex: str, digit: int) -> None:
    assert century_sex_digit(year, sex) == digit  # type: ignore[arg-type]


@pytest.mark.parametrize("year", [1899, 2400, 0, -1900])
def test_birth_year_outside_1900_2399_refused(year: int) -> None:
    with pytest.raises(ValueError, match="between 1900 and 2399"):
        century_sex_digit(year, "M")


@pytest.mark.parametrize("sex", ["X", "m", "f", "", "MF", None])
def test_sex_other_than_m_or_f_refused(sex: object) -> None:
    with pytest.raises(ValueError, match="sex"):
        century_sex_digit(2000, sex)  # type: ignore[arg-type]


def test_decode_birth_inverts_century_sex_digit_for_every_year() -> None:
    for year in range(1900, 2400):
        for sex in ("M", "F"):
            assert decode_birth(century_sex_digit(year, sex), year % 100) == (year, sex)


@pytest.mark.parametrize(("g", "yy"), [(10, 0), (-1, 0), (0, 100), (0, -1)])
def test_decode_birth_out_of_range_refused(g: int, yy: int) -> None:
    with pytest.raises(ValueError):
        decode_birth(g, yy)


MALFORMED = [
    "",
    "05232501234",  # 11 digits
    "0523250123456",  # 13 digits
    "05232501234A",
    "O52325012345",  # letter O
    "".join(chr(0x0660 + int(d)) for d in "052325012345"),  # Arabic-Indic digits
    "05232501234\u0661",  # one Arabic-Indic digit one
    "".join(chr(0xFF10 + int(d)) for d in "052325012345"),  # full-width digits
    "05232501234\u00b2",  # superscript two
    "05232501234\u0e51",  # Thai digit one
    " 052325012345",
    "052325012345 ",
    "052325012345\n",
    "052 325012345",
    "+52325012345",
    "-52325012345",
    "0523250123.5",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_pin_string_refused(text: str) -> None:
    assert not is_well_formed(text)
    with pytest.raises(InvalidPin) as excinfo:
        parse_pin(text)
    assert isinstance(excinfo.value, ValueError)
    assert text.strip() not in str(excinfo.value) or not text.strip()  # the PIN is not echoed


@pytest.mark.parametrize("value", [52325012345, None, b"052325012345", ["052325012345"]])
def test_non_string_pin_not_well_formed(value: object) -> None:
    assert not is_well_formed(value)


def test_bucket_prefix_is_ppp_g_yy() -> None:
    assert bucket_prefix("052", 2025, "F") == "052325"
    assert bucket_prefix("001", 1900, "M") == "001000"
    assert bucket_prefix("096", 2399, "F") == "096999"


@pytest.mark.parametrize("code", ["52", "0520", "O52", "\u0660\u0665\u0662"])
def test_bucket_prefix_with_bad_province_code_refused(code: str) -> None:
    with pytest.raises(ValueError, match="province code"):
        bucket_prefix(code, 2025, "M")


def test_make_pin_zero_pads_serial() -> None:
    assert make_pin("052325", 0) == "052325000000"
    assert make_pin("052325", 42) == "052325000042"
    assert make_pin("052325", SERIAL_SPACE - 1) == "052325999999"


@pytest.mark.parametrize(
    ("prefix", "serial"),
    [("052325", -1), ("052325", SERIAL_SPACE), ("05232", 1), ("05232X", 1), ("052325", True)],
)
def test_make_pin_with_bad_arguments_refused(prefix: str, serial: int) -> None:
    with pytest.raises(ValueError):
        make_pin(prefix, serial)


def test_make_pins_is_make_pin_of_each_serial() -> None:
    assert make_pins("052325", [7, 0, 999_999]) == [make_pin("052325", s) for s in (7, 0, 999_999)]


def test_make_pins_refuses_a_bad_serial_among_good_ones() -> None:
    with pytest.raises(ValueError, match="serial"):
        make_pins("052325", [1, SERIAL_SPACE])


@pytest.mark.parametrize(
    "fields",
    [
        ("52", 0, 0, 0),
        ("052", 10, 0, 0),
        ("052", 0, 100, 0),
        ("052", 0, 0, SERIAL_SPACE),
        ("052", 0, 0, -1),
    ],
)
def test_pin_with_out_of_range_field_refused(fields: tuple[str, int, int, int]) -> None:
    with pytest.raises(InvalidPin):
        Pin(*fields)

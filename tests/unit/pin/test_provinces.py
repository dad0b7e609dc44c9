"""Province codes as dated data: Circular 07/2016/TT-BCA Annex I, Decision 19/2025/QD-TTg."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest

from idservice.pin.format import InvalidPin
from idservice.pin.provinces import (
    PrefixRule,
    ProvinceNotValidOn,
    ProvinceTable,
    UnknownProvince,
    decode_pin,
    default_table,
)

LAST_LEGACY_DAY = date(2025, 6, 30)
MERGER_DAY = date(2025, 7, 1)


@pytest.fixture(scope="module")
def table() -> ProvinceTable:
    return default_table()


def test_packaged_table_has_63_legacy_and_34_merged_provinces(table: ProvinceTable) -> None:
    legacy = [p for p in table.all() if p.new_code is None]
    merged = [p for p in table.all() if p.new_code is not None]
    assert len(legacy) == 63 and len(merged) == 34
    assert all(p.valid_until == LAST_LEGACY_DAY and not p.old_codes for p in legacy)
    assert all(p.valid_from == MERGER_DAY and p.valid_until is None for p in merged)
    assert len(table.codes(on=LAST_LEGACY_DAY)) == 63
    assert len(table.codes(on=MERGER_DAY)) == 34
    assert table.codes() == table.codes(on=LAST_LEGACY_DAY)  # every new code reuses an old one


def test_merged_old_codes_are_legacy_codes_each_absorbed_once(table: ProvinceTable) -> None:
    legacy = table.codes(on=LAST_LEGACY_DAY)
    absorbed = [c for p in table.all() for c in p.old_codes]
    assert set(absorbed) == legacy and len(absorbed) == len(legacy)
    for p in table.all():
        if p.new_code is not None:
            assert p.pin_code == "0" + p.new_code
            assert p.pin_code in p.old_codes  # the new code is the old code of one member


def test_code_024_decodes_to_bac_giang_then_bac_ninh(table: ProvinceTable) -> None:
    assert table.decode("024", LAST_LEGACY_DAY).name == "Bắc Giang"
    assert table.decode("024", MERGER_DAY).name == "Bắc Ninh"
    assert table.decode("024", MERGER_DAY).old_codes == ("027", "024")


def test_code_002_after_merger_not_valid(table: ProvinceTable) -> None:
    assert table.valid_on("002", LAST_LEGACY_DAY).name == "Hà Giang"
    with pytest.raises(ProvinceNotValidOn) as excinfo:
        table.valid_on("002", MERGER_DAY)
    assert isinstance(excinfo.value, ValueError)
    assert (excinfo.value.code, excinfo.value.registered_on) == ("002", MERGER_DAY)
    assert "2025-07-01" in str(excinfo.value) and "Tuyên Quang, code 008" in str(excinfo.value)


def test_code_052_valid_on_both_sides_of_merger(table: ProvinceTable) -> None:
    assert table.valid_on("052", LAST_LEGACY_DAY).name == "Bình Định"
    assert table.valid_on("052", MERGER_DAY).name == "Gia Lai"


def test_registration_before_1900_not_valid(table: ProvinceTable) -> None:
    with pytest.raises(ProvinceNotValidOn):
        table.valid_on("001", date(1899, 12, 31))
    assert table.valid_on("001", date(1900, 1, 1)).name == "Hà Nội"


@pytest.mark.parametrize("code", ["999", "003", "000", "52", "0052", "abc", ""])
def test_never_existing_code_unknown(table: ProvinceTable, code: str) -> None:
    with pytest.raises(UnknownProvince) as excinfo:
        table.valid_on(code, MERGER_DAY)
    assert isinstance(excinfo.value, ValueError)
    assert str(excinfo.value) in (
        f"province code {code} does not exist",
        "a province code is 3 digits",
    )


def test_names_are_nfc_vietnamese_as_reference(table: ProvinceTable) -> None:
    names = {(p.pin_code, p.valid_from): p.name for p in table.all()}
    assert all(unicodedata.is_normalized("NFC", n) for n in names.values())
    assert names["079", date(1900, 1, 1)] == "Hồ Chí Minh"
    assert names["046", date(1900, 1, 1)] == "Thừa Thiên Huế"
    assert names["046", MERGER_DAY] == "Huế"
    assert names["077", date(1900, 1, 1)] == "Bà Rịa - Vũng Tàu"
    assert names["066", MERGER_DAY] == "Đắk Lắk"


def test_default_table_loaded_once() -> None:
    assert default_table() is default_table()
    assert ProvinceTable.load().all() == default_table().all()


def test_prefix_rule_zero_plus_new_code() -> None:
    rule = PrefixRule("zero-plus-new-code")
    assert rule is PrefixRule.ZERO_PLUS_NEW_CODE and rule == "zero-plus-new-code"
    assert rule.pin_code("52") == "052"
    with pytest.raises(ValueError):
        rule.pin_code("5")


def test_decode_pin_uses_table_of_registration_date() -> None:
    before = decode_pin("024325000042", LAST_LEGACY_DAY)
    after = decode_pin("024325000042", MERGER_DAY)
    assert (before.province.name, after.province.name) == ("Bắc Giang", "Bắc Ninh")
    assert (after.birth_year, after.sex, after.serial) == (2025, "F", 42)
    assert str(after.pin) == "024325000042"


def test_decode_pin_refuses_malformed_or_unknown() -> None:
    with pytest.raises(InvalidPin):
        decode_pin("02432500004", MERGER_DAY)
    with pytest.raises(UnknownProvince):
        decode_pin("999325000042", MERGER_DAY)
    with pytest.raises(ProvinceNotValidOn):
        decode_pin("002325000042", MERGER_DAY)


HEADER = "pin_code,name,valid_from,valid_until,new_code,old_codes\n"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("001,A,1900-01-01,2025-06-30,,\n001,B,2025-06-30,,,\n", "overlapping"),
        ("001,A,1900-01-01,,,\n,B,2025-07-01,,01,001\n", "overlapping"),
        ("001,A,1900-01-01,2025-06-30,,\n,B,2025-07-01,,02,003\n", "not valid before"),
        ("001,A,1900-01-01,2025-06-30,,\n001,B,2025-07-01,,01,001\n", "derived"),
        ("001,A,2025-06-30,1900-01-01,,\n", "before valid_from"),
        ("01,A,1900-01-01,,,\n", "3 digits"),
        ("001,,1900-01-01,,,\n", "name"),
        ("001,A,1900-13-01,,,\n", "line 2"),
    ],
)
def test_inconsistent_province_data_refused(rows: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProvinceTable.from_csv(HEADER + rows)


def test_province_csv_with_wrong_columns_refused() -> None:
    with pytest.raises(ValueError, match="columns"):
        ProvinceTable.from_csv("code,name\n001,Hà Nội\n")

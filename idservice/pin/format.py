"""Layout of the 12-digit personal identification number (PIN).

Source: Circular 07/2016/TT-BCA (Art. 7 and Annex I) as summarised in CONTRACT.md section 2.
A PIN is ``PPP G YY RRRRRR``, twelve ASCII digits, always handled as a string (leading zeros
matter):

- ``PPP``: code of the province where the birth is registered (see :mod:`.provinces`);
- ``G``: century of birth and sex: 1900-1999 male 0 / female 1, 2000-2099 2/3, 2100-2199 4/5,
  2200-2299 6/7, 2300-2399 8/9 (every digit 0-9 is meaningful);
- ``YY``: last two digits of the birth year;
- ``RRRRRR``: six random digits (see :mod:`.allocator`). There is no check digit.

The first six digits ``PPPGYY`` form the allocation *bucket*: each bucket holds
:data:`SERIAL_SPACE` numbers.

Only structure is checked here; whether ``PPP`` is a province code valid on a registration
date depends on the dated table in :mod:`.provinces`. Error messages never echo the input:
a PIN is personal data and must not end up in logs through an exception text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "FIRST_BIRTH_YEAR",
    "LAST_BIRTH_YEAR",
    "PIN_LENGTH",
    "SERIAL_SPACE",
    "InvalidPin",
    "Pin",
    "Sex",
    "bucket_prefix",
    "century_sex_digit",
    "decode_birth",
    "grouped",
    "is_well_formed",
    "make_pin",
    "make_pins",
    "parse_pin",
]

Sex: TypeAlias = Literal["M", "F"]

PIN_LENGTH = 12
PREFIX_LENGTH = 6
SERIAL_SPACE = 1_000_000
FIRST_BIRTH_YEAR = 1900
LAST_BIRTH_YEAR = 2399


class InvalidPin(ValueError):
    """A string is not a well-formed PIN (12 ASCII digits)."""


def _is_ascii_digits(s: str, length: int) -> bool:
    # str.isdigit() alone accepts e.g. Arabic-Indic or superscript digits.
    return len(s) == length and s.isascii() and s.isdigit()


@dataclass(frozen=True)
class Pin:
    """A structurally valid PIN split into its fields."""

    province_code: str
    century_sex: int
    year2: int
    serial: int

    def __post_init__(self) -> None:
        if not _is_ascii_digits(self.province_code, 3):
            raise InvalidPin("province code must be 3 ASCII digits")
        if not 0 <= self.century_sex <= 9:
            raise InvalidPin("century/sex digit must be 0-9")
        if not 0 <= self.year2 <= 99:
            raise InvalidPin("year digits must be 00-99")
        if not 0 <= self.serial < SERIAL_SPACE:
            raise InvalidPin("serial must be 000000-999999")

    def __str__(self) -> str:
        return f"{self.prefix}{self.serial:06d}"

    @property
    def prefix(self) -> str:
        """The first six digits ``PPPGYY``: the allocation bucket."""
        return f"{self.province_code}{self.century_sex}{self.year2:02d}"

    @property
    def birth_year(self) -> int:
        return decode_birth(self.century_sex, self.year2)[0]

    @property
    def sex(self) -> Sex:
        return decode_birth(self.century_sex, self.year2)[1]


def is_well_formed(s: object) -> bool:
    """True if ``s`` is a string of exactly 12 ASCII digits."""
    return isinstance(s, str) and _is_ascii_digits(s, PIN_LENGTH)


def grouped(pin: str) -> str:
    """``PPP G YY RRRRRR`` with spaces, as printed for people (the PIN notice, the pages);
    anything but a well-formed PIN comes back unchanged."""
    if not is_well_formed(pin):
        return pin
    return f"{pin[:3]} {pin[3]} {pin[4:6]} {pin[6:]}"


def parse_pin(s: str) -> Pin:
    """Split a PIN string; raise :class:`InvalidPin` unless it is exactly 12 ASCII digits."""
    if not is_well_formed(s):
        raise InvalidPin("a PIN is exactly 12 ASCII digits")
    return Pin(s[:3], int(s[3]), int(s[4:6]), int(s[6:]))


def century_sex_digit(birth_year: int, sex: Sex) -> int:
    """The ``G`` digit for a birth year in 1900..2399 and sex ``"M"`` or ``"F"``."""
    if sex not in ("M", "F"):
        raise ValueError("sex must be 'M' or 'F'")
    if isinstance(birth_year, bool) or not isinstance(birth_year, int):
        raise ValueError("birth year must be an integer")
    if not FIRST_BIRTH_YEAR <= birth_year <= LAST_BIRTH_YEAR:
        raise ValueError(f"birth year must be between {FIRST_BIRTH_YEAR} and {LAST_BIRTH_YEAR}")
    return 2 * ((birth_year - FIRST_BIRTH_YEAR) // 100) + (0 if sex == "M" else 1)


def decode_birth(g: int, year2: int) -> tuple[int, Sex]:
    """Birth year and sex from the ``G`` and ``YY`` fields."""
    if not 0 <= g <= 9:
        raise ValueError("century/sex digit must be 0-9")
    if not 0 <= year2 <= 99:
        raise ValueError("year digits must be 00-99")
    sex: Sex = "M" if g % 2 == 0 else "F"
    return FIRST_BIRTH_YEAR + 100 * (g // 2) + year2, sex


def bucket_prefix(province_code: str, birth_year: int, sex: Sex) -> str:
    """The six-digit bucket ``PPPGYY`` for a province code, birth year and sex."""
    if not _is_ascii_digits(province_code, 3):
        raise ValueError("province code must be 3 ASCII digits")
    return f"{province_code}{century_sex_digit(birth_year, sex)}{birth_year % 100:02d}"


def make_pin(prefix: str, serial: int) -> str:
    """The PIN string for a bucket prefix and a serial in ``0..999999`` (zero-padded)."""
    return make_pins(prefix, (serial,))[0]


def make_pins(prefix: str, serials: Iterable[int]) -> list[str]:
    """The PINs of several serials of one bucket (the prefix checked once: the batch path
    builds a few thousand candidates per chunk)."""
    if not _is_ascii_digits(prefix, PREFIX_LENGTH):
        raise ValueError("prefix must be 6 ASCII digits")
    pins = []
    for serial in serials:
        if isinstance(serial, bool) or not isinstance(serial, int):
            raise ValueError("serial must be an integer")
        if not 0 <= serial < SERIAL_SPACE:
            raise ValueError("serial must be between 0 and 999999")
        pins.append(f"{prefix}{serial:06d}")
    return pins

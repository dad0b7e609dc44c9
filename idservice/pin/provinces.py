"""Province codes (the PIN's ``PPP``), kept as dated data, not code.

Sources (see ``shared/reference/provinces.md``):

- Circular 07/2016/TT-BCA, Annex I: the 63 legacy province codes. In ``data/provinces.csv``
  they are valid from 1900-01-01 until 2025-06-30. 1900-01-01 is a sentinel, not a legal
  date: it is the first birth year a PIN can encode, and PINs are also assigned to people
  whose births were registered long before the circular, so a legacy code applies to every
  registration before the merger.
- Decision 19/2025/QD-TTg: from 2025-07-01 the 34 merged provinces. Each row has its new
  2-digit code and the legacy codes it absorbed; its ``pin_code`` column is left empty and
  is derived at load time by a :class:`PrefixRule`.

The prefix rule is a working assumption, not an official text: the only rule so far,
:attr:`PrefixRule.ZERO_PLUS_NEW_CODE`, gives a merged province the PIN code ``"0"`` + its
2-digit new code (Gia Lai 52 -> ``052``). It is a parameter of :meth:`ProvinceTable.load`
so that it can be replaced by configuration when the ministry publishes the real rule.

A code can mean different provinces at different dates (``024`` is Bắc Giang for
registrations up to 2025-06-30 and Bắc Ninh from 2025-07-01), so every lookup takes the
registration date. Existing PINs never change because of the merger.
"""

from __future__ import annotations

import csv
import functools
import io
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from importlib import resources
from itertools import pairwise

from .format import Pin, Sex, parse_pin

__all__ = [
    "DecodedPin",
    "PrefixRule",
    "Province",
    "ProvinceNotValidOn",
    "ProvinceTable",
    "UnknownProvince",
    "decode_pin",
    "default_table",
]

_COLUMNS = ["pin_code", "name", "valid_from", "valid_until", "new_code", "old_codes"]


class PrefixRule(StrEnum):  # a str and an Enum (ruff UP042 prefers StrEnum)
    """How a merged (2025) province's 2-digit code becomes the PIN's 3-digit ``PPP``."""

    ZERO_PLUS_NEW_CODE = "zero-plus-new-code"

    def pin_code(self, new_code: str) -> str:
        if not (len(new_code) == 2 and new_code.isascii() and new_code.isdigit()):
            raise ValueError(f"new province code must be 2 digits, got {new_code!r}")
        return "0" + new_code


@dataclass(frozen=True)
class Province:
    """One province code over one validity period (``valid_until`` inclusive; None: open)."""

    pin_code: str
    name: str
    valid_from: date
    valid_until: date | None
    new_code: str | None  # the 2-digit code of a merged (2025) province; None for legacy ones
    old_codes: tuple[str, ...]  # legacy codes a merged province absorbed; () for legacy ones

    def is_valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)

    def _period(self) -> str:
        until = "onwards" if self.valid_until is None else f"to {self.valid_until}"
        return f"{self.valid_from} {until}"


class UnknownProvince(ValueError):
    """The code was never a province code."""

    def __init__(self, code: str) -> None:
        self.code = code
        if len(code) == 3 and code.isascii() and code.isdigit():
            message = f"province code {code} does not exist"
        else:
            message = "a province code is 3 digits"
        super().__init__(message)


class ProvinceNotValidOn(ValueError):
    """The code exists but is not valid for a registration on that date."""

    def __init__(self, code: str, registered_on: date, message: str) -> None:
        self.code = code
        self.registered_on = registered_on
        super().__init__(message)


@dataclass(frozen=True)
class DecodedPin:
    """What a PIN says, read with the province table valid on its registration date."""

    pin: Pin
    province: Province
    birth_year: int
    sex: Sex
    serial: int


class ProvinceTable:
    """All province codes with their validity periods; lookups take a registration date."""

    def __init__(self, provinces: Iterable[Province]) -> None:
        self._all = tuple(sorted(provinces, key=lambda p: (p.valid_from, p.pin_code)))
        by_code: dict[str, list[Province]] = {}
        for p in self._all:
            by_code.setdefault(p.pin_code, []).append(p)
        for code, periods in by_code.items():
            for earlier, later in pairwise(periods):
                if earlier.valid_until is None or earlier.valid_until >= later.valid_from:
                    raise ValueError(f"province code {code} has overlapping validity periods")
        self._by_code = {code: tuple(periods) for code, periods in by_code.items()}
        self._check_merges()

    def _check_merges(self) -> None:
        absorbed: set[str] = set()
        for p in self._all:
            for old in p.old_codes:
                if old in absorbed:
                    raise ValueError(f"legacy code {old} is merged into two provinces")
                absorbed.add(old)
                day_before = p.valid_from - timedelta(days=1)
                if not any(q.is_valid_on(day_before) for q in self._by_code.get(old, ())):
                    raise ValueError(f"{p.name}: old code {old} is not valid before the merger")

    @classmethod
    def load(cls, rule: PrefixRule = PrefixRule.ZERO_PLUS_NEW_CODE) -> ProvinceTable:
        """The table packaged in ``idservice/pin/data/provinces.csv``."""
        text = resources.files("idservice.pin").joinpath("data/provinces.csv").read_text("utf-8")
        return cls.from_csv(text, rule)

    @classmethod
    def from_csv(cls, text: str, rule: PrefixRule = PrefixRule.ZERO_PLUS_NEW_CODE) -> ProvinceTable:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames != _COLUMNS:
            raise ValueError(f"province CSV columns must be {','.join(_COLUMNS)}")
        return cls(_parse_row(row, reader.line_num, rule) for row in reader)

    def all(self) -> tuple[Province, ...]:
        """Every (code, period) entry, legacy ones first."""
        return self._all

    def codes(self, on: date | None = None) -> frozenset[str]:
        """Every code that ever existed, or only those valid on a date."""
        return frozenset(p.pin_code for p in self._all if on is None or p.is_valid_on(on))

    def exists(self, code: str) -> bool:
        """True if the code was a province code at any time."""
        return code in self._by_code

    def valid_on(self, code: str, registered_on: date) -> Province:
        """The province a code designates for a registration on that date.

        Raises :class:`UnknownProvince` if the code never existed and
        :class:`ProvinceNotValidOn` if it exists but not on that date.
        """
        periods = self._by_code.get(code)
        if periods is None:
            raise UnknownProvince(code)
        for p in periods:
            if p.is_valid_on(registered_on):
                return p
        raise ProvinceNotValidOn(code, registered_on, self._not_valid_message(code, registered_on))

    def decode(self, code: str, registered_on: date) -> Province:
        """The province an existing PIN's code designates, given its registration date."""
        return self.valid_on(code, registered_on)

    def _not_valid_message(self, code: str, registered_on: date) -> str:
        periods = self._by_code[code]
        valid = "; ".join(f"{p.name} {p._period()}" for p in periods)
        message = (
            f"province code {code} is not valid for registrations on {registered_on} "
            f"(valid: {valid})"
        )
        successor = next(
            (p for p in self._all if code in p.old_codes and p.valid_from <= registered_on),
            None,
        )
        if successor is not None:
            message += (
                f"; since {successor.valid_from} it is part of {successor.name}, "
                f"code {successor.pin_code}"
            )
        return message


def _parse_row(row: dict[str, str], line: int, rule: PrefixRule) -> Province:
    try:
        name = row["name"].strip()
        if not name or not unicodedata.is_normalized("NFC", name):
            raise ValueError("name must be non-empty NFC text")
        new_code = row["new_code"] or None
        old_codes = tuple(row["old_codes"].split("+")) if row["old_codes"] else ()
        if new_code is None:
            pin_code = row["pin_code"]
            if old_codes:
                raise ValueError("old_codes given without new_code")
        else:
            if row["pin_code"]:
                raise ValueError("pin_code of a merged province is derived by the prefix rule")
            pin_code = rule.pin_code(new_code)
        for c in (pin_code, *old_codes):
            if not (len(c) == 3 and c.isascii() and c.isdigit()):
                raise ValueError(f"code {c!r} is not 3 digits")
        valid_from = date.fromisoformat(row["valid_from"])
        valid_until = date.fromisoformat(row["valid_until"]) if row["valid_until"] else None
        if valid_until is not None and valid_until < valid_from:
            raise ValueError("valid_until is before valid_from")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"province CSV line {line}: {exc}") from exc
    return Province(pin_code, name, valid_from, valid_until, new_code, old_codes)


@functools.cache
def default_table() -> ProvinceTable:
    """The packaged table with the default prefix rule, loaded once."""
    return ProvinceTable.load()


def decode_pin(pin: str, registered_on: date, table: ProvinceTable | None = None) -> DecodedPin:
    """Read a PIN with the province table valid on its registration date.

    Raises :class:`~idservice.pin.format.InvalidPin`, :class:`UnknownProvince` or
    :class:`ProvinceNotValidOn`.
    """
    parsed = parse_pin(pin)
    province = (table or default_table()).decode(parsed.province_code, registered_on)
    return DecodedPin(parsed, province, parsed.birth_year, parsed.sex, parsed.serial)

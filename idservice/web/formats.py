"""How the pages show and read dates, times and PINs (issue 15, items 6 and 8). Pure.

People here read dates as `dd/mm/yyyy` and times in Vietnam time (UTC+7, no daylight saving):
`dd/mm/yyyy HH:mm`. The API and the audit log stay RFC 3339 UTC; only the pages convert, both
ways (the auditor's time filters are typed in Vietnam time).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

__all__ = ["VIETNAM", "brief", "parse_day", "parse_vietnam_time", "show_date", "show_time",
           "vietnam_input"]

VIETNAM = timezone(timedelta(hours=7), "ICT")
_DAY = re.compile(r"^\s*([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})\s*$")
_ISO_DAY = re.compile(r"^\s*([0-9]{4})-([0-9]{2})-([0-9]{2})\s*$")


def show_date(value: date | str | None) -> str:
    """`2026-01-05` -> `05/01/2026`; anything else unchanged (never an error on a page)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).strftime("%d/%m/%Y")
        except ValueError:
            return value
    return value.strftime("%d/%m/%Y")


def show_time(value: datetime | str | None) -> str:
    """An instant (RFC 3339 text or an aware datetime) in Vietnam time, `dd/mm/yyyy HH:mm`."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            return show_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    if value.tzinfo is None:
        return value.strftime("%d/%m/%Y %H:%M")
    return value.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def parse_day(text: str) -> date:
    """A date typed as `dd/mm/yyyy` (also `d/m/yyyy`, `dd.mm.yyyy`, or ISO `yyyy-mm-dd`);
    raises ValueError."""
    found = _DAY.match(text)
    if found:
        day, month, year = (int(g) for g in found.groups())
    else:
        iso = _ISO_DAY.match(text)
        if not iso:
            raise ValueError("not a date dd/mm/yyyy")
        year, month, day = (int(g) for g in iso.groups())
    return date(year, month, day)


def parse_vietnam_time(text: str) -> datetime:
    """A `datetime-local` value (`2026-12-05T14:30`, seconds optional) typed in Vietnam time,
    as an aware instant; raises ValueError."""
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is not None:
        return parsed
    return parsed.replace(tzinfo=VIETNAM)


def vietnam_input(value: datetime) -> str:
    """The `datetime-local` text of an instant in Vietnam time (to refill a filter form)."""
    return value.astimezone(VIETNAM).strftime("%Y-%m-%dT%H:%M")


def brief(details: object, limit: int = 90) -> str:
    """One line of an event's details for a table cell (`key: value · key: value`), cut at
    `limit` characters; the whole object is shown when the row is expanded."""
    if not isinstance(details, dict):
        return "" if details is None else str(details)[:limit]
    parts = []
    for key in sorted(details):
        value = details[key]
        if isinstance(value, dict | list):
            text = "{…}" if isinstance(value, dict) else f"[{len(value)}]"
        else:
            text = str(value)
        parts.append(f"{key}: {text}")
    line = " · ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"

"""An injectable clock: everything that checks validity or expiry asks it, tests freeze it.

`today()` is the civil date where births are registered (Vietnam, UTC+7): a registration made
at 06:00 local time on the 1st carries the 1st, which in UTC is still the 31st.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol

__all__ = ["CIVIL_TIMEZONE", "Clock", "FixedClock", "SystemClock"]

CIVIL_TIMEZONE = timezone(timedelta(hours=7), "ICT")


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().astimezone(CIVIL_TIMEZONE).date()


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def today(self) -> date:
        return self.at.astimezone(CIVIL_TIMEZONE).date()

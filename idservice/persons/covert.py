"""Covert access (contract section 11): a read or search an investigator hides from the
citizen's access report until a date, for a stated legal basis.

An officer who also holds the role `investigator` may add `hidden_until=YYYY-MM-DD` (after
today, at most `IDSERVICE_MAX_HIDDEN_DAYS` ahead) and `legal_basis` (required with it) to
`GET /v1/persons/{pin}` and `GET /v1/persons`. Both go into the event's `details`, so the log
(and every auditor) always has them; the Data Tracker leaves the usage out of `findUsage` while
the citizen's civil date is before `hidden_until` and lists it, with purpose and legal basis,
from that date on (`idservice/datatracker/usage.py`).

Refusals: `hidden_until` from anyone without the role is 403 `forbidden`; a missing legal basis,
a date that is not after today or too far ahead, or a legal basis without a date is 422
`invalid_field` (the caller may hide, the request breaks a field's rule). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from idservice.auth.policy import Action, authorize
from idservice.auth.principal import Principal
from idservice.errors import InvalidField
from idservice.persons.names import check_text

__all__ = ["HIDDEN_UNTIL", "LEGAL_BASIS", "MAX_LEGAL_BASIS", "Covert", "parse_covert"]

HIDDEN_UNTIL: Final = "hidden_until"
LEGAL_BASIS: Final = "legal_basis"
MAX_LEGAL_BASIS = 500


@dataclass(frozen=True, slots=True)
class Covert:
    hidden_until: date
    legal_basis: str

    def details(self) -> dict[str, str]:
        """What the access's audit events carry (ISO date: compared as text by the report)."""
        return {HIDDEN_UNTIL: self.hidden_until.isoformat(), LEGAL_BASIS: self.legal_basis}


def _date(value: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidField("must be a date YYYY-MM-DD", field=HIDDEN_UNTIL) from None


def parse_covert(principal: Principal, hidden_until: str | None, legal_basis: str | None, *,
                 today: date, max_days: int) -> Covert | None:
    """The covert part of a read or search, or None for an ordinary one; raises `Forbidden`
    or `InvalidField` (module docstring)."""
    if hidden_until is None and legal_basis is None:
        return None
    if hidden_until is None:
        raise InvalidField("legal_basis is given only together with hidden_until",
                           field=LEGAL_BASIS)
    authorize(principal, Action.COVERT_ACCESS)
    until = _date(hidden_until)
    last = today + timedelta(days=max_days)
    if not today < until <= last:
        raise InvalidField(f"must be after today and at most {max_days} days ahead "
                           f"(by {last.isoformat()})", field=HIDDEN_UNTIL)
    if legal_basis is None or not legal_basis.strip():
        raise InvalidField("a covert access needs its legal basis: name the decision or "
                           "article that allows it in legal_basis", field=LEGAL_BASIS)
    try:
        basis = check_text(legal_basis, max_length=MAX_LEGAL_BASIS)
    except ValueError as exc:
        raise InvalidField(f"legal_basis {exc}", field=LEGAL_BASIS) from exc
    return Covert(until, basis)

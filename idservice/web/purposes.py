"""The purpose an officer states before any record is shown (issue 15, item 1; contract 4:
every officer read carries `purpose`).

A short list of the usual purposes, plus "Other" with free text; details (a case number) may
follow any choice. The text recorded in the audit log is always the Vietnamese wording, whatever
the page's language, so the log reads the same for every auditor. Pure.
"""

from __future__ import annotations

from collections.abc import Callable

from idservice.errors import InvalidField, PurposeRequired
from idservice.web.i18n import N_

__all__ = ["OTHER", "PURPOSES", "purpose_text"]

OTHER = "other"
PURPOSES: tuple[tuple[str, str], ...] = (
    ("civil_status", N_("Civil status case (registration, change, extract)")),
    ("extract", N_("Issuing a copy or extract for the person or a family member")),
    ("authority", N_("Verification requested by a competent authority")),
    ("correction", N_("Correction requested by the citizen")),
    ("notice", N_("Printing the PIN notice for the family")),
    (OTHER, N_("Other (write it below)")),
)
_LABELS = dict(PURPOSES)
_MAX = 400


def purpose_text(choice: str | None, detail: str | None,
                 vietnamese: Callable[[str], str]) -> str:
    """The purpose to record for a choice of the list and the details typed with it;
    raises `PurposeRequired` when none was given, `InvalidField` for an unknown choice or
    "Other" without text."""
    choice = (choice or "").strip()
    detail = " ".join((detail or "").split())
    if not choice:
        raise PurposeRequired("state the purpose of this access", field="purpose")
    if choice not in _LABELS:
        raise InvalidField("not a purpose of the list", field="purpose")
    if len(detail) > _MAX:
        raise InvalidField(f"at most {_MAX} characters", field="purpose")
    if choice == OTHER:
        if not detail:
            raise PurposeRequired("write the purpose after choosing Other", field="purpose")
        return detail
    label = vietnamese(_LABELS[choice])
    return f"{label} — {detail}" if detail else label

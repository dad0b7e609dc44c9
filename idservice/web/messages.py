"""What a page says when a service refuses (issue 15, item 7: errors say what to do next).

The services raise the API's errors (`errors.py`: a contract code, a field, an English detail
for developers). People get a sentence in their language that says what to do, chosen here by
code and field; an error this table does not know keeps the service's own detail after a
translated title, so nothing is hidden. Pure: `gettext` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable

from idservice.errors import ProblemError
from idservice.web.i18n import N_

__all__ = ["describe"]

_BY_FIELD: dict[tuple[str, str | None], str] = {
    ("purpose_required", "purpose"): N_(
        "The purpose of access is required: choose one in the list, or choose \u201cOther\u201d "
        "and write it."),
    ("invalid_field", "purpose"): N_(
        "The purpose is too long or has characters that are not allowed: shorten it and try "
        "again."),
    ("invalid_field", "pin"): N_(
        "A PIN has 12 digits (for example 052 3 26 000123): check the number and type it "
        "again."),
    ("invalid_field", "full_name"): N_(
        "Type the full name as on the birth registration (1 to 200 characters)."),
    ("invalid_field", "date_of_birth"): N_(
        "Type the date of birth as dd/mm/yyyy, for example 05/01/2026."),
    ("invalid_field", "province_code"): N_("Choose a province from the list."),
    ("invalid_field", "reason"): N_(
        "The reason for the correction is required: write why the record must change."),
    ("invalid_field", "since"): N_(
        "Type the start as a date and time (dd/mm/yyyy HH:mm, Vietnam time)."),
    ("invalid_field", "until"): N_(
        "Type the end as a date and time (dd/mm/yyyy HH:mm, Vietnam time)."),
    ("invalid_field", "actor"): N_(
        "Type an operator's name or id, or a client id (characters that cannot be printed are "
        "not allowed)."),
    ("invalid_field", "after"): N_("This page link is out of date: start again from the first "
                                   "page."),
    ("forbidden", "csrf"): N_("This form is out of date or did not come from this site: reload "
                              "the page and send it again."),
    ("invalid_field", "changes"): N_("Nothing was changed: the values you entered are the ones "
                                     "already on the record. Change a value, or go back."),
    ("no_change", None): N_("Nothing was changed: the values you entered are the ones already "
                            "on the record. Change a value, or go back."),
}

_BY_CODE: dict[str, str] = {
    "unauthenticated": N_("Your session has ended: log in again with your token."),
    "forbidden": N_("You are not allowed to do this with your account (role or province). "
                    "Ask an officer of the right province, or your administrator."),
    "not_found": N_("No person has this PIN. Check the number, or search by name and date of "
                    "birth."),
    "unavailable": N_("The service cannot answer right now, and nothing was changed. Try again "
                      "in a minute; if it goes on, call the service desk."),
    "pin_space_exhausted": N_("No new PIN can be issued for this birth year and sex in this "
                              "province. Call the service desk; the record was not changed."),
    "registration_conflict": N_("This registration was already used for another record. Check "
                                "the registration number."),
    "payload_too_large": N_("What you sent is too long: shorten it and try again."),
    "person_deceased": N_("This person is registered as deceased: the sex or the year of birth "
                          "cannot be changed. If the death registration is wrong, undo it first "
                          "from the record page, then correct."),
}


def describe(exc: ProblemError, gettext: Callable[[str], str]) -> str:
    """One sentence for people, in the page's language."""
    if exc.code == "invalid_field" and exc.field == "pin" and "replaced by" in exc.detail:
        return gettext("This PIN was cancelled and replaced by another one: open the new PIN "
                       "and work on that record.")
    text = _BY_FIELD.get((exc.code, exc.field)) or _BY_FIELD.get((exc.code, None))
    if text is not None:
        return gettext(text)
    if exc.code == "invalid_field" and exc.field and exc.field.startswith("changes"):
        return gettext("A value of the correction is not accepted ({field}: {detail}). Fix it "
                       "and try again.").format(field=exc.field, detail=exc.detail)
    known = _BY_CODE.get(exc.code)
    if known is not None:
        return gettext(known)
    return gettext("The request was refused ({code}): {detail}").format(code=exc.code,
                                                                       detail=exc.detail)

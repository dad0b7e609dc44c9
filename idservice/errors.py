"""Errors with stable machine codes, rendered as RFC 9457 problem details (contract section 1).

Every error the service means to return is a `ProblemError` subclass carrying its HTTP status
and contract `code`; one handler in `api/problems.py` renders them. Anything else is a bug and
is answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyDeceased",
    "Forbidden",
    "InvalidField",
    "MalformedRequest",
    "MethodNotAllowed",
    "NoChange",
    "NotFound",
    "PayloadTooLarge",
    "PersonDeceased",
    "PinCancelled",
    "PinNotReserved",
    "PinSpaceExhausted",
    "PossibleDuplicate",
    "ProblemError",
    "PurposeRequired",
    "RateLimited",
    "RegistrationConflict",
    "ReservationConflict",
    "ReservationLimit",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
]


class ProblemError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, *, field: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        detail = detail or self.title
        if field is not None:
            detail = _with_field(field, detail)
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra or {}  # further members of the problem body (RFC 9457 3.2)

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:idservice:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body


def _with_field(field: str, detail: str) -> str:
    """The one form of a message about a field: `child.sex: must be "M" or "F"`, the full path
    first. A message that starts with the field's own name ("purpose must not ...") loses it."""
    if detail.startswith(f"{field}:"):
        return detail
    for name in (field, field.rsplit(".", 1)[-1]):
        if detail.startswith(f"{name} "):
            detail = detail[len(name) + 1:]
            break
    return f"{field}: {detail}"


class InvalidField(ProblemError):
    status, code, title = 422, "invalid_field", "A field breaks its rule"


class MalformedRequest(ProblemError):
    status, code, title = 400, "malformed_request", "Malformed request"


class UnsupportedMediaType(ProblemError):
    """Extension: the contract has no code for a wrong Content-Type; 415 says it precisely."""

    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class Unauthenticated(ProblemError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(ProblemError):
    status, code, title = 404, "not_found", "Not found"


class NoChange(ProblemError):
    """Contract 7: a correction that leaves the record as it is."""

    status, code, title = 422, "no_change", "Nothing to change"


class MethodNotAllowed(ProblemError):
    """Extension: a known path with a method it does not have; `allow` lists those it has
    (sent as the `Allow` header, RFC 9110 15.5.6)."""

    status, code, title = 405, "method_not_allowed", "Method not allowed"

    def __init__(self, detail: str | None = None, *, allow: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.allow = allow


class RegistrationConflict(ProblemError):
    status, code, title = 409, "registration_conflict", "Registration key already used"


class PinSpaceExhausted(ProblemError):
    status, code, title = 409, "pin_space_exhausted", "PIN space exhausted"


class PinNotReserved(ProblemError):
    """Contract 8: an offline PIN that is not in this reservation, or not in the birth's bucket."""

    status, code, title = 422, "pin_not_reserved", "PIN not reserved for this birth"


class ReservationConflict(ProblemError):
    """Contract 8: a reserved PIN already used for another registration."""

    status, code, title = 409, "reservation_conflict", "Reserved PIN already used"


class ReservationLimit(ProblemError):
    """Contract 8: more unused reserved PINs than `IDSERVICE_RESERVATION_MAX_OPEN`."""

    status, code, title = 409, "reservation_limit", "Too many unused reserved PINs"


class PurposeRequired(ProblemError):
    status, code, title = 400, "purpose_required", "Purpose required"


class Unavailable(ProblemError):
    status, code, title = 503, "unavailable", "Service unavailable"


class RateLimited(ProblemError):
    """Extension: too many authentication requests (`auth/rate_limit.py`); 429 + Retry-After."""

    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PossibleDuplicate(ProblemError):
    """Contract 9: the child matches an existing active person (`details.candidates`)."""

    status, code, title = 409, "possible_duplicate", "Possible duplicate registration"


class AlreadyDeceased(ProblemError):
    """Contract 9: a death registered under another death registration key."""

    status, code, title = 409, "already_deceased", "Person already registered as deceased"


class PinCancelled(ProblemError):
    """Contract 9: the PIN was replaced by a correction (`replaced_by` in the body)."""

    status, code, title = 409, "pin_cancelled", "PIN cancelled"


class PersonDeceased(ProblemError):
    """Extension (issue 11): a correction of sex or birth year would reissue the PIN of a
    deceased person; undo the death first if it was registered in error."""

    status, code, title = 409, "person_deceased", "Person is deceased"

"""The refusal OpenCRVS understands: HTTP 400 `{"reason"}` rejects the REGISTER action."""

from __future__ import annotations

from idservice.errors import ProblemError

__all__ = ["OpenCrvsRefusal"]


class OpenCrvsRefusal(ProblemError):
    """The event cannot become a birth registration as sent (a field missing or unusable)."""

    status, code, title = 400, "opencrvs_refused", "Registration refused"

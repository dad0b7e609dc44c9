"""Reading JSON request bodies strictly: media type, size, syntax, then the model.

FastAPI's own body parsing is lax about media types and maps every failure to one 422; the
contract wants 400 for syntax and missing parts, 422 for a broken field rule, 413 above 1 MiB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from idservice.errors import (
    InvalidField,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)

__all__ = ["check_media_type", "error_message", "field_path", "parse_model", "read_body",
           "validate_model", "validation_problem"]

M = TypeVar("M", bound=BaseModel)


def check_media_type(request: Request, *accepted: str) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in accepted:
        raise UnsupportedMediaType(f"Content-Type must be {' or '.join(accepted)}")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def field_path(loc: tuple[int | str, ...]) -> str | None:
    """`("child", "other_names", 2)` -> `child.other_names.2` (pydantic's internal
    `function-...` steps dropped)."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    return ".".join(parts) or None


def _quoted(expected: object) -> str:
    """pydantic's `'M' or 'F'` in our quotes: `"M" or "F"`."""
    return re.sub(r"'([^']*)'", r'"\1"', str(expected))


# Our own wording for each kind of pydantic error: the library's ("Input should be 'M' or
# 'F'") changes between versions and reads like a stack trace to a civil servant. Each entry
# gets the error's `ctx`. A kind not listed says "is not valid" rather than leak a message.
_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "literal_error": lambda c: f"must be {_quoted(c.get('expected', ''))}",
    "enum": lambda c: f"must be {_quoted(c.get('expected', ''))}",
    "string_type": lambda c: "must be a string",
    "string_too_short": lambda c: f"must have at least {c.get('min_length')} characters",
    "string_too_long": lambda c: f"must have at most {c.get('max_length')} characters",
    "string_pattern_mismatch": lambda c: f"must match the pattern {c.get('pattern')}",
    "string_unicode": lambda c: "must be valid Unicode text",
    "int_type": lambda c: "must be an integer",
    "int_parsing": lambda c: "must be an integer",
    "int_from_float": lambda c: "must be an integer",
    "float_type": lambda c: "must be a number",
    "float_parsing": lambda c: "must be a number",
    "bool_type": lambda c: "must be true or false",
    "bool_parsing": lambda c: "must be true or false",
    "list_type": lambda c: "must be a list",
    "too_short": lambda c: f"must have at least {c.get('min_length')} items",
    "too_long": lambda c: f"must have at most {c.get('max_length')} items",
    "dict_type": lambda c: "must be an object",
    "model_type": lambda c: "must be an object",
    "model_attributes_type": lambda c: "must be an object",
    "date_type": lambda c: "must be a date YYYY-MM-DD",
    "date_parsing": lambda c: "must be a date YYYY-MM-DD",
    "date_from_datetime_parsing": lambda c: "must be a date YYYY-MM-DD",
    "datetime_type": lambda c: "must be a date and time (RFC 3339)",
    "datetime_parsing": lambda c: "must be a date and time (RFC 3339)",
    "greater_than": lambda c: f"must be greater than {c.get('gt')}",
    "greater_than_equal": lambda c: f"must be at least {c.get('ge')}",
    "less_than": lambda c: f"must be less than {c.get('lt')}",
    "less_than_equal": lambda c: f"must be at most {c.get('le')}",
    "none_required": lambda c: "must be null",
    "extra_forbidden": lambda c: "is not a known field: leave it out",
    "missing": lambda c: "is required",
}


def error_message(error: Mapping[str, Any]) -> str:
    """`field: what is wrong` in our words, for one pydantic error (body or query)."""
    kind = str(error.get("type", ""))
    if kind in ("value_error", "assertion_error"):  # raised by our own validators
        what = str(error.get("msg", "is not valid"))
        what = what.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    else:
        describe = _MESSAGES.get(kind)
        what = describe(dict(error.get("ctx") or {})) if describe else "is not valid"
    field = field_path(tuple(error.get("loc", ())))
    return f"{field}: {what}" if field else what


def validation_problem(exc: ValidationError) -> MalformedRequest | InvalidField:
    """The first error decides: bad JSON or a missing part is 400, a broken rule is 422."""
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    field = field_path(error["loc"])
    if kind == "json_invalid":
        return MalformedRequest("body is not valid JSON")
    if kind == "missing":
        return MalformedRequest(error_message(error), field=field)
    if kind in ("model_type", "model_attributes_type", "dict_type") and field is None:
        return MalformedRequest("body must be a JSON object")
    if kind == "extra_forbidden":
        return InvalidField(error_message(error), field=field)
    return InvalidField(error_message(error), field=field)


def parse_model(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    except UnicodeDecodeError:
        raise MalformedRequest("body is not UTF-8") from None


def validate_model(model: type[M], data: object) -> M:
    """`parse_model` for a body already decoded from JSON (and mapped by an adapter): the same
    strict validation and the same problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def json_body(request: Request, model: type[M], limit: int) -> M:
    check_media_type(request, "application/json")
    return parse_model(model, await read_body(request, limit))

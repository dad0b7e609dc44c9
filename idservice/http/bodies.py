"""Reading JSON request bodies strictly: media type, size, syntax, then the model.

FastAPI's own body parsing is lax about media types and maps every failure to one 422; the
contract wants 400 for syntax and missing parts, 422 for a broken field rule, 413 above 1 MiB.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from idservice.errors import (
    InvalidField,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)

__all__ = ["check_media_type", "parse_model", "read_body", "validate_model",
           "validation_problem"]

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


def _field(loc: tuple[int | str, ...]) -> str | None:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    return ".".join(parts) or None


def validation_problem(exc: ValidationError) -> MalformedRequest | InvalidField:
    """The first error decides: bad JSON or a missing part is 400, a broken rule is 422."""
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    field = _field(error["loc"])
    if kind == "json_invalid":
        return MalformedRequest("body is not valid JSON")
    if kind == "missing":
        return MalformedRequest(f"required field {field} is missing", field=field)
    if kind in ("model_type", "model_attributes_type", "dict_type") and field is None:
        return MalformedRequest("body must be a JSON object")
    if kind == "extra_forbidden":
        return InvalidField(f"unknown field {field}", field=field)
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    return InvalidField(f"{field}: {message}" if field else message, field=field)


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

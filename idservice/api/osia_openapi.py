"""How the OSIA routes document their errors in our OpenAPI document: the spec's `Error`
schema, 400/500 with it, and the statuses the specs document without a body."""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA", "error_responses"]

ERROR_SCHEMA = {"type": "object", "required": ["code", "message"], "additionalProperties": False,
                "properties": {"code": {"type": "integer", "format": "int32"},
                               "message": {"type": "string"}}}

_BODYLESS_TEXTS = {401: "Client must be authenticated",
                   403: "Service forbidden (role, purpose or jurisdiction)",
                   404: "Unknown uin"}


def error_responses(*bodyless: int, not_found: str | None = None,
                    docs: str = "docs/integrations.md") -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {
        400: {"description": f"Refused: `code` says why ({docs})",
              "content": {"application/json": {"schema": ERROR_SCHEMA}}},
        500: {"description": "Unexpected error (5003: unavailable, nothing was done; retry)",
              "content": {"application/json": {"schema": ERROR_SCHEMA}}}}
    for status in bodyless:
        text = not_found if status == 404 and not_found else _BODYLESS_TEXTS[status]
        responses[status] = {"description": text}
    return responses

"""OpenAPI document: request bodies are parsed by `api/bodies.py`, so their schemas are added
here from the same pydantic models (one source of truth for docs and validation)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

__all__ = ["install_openapi", "json_body_doc", "ndjson_body_doc"]

_MODELS: dict[str, type[BaseModel]] = {}


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    _MODELS[model.__name__] = model
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def ndjson_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    _MODELS[model.__name__] = model
    return {"requestBody": {"required": True, "content": {"application/x-ndjson": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
        "description": "one JSON object per line"}}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in _MODELS.items():
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[name] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

"""OpenAPI document: request bodies are parsed by `http/bodies.py`, so their schemas are added
here from the same pydantic models (one source of truth for docs and validation).

Responses are documented as they are sent (the fuzz test, `tests/fuzz/`, checks every answer
against this document): the models below are documentation only, routes build their bodies
themselves. Every 4xx/5xx the service produces is an RFC 9457 problem (`Problem`), added to
each operation by `install_openapi` from what the operation has (a bearer token, parameters, a
body); route decorators add the codes only they produce (`problem_doc`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ISSUE_EXAMPLE",
    "AuditEventDoc",
    "BatchLineDoc",
    "ChallengeDoc",
    "CheckpointKeysDoc",
    "CheckpointsDoc",
    "ClientTokenDoc",
    "ConsistencyProofDoc",
    "EventsPageDoc",
    "InclusionProofDoc",
    "IssuedDoc",
    "OAuthErrorDoc",
    "OfficerTokenDoc",
    "PersonDoc",
    "PersonSearchDoc",
    "ProblemDoc",
    "ReadinessDoc",
    "VerifyResultDoc",
    "install_openapi",
    "json_body_doc",
    "ndjson_body_doc",
    "problem_doc",
    "stream_response_doc",
]

_MODELS: dict[str, type[BaseModel]] = {}
PROBLEM_MEDIA = "application/problem+json"


class ProblemDoc(BaseModel):
    """RFC 9457 problem details with the contract's stable `code` (contract section 1)."""

    model_config = ConfigDict(title="Problem")

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    code: str
    detail: str
    field: str | None = Field(default=None, description="the one field at fault, if any")


class OAuthErrorDoc(BaseModel):
    """RFC 6749 section 5.2 error body of the token endpoint."""

    model_config = ConfigDict(title="OAuthError")

    error: str
    error_description: str | None = None


class ClientTokenDoc(BaseModel):
    model_config = ConfigDict(title="ClientToken")

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str


class OperatorDoc(BaseModel):
    model_config = ConfigDict(title="Operator")

    id: str
    name: str
    roles: list[str]
    jurisdiction: str


class OfficerTokenDoc(BaseModel):
    model_config = ConfigDict(title="OfficerToken")

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    operator: OperatorDoc


class ChallengeDoc(BaseModel):
    model_config = ConfigDict(title="Challenge")

    nonce: str = Field(min_length=44, max_length=44)
    expires_in: int


class IssuedDoc(BaseModel):
    model_config = ConfigDict(title="IssuedPin")

    pin: str = Field(pattern=r"^[0-9]{12}$")
    status: Literal["active", "deceased", "cancelled"]
    issued_at: str
    registration: dict[str, Any]


class BatchLineDoc(BaseModel):
    """One NDJSON line of the batch answer: a PIN, a problem, or (`line` null) a fatal error
    that ended the batch."""

    model_config = ConfigDict(title="BatchResultLine")

    line: int | None
    pin: str | None = None
    status: str | None = None
    replayed: bool | None = None
    error: ProblemDoc | None = None


class VerifyResultDoc(BaseModel):
    model_config = ConfigDict(title="VerifyResult")

    match: bool


class PersonDoc(BaseModel):
    """A person record: the registration body as issued (or corrected) plus its status."""

    model_config = ConfigDict(title="Person", extra="allow")

    pin: str = Field(pattern=r"^[0-9]{12}$")
    status: Literal["active", "deceased", "cancelled"]
    replaced_by: str | None
    issued_at: str
    updated_at: str
    registration: dict[str, Any]
    child: dict[str, Any]
    father: dict[str, Any] | None
    mother: dict[str, Any] | None
    replaces: str | None = Field(default=None, description="after a re-issuing correction")
    death: dict[str, Any] | None = Field(
        default=None, description="the death registration of a deceased person (contract 9)")


class PersonSearchDoc(BaseModel):
    model_config = ConfigDict(title="PersonSearch")

    persons: list[PersonDoc]
    count: int
    limit: int


class ActorDoc(BaseModel):
    model_config = ConfigDict(title="Actor")

    # anonymous: `auth.rate_limited` and refusals without a certificate; certificate: a login
    # refused before its path validated; admin: `operators` / `clients` commands (contract 7)
    type: Literal["operator", "client", "anonymous", "certificate", "admin"]
    id: str


class AuditEventDoc(BaseModel):
    model_config = ConfigDict(title="AuditEvent")

    index: int
    at: str
    actor: ActorDoc
    action: str
    pin: str | None
    purpose: str | None
    outcome: str
    request_id: str | None
    source_ip: str | None
    details: dict[str, Any]


class EventsPageDoc(BaseModel):
    model_config = ConfigDict(title="AuditEventsPage")

    events: list[AuditEventDoc]
    next: str | None


class CheckpointsDoc(BaseModel):
    model_config = ConfigDict(title="Checkpoints")

    checkpoints: list[str]


class CheckpointKeyDoc(BaseModel):
    model_config = ConfigDict(title="CheckpointKey")

    name: str = Field(description="signed-note key name (the checkpoints' origin line)")
    key_id: str = Field(pattern=r"^[0-9a-f]{8}$",
                        description="C2SP signed-note key ID in lowercase hex: the first 4 "
                                    "bytes of SHA-256 of the SubjectPublicKeyInfo DER")
    status: Literal["current", "retired"] = Field(
        description="current signs new checkpoints; retired ones only verify older ones")
    public_key_pem: str


class CheckpointKeysDoc(BaseModel):
    """Extension: every checkpoint key, the current one first."""

    model_config = ConfigDict(title="CheckpointKeys")

    keys: list[CheckpointKeyDoc] = Field(min_length=1)


class InclusionProofDoc(BaseModel):
    model_config = ConfigDict(title="InclusionProof")

    leaf_index: int
    tree_size: int
    hashes: list[str]


class ConsistencyProofDoc(BaseModel):
    model_config = ConfigDict(title="ConsistencyProof")

    first: int
    second: int
    hashes: list[str]


class ReadinessDoc(BaseModel):
    model_config = ConfigDict(title="Readiness")

    status: Literal["ready", "not_ready"]
    checks: dict[str, str] | None = Field(
        default=None, description="what is up or down: only for callers on this host "
                                  "(loopback); /metrics has the same details")


ISSUE_EXAMPLE: dict[str, Any] = {
    "registration": {"authority": "UBND xã Nhơn Lý", "number": "12/2024", "book": "01/2024",
                     "registered_on": "2024-03-10", "province_code": "052"},
    "child": {"full_name": "Nguyễn Thị Minh Anh", "other_names": [], "sex": "F",
              "date_of_birth": "2024-03-02", "place_of_birth": "Quy Nhơn",
              "home_town": "Bình Định", "ethnicity": "Kinh", "nationality": "VN"},
    "father": {"full_name": "Nguyễn Văn Hùng", "pin": "052090012345", "nationality": "VN"},
    "mother": None,
}


def json_body_doc(model: type[BaseModel], example: Any = None) -> dict[str, Any]:
    _MODELS[model.__name__] = model
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


def ndjson_body_doc(model: type[BaseModel], example: Any = None) -> dict[str, Any]:
    """A body of NDJSON lines, each one `model` (the schema is that of a line)."""
    _MODELS[model.__name__] = model
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "description": "one JSON object per line",
                            "content": {"application/x-ndjson": media}}}


def stream_response_doc(model: type[BaseModel], media: str, description: str
                        ) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a 200 streamed as `media` (NDJSON): `model` is the schema of a line."""
    _MODELS[model.__name__] = model
    return {200: {"description": description, "content": {media: {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


_DESCRIPTIONS = {
    400: "malformed request", 401: "no, bad, expired or revoked access token",
    403: "role or jurisdiction does not allow it", 404: "no such resource",
    409: "conflict", 413: "payload too large", 415: "unsupported media type",
    422: "a field breaks its rule", 503: "database or HSM unavailable; nothing was done",
    429: "rate limited (IDSERVICE_AUTH_RATE_LIMIT); retry after `Retry-After` seconds",
}


def _problem(status: int, description: str | None = None) -> dict[str, Any]:
    return {"description": description or _DESCRIPTIONS.get(status, "error"),
            "content": {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def problem_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for problems an operation adds to the common ones (`404`, ...)."""
    return {status: _problem(status) for status in statuses}


# Operations that reach neither the database nor the HSM, and cannot fail otherwise.
_NO_PROBLEMS = {("get", "/healthz"), ("get", "/metrics"), ("get", "/.well-known/jwks.json")}


def _add_common_problems(schema: dict[str, Any]) -> None:
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            if op.get("x-error-format"):
                # A field interface (OSIA, OpenCRVS) documents its own errors; FastAPI's 422
                # is never sent there (its validation errors are 400 in that format).
                responses.pop("422", None)
                continue
            wanted: set[int] = set()
            if (method, path) not in _NO_PROBLEMS:
                wanted.add(503)
            if op.get("security"):
                wanted |= {401, 403}
            if op.get("parameters"):
                wanted |= {400, 422}
            body = op.get("requestBody", {}).get("content", {})
            if any(media != "application/x-www-form-urlencoded" for media in body):
                wanted |= {400, 413, 415, 422}
            for status in sorted(wanted):
                entry = responses.get(str(status))
                if entry is None or "HTTPValidationError" in str(entry):
                    responses[str(status)] = _problem(status)
    components = schema.get("components", {}).get("schemas", {})
    if "HTTPValidationError" not in str(schema.get("paths")):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        models: dict[str, type[BaseModel]] = {**_MODELS, "Problem": ProblemDoc}
        for name, model in models.items():
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[name] = model_schema
        _add_common_problems(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

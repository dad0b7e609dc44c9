"""Auditor routes: events, export, checkpoints, the checkpoint keys, proofs (contract section 5).

Every route but the public key needs the `auditor` role, and every such read is itself an
`audit.read` event (idservice/audit/reads.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from idservice.api.openapi import (
    AuditEventDoc,
    CheckpointKeysDoc,
    CheckpointsDoc,
    ConsistencyProofDoc,
    EventsPageDoc,
    InclusionProofDoc,
    problem_doc,
    stream_response_doc,
)
from idservice.audit import reads
from idservice.audit.export_format import export_headers, render_export
from idservice.audit.signed_note import NoteVerifier, key_id, public_pem
from idservice.auth.policy import Action, authorize
from idservice.errors import Unavailable
from idservice.http.deps import Caller, Svc, request_context
from idservice.services import Services

__all__ = ["router"]

router = APIRouter(tags=["audit"])

# Indexes and sizes are recorded in `audit.read` details, which must stay RFC 8785 (I-JSON)
# integers for the Merkle leaf: at most 2^53 - 1.
MAX_INDEX = 2**53 - 1
_Text = Annotated[str | None, Query(max_length=200)]
_Index = Annotated[int, Query(ge=0, le=MAX_INDEX)]


def _filter(pin: str | None, actor: str | None, action: str | None, since: str | None,
            until: str | None) -> reads.EventFilter:
    return reads.parse_filter(pin=pin, actor=actor, action=action, since=since, until=until)


@router.get("/v1/audit/events", responses={200: {"model": EventsPageDoc}})
async def list_events(
    request: Request, svc: Svc, caller: Caller, pin: _Text = None, actor: _Text = None,
    action: _Text = None, since: _Text = None, until: _Text = None,
    limit: Annotated[int, Query(ge=1, le=reads.MAX_LIMIT)] = 100, after: _Text = None,
) -> dict[str, Any]:
    authorize(caller, Action.AUDIT_EVENTS)
    flt = _filter(pin, actor, action, since, until)
    return await reads.search(svc.pool, caller, request_context(request, caller), flt, limit,
                              after)


@router.get("/v1/audit/events/{index}",
            responses={200: {"model": AuditEventDoc}, **problem_doc(404)})
async def get_event(request: Request, svc: Svc, caller: Caller,
                    index: Annotated[int, Path(ge=0, le=MAX_INDEX)]) -> dict[str, Any]:
    authorize(caller, Action.AUDIT_EVENTS)
    return await reads.get_event(svc.pool, caller, request_context(request, caller), index)


_EXPORT_DOC = stream_response_doc(AuditEventDoc, "application/x-ndjson",
                                  "events, one per line (NDJSON) or as CSV")
_EXPORT_DOC[200]["content"]["text/csv"] = {"schema": {"type": "string"}}


@router.get("/v1/audit/export", response_class=StreamingResponse, responses=_EXPORT_DOC)
async def export_events(
    request: Request, svc: Svc, caller: Caller,
    format: Literal["csv", "ndjson"] = "ndjson",
    pin: _Text = None, actor: _Text = None, action: _Text = None, since: _Text = None,
    until: _Text = None,
) -> StreamingResponse:
    authorize(caller, Action.AUDIT_EVENTS)
    flt = _filter(pin, actor, action, since, until)
    rows = await reads.export(svc.pool, caller, request_context(request, caller), flt, format)
    media, headers = export_headers(format)
    return StreamingResponse(render_export(rows, format), media_type=media, headers=headers)


@router.get("/v1/audit/checkpoint", response_class=PlainTextResponse,
            responses={200: {"description": "C2SP signed note", "content": {
                "text/plain": {"schema": {"type": "string"}}}}, **problem_doc(404)})
async def latest_checkpoint(request: Request, svc: Svc, caller: Caller) -> PlainTextResponse:
    authorize(caller, Action.AUDIT_TREE)
    note = await reads.checkpoint(svc.pool, caller, request_context(request, caller))
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get("/v1/audit/checkpoints", responses={200: {"model": CheckpointsDoc}})
async def list_checkpoints(
    request: Request, svc: Svc, caller: Caller,
    since: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> dict[str, Any]:
    """Extension: every signed checkpoint from tree size `since` on, oldest first."""
    authorize(caller, Action.AUDIT_TREE)
    notes = await reads.checkpoints(svc.pool, caller, request_context(request, caller), since,
                                    limit)
    return {"checkpoints": notes}


def _verifier(svc: Services) -> NoteVerifier:
    if svc.audit_signer is None:
        raise Unavailable("the audit checkpoint key is not available")
    return svc.audit_signer.verifier


@router.get("/v1/audit/key", response_class=Response, responses={200: {
    "description": "PEM public key", "content": {
        "application/x-pem-file": {"schema": {"type": "string"}}}}})
async def checkpoint_key(svc: Svc) -> Response:
    """The public key that signs checkpoints (PEM; public, so no token is needed). The signed
    note key name is in the `Idservice-Note-Key-Name` header."""
    verifier = _verifier(svc)
    return Response(verifier.public_pem(), media_type="application/x-pem-file",
                    headers={"Idservice-Note-Key-Name": verifier.name})


@router.get("/v1/audit/keys", responses={200: {"model": CheckpointKeysDoc}})
async def checkpoint_keys(request: Request, svc: Svc, caller: Caller) -> dict[str, Any]:
    """Extension: every key checkpoints may be signed with, the current one first, then the
    retired ones (`IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS`) that verify older checkpoints.
    `key_id` is the signed-note key ID in hex, as in each signature line."""
    authorize(caller, Action.AUDIT_TREE)
    verifier = _verifier(svc)
    keys = [{"name": verifier.name, "key_id": key_id(key).hex(),
             "status": "current" if key is verifier.public_key else "retired",
             "public_key_pem": public_pem(key)} for key in verifier.keys]
    await reads.checkpoint_keys(svc.pool, caller, request_context(request, caller),
                                [k["key_id"] for k in keys])
    return {"keys": keys}


@router.get("/v1/audit/proofs/inclusion", responses={200: {"model": InclusionProofDoc}})
async def inclusion_proof(request: Request, svc: Svc, caller: Caller, index: _Index,
                          tree_size: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
                          ) -> dict[str, Any]:
    authorize(caller, Action.AUDIT_TREE)
    return await reads.inclusion_proof(svc.pool, caller, request_context(request, caller),
                                       index, tree_size)


@router.get("/v1/audit/proofs/consistency",
            responses={200: {"model": ConsistencyProofDoc}})
async def consistency_proof(request: Request, svc: Svc, caller: Caller, first: _Index,
                            second: _Index) -> dict[str, Any]:
    authorize(caller, Action.AUDIT_TREE)
    return await reads.consistency_proof(svc.pool, caller, request_context(request, caller),
                                         first, second)

"""Data Tracker usage API under `/datatracker` (contract section 11): Estonia's
`dumonitor-openapi.yaml` (findUsage, usagePeriod, heartbeat) for clients with role `portal`,
plus the extensions `proof` and `pageLink` (docs/datatracker.md).

A thin adapter: it maps the spec's parameters to `datatracker/service.py` and back. The spec
documents 400 for every bad request, so here a parameter that breaks its rule is
`400 malformed_request` (with `field`), never 422; problems stay problem+json.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from idservice.api.openapi import AuditEventDoc, problem_doc
from idservice.auth.policy import Action, authorize
from idservice.datatracker import rules, service, sessions
from idservice.datatracker.service import MAX_LIMIT, Period
from idservice.errors import MalformedRequest
from idservice.http.deps import Caller, Svc, request_context

__all__ = ["router"]

router = APIRouter(prefix="/datatracker/v2", tags=["datatracker"])

# RFC 3339 date-time (with a zone); fromisoformat alone would take dates and zone-less times.
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)",
                        re.ASCII | re.IGNORECASE)
_MAX_INDEX = 2**53 - 1

UserId = Annotated[str | None, Header(
    alias=rules.USER_ID_HEADER, description="VN followed by the 12-digit PIN of the citizen "
    "logged in at the portal")]
UserCode = Annotated[str | None, Query(
    alias="userCode", description="the data subject's PIN (12 digits, optionally VN-prefixed)")]
_Text = Annotated[str | None, Query()]


class UsageDoc(BaseModel):
    model_config = ConfigDict(title="Usage", extra="allow")

    logtime: str
    action: str = Field(description="the stated purpose, or what was done, in Vietnamese")
    receiverCode: str
    receiverName: str | None = None
    receiverSystem: str
    auditIndex: int = Field(description="extension: the event's index in the audit log")
    hiddenUntil: str | None = Field(default=None, description="extension: a covert access, "
                                    "shown from this date")
    legalBasis: str | None = Field(default=None, description="extension: its legal basis")


class FindUsageDoc(BaseModel):
    model_config = ConfigDict(title="FindUsageResponse")

    totalUsages: int
    usages: list[UsageDoc]


class UsagePeriodDoc(BaseModel):
    model_config = ConfigDict(title="UsagePeriodResponse")

    periodStart: str
    periodEnd: str | None = None


class HeartbeatDoc(BaseModel):
    model_config = ConfigDict(title="HeartbeatResponse")

    status: str = Field(pattern="^(OK|FAIL)$")
    message: str | None = None


class UsageProofDoc(BaseModel):
    model_config = ConfigDict(title="UsageProof")

    leaf_index: int
    tree_size: int
    hashes: list[str]
    checkpoint: str = Field(description="C2SP signed note the proof leads to")
    event: AuditEventDoc = Field(description="the audit event itself: the proof's leaf")


class PageLinkDoc(BaseModel):
    model_config = ConfigDict(title="CitizenPageLink")

    url: str = Field(description="single-use link to the citizen's page; send the citizen's "
                                 "browser there")
    expires_in: int


def _time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    if not _DATE_TIME.fullmatch(value):
        raise MalformedRequest(f"{field} must be an RFC 3339 date-time, e.g. "
                               "2026-01-31T10:20:30Z", field=field)
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedRequest(f"{field} is not a valid date-time", field=field) from None


def _int(value: str | None, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 16) or \
            not low <= int(value) <= high:
        raise MalformedRequest(f"{field} must be an integer {low} .. {high}", field=field)
    return int(value)


@router.get("/findUsage", operation_id="findUsage", responses={200: {"model": FindUsageDoc}})
async def find_usage(
    request: Request, svc: Svc, caller: Caller, user_id: UserId = None,
    user_code: UserCode = None,
    period_start: Annotated[str | None, Query(alias="periodStart")] = None,
    period_end: Annotated[str | None, Query(alias="periodEnd")] = None,
    offset: _Text = None, limit: _Text = None,
) -> dict[str, Any]:
    """The usages of the subject's record, newest first; `totalUsages` counts the period's."""
    authorize(caller, Action.DATATRACKER)
    requester = rules.parse_user_id(user_id)
    subject = rules.parse_user_code(user_code)
    period = Period(_time(period_start, "periodStart"), _time(period_end, "periodEnd"))
    return await service.find_usage(
        svc.persons, caller, request_context(request, caller), requester=requester,
        subject=subject, period=period, offset=_int(offset, "offset", 0, 0, 2**31 - 1),
        limit=_int(limit, "limit", MAX_LIMIT, 1, MAX_LIMIT))


@router.get("/usagePeriod", operation_id="usagePeriod",
            responses={200: {"model": UsagePeriodDoc}})
async def usage_period(svc: Svc, caller: Caller) -> dict[str, Any]:
    return await service.usage_period(svc.persons, caller)


@router.get("/heartbeat", operation_id="heartbeat", responses={200: {"model": HeartbeatDoc}})
async def heartbeat(svc: Svc, caller: Caller) -> dict[str, Any]:
    return await service.heartbeat(svc.persons, caller)


@router.get("/proof", responses={200: {"model": UsageProofDoc}, **problem_doc(404)})
async def usage_proof(request: Request, svc: Svc, caller: Caller, user_id: UserId = None,
                      audit_index: Annotated[str | None, Query(alias="auditIndex")] = None,
                      user_code: UserCode = None) -> dict[str, Any]:
    """Extension: the inclusion proof of one usage (its `auditIndex`) against the latest
    signed checkpoint, with the event itself; `userCode` defaults to the event's PIN."""
    authorize(caller, Action.DATATRACKER)
    requester = rules.parse_user_id(user_id)
    if audit_index is None:
        raise MalformedRequest("auditIndex is required", field="auditIndex")
    index = _int(audit_index, "auditIndex", 0, 0, _MAX_INDEX)
    subject = None if user_code is None else rules.parse_user_code(user_code)
    return await service.proof(svc.persons, caller, request_context(request, caller),
                               requester=requester, index=index, subject=subject)


@router.post("/pageLink", status_code=201, responses={201: {"model": PageLinkDoc}})
async def page_link(request: Request, svc: Svc, caller: Caller, user_id: UserId = None,
                    user_code: UserCode = None) -> JSONResponse:
    """Extension: a single-use link to the citizen's page (`/citizen/usage`) about
    `userCode` (default: the citizen), for the browser of the citizen logged in at the
    portal. The link lives `IDSERVICE_CITIZEN_LINK_SECONDS`; see docs/datatracker.md."""
    authorize(caller, Action.DATATRACKER)
    requester = rules.parse_user_id(user_id)
    subject = requester if user_code is None else rules.parse_user_code(user_code)
    await service.page_subject(svc.persons, caller, request_context(request, caller),
                               requester=requester, subject=subject)
    link = await sessions.open_link(svc.persons, caller, requester=requester, subject=subject,
                                    link_seconds=svc.settings.citizen_link_seconds,
                                    session_seconds=svc.settings.citizen_session_seconds)
    url = f"{svc.settings.origin}/citizen/usage?ticket={link.ticket}"
    return JSONResponse({"url": url, "expires_in": link.expires_in}, status_code=201,
                        headers={"Cache-Control": "no-store"})

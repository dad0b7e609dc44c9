"""Person record routes: read, search, correct (officers, contract 4); register a death
(registrars, contract 9)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from idservice.api.openapi import PersonDoc, PersonSearchDoc, json_body_doc, problem_doc
from idservice.auth.policy import Action, authorize
from idservice.errors import InvalidField
from idservice.http.bodies import json_body
from idservice.http.deps import Caller, Svc, request_context
from idservice.persons import access, corrections, deaths
from idservice.persons.models import CorrectionRequest, DeathRequest

__all__ = ["router"]

router = APIRouter(tags=["persons"])

Purpose = Annotated[str | None, Query(max_length=2000, description="why the record is accessed",
                                     examples=["case 42/2024"])]
PinPath = Annotated[str, Path(examples=["052324000001"])]
HiddenUntil = Annotated[str | None, Query(
    max_length=32, description="investigators only (extension, contract 11): leave this "
    "access out of the citizen's report until this date (YYYY-MM-DD)")]
LegalBasis = Annotated[str | None, Query(
    max_length=2000, description="required with hidden_until: the legal basis of the covert "
    "access, shown to the citizen from hidden_until on")]


@router.get("/v1/persons/{pin}", responses={200: {"model": PersonDoc}, **problem_doc(404)})
async def read_person(request: Request, svc: Svc, caller: Caller, pin: PinPath,
                      purpose: Purpose = None, hidden_until: HiddenUntil = None,
                      legal_basis: LegalBasis = None) -> dict[str, Any]:
    return await access.read(svc.persons, caller, request_context(request, caller), pin, purpose,
                             hidden_until=hidden_until, legal_basis=legal_basis)


def _date(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidField("must be a date YYYY-MM-DD", field=field) from None


@router.get("/v1/persons", responses={200: {"model": PersonSearchDoc}})
async def search_persons(
    request: Request,
    svc: Svc,
    caller: Caller,
    full_name: Annotated[str | None, Query(max_length=2000)] = None,
    date_of_birth: Annotated[str | None, Query(max_length=32)] = None,
    province_code: Annotated[str | None, Query(max_length=32)] = None,
    purpose: Purpose = None,
    match: Literal["folded", "exact"] = "folded",
    hidden_until: HiddenUntil = None,
    legal_basis: LegalBasis = None,
) -> dict[str, Any]:
    authorize(caller, Action.PERSON_SEARCH)
    records = await access.search(
        svc.persons, caller, request_context(request, caller), full_name=full_name,
        date_of_birth=_date(date_of_birth, "date_of_birth"), province_code=province_code,
        purpose=purpose, match=match, hidden_until=hidden_until, legal_basis=legal_basis,
    )
    return {"persons": records, "count": len(records), "limit": access.SEARCH_LIMIT}


@router.post("/v1/persons/{pin}/corrections", openapi_extra=json_body_doc(CorrectionRequest, {
                 "changes": {"place_of_birth": "Quy Nhơn"}, "reason": "typo"}),
             responses={200: {"model": PersonDoc}, **problem_doc(404, 409)})
async def correct_person(request: Request, svc: Svc, caller: Caller,
                         pin: PinPath) -> dict[str, Any]:
    authorize(caller, Action.PERSON_CORRECT)
    req = await json_body(request, CorrectionRequest, svc.settings.max_body_bytes)
    return await corrections.correct(svc.persons, caller, request_context(request, caller),
                                     pin, req)


@router.post("/v1/persons/{pin}/death", openapi_extra=json_body_doc(DeathRequest, {
                 "registration": {"authority": "UBND xã Nhơn Lý", "number": "KT-12/2025",
                                  "registered_on": "2025-03-04", "province_code": "052"},
                 "date_of_death": "2025-03-01", "place_of_death": "Quy Nhơn"}),
             responses={200: {"model": PersonDoc}, **problem_doc(404, 409)})
async def register_death(request: Request, svc: Svc, caller: Caller,
                         pin: PinPath) -> dict[str, Any]:
    authorize(caller, Action.PERSON_DEATH)
    req = await json_body(request, DeathRequest, svc.settings.max_body_bytes)
    return await deaths.register_death(svc.persons, caller, request_context(request, caller),
                                       pin, req)

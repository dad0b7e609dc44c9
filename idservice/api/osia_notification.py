"""OSIA Notification routes under `/osia` (contract 9; `notification.yaml` 1.2.0).

HTTP only: every parameter is read as optional text so that the role is checked first (a caller
without it hears 403 whatever it sent), then handed to `notify/subscriptions.py`. Errors are
OSIA's `Error {code, message}` like every route under `/osia` (`osia.render_error`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from idservice.api.osia_openapi import error_responses
from idservice.auth.policy import Action, authorize
from idservice.errors import MalformedRequest, Unavailable
from idservice.http.deps import Caller, Svc, request_context
from idservice.notify import subscriptions as subs
from idservice.notify.subscriptions import NotifyContext
from idservice.services import Services

__all__ = ["router"]

router = APIRouter(prefix="/osia", tags=["osia"])

_DOCS = "docs/notifications.md"
_TOPIC = {"type": "object", "additionalProperties": False,
          "properties": {"uuid": {"type": "string"}, "name": {"type": "string"}}}
_SUBSCRIPTION = {"type": "object", "additionalProperties": False, "properties": {
    "uuid": {"type": "string"}, "topic": {"type": "string"},
    "protocol": {"type": "string", "enum": ["http", "email"]}, "address": {"type": "string"},
    "policy": {"type": "string"}, "active": {"type": "boolean"}}}
_OSIA = {"x-error-format": "osia"}


def _ctx(svc: Services) -> NotifyContext:
    if svc.notify is None:
        raise Unavailable("notifications are not running in this process")
    return svc.notify


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise MalformedRequest(f"the query parameter {name} is required", field=name)
    return value


def _json(schema: dict[str, Any], text: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": text, "content": {"application/json": {"schema": schema}}}}


def _errors(*bodyless: int, not_found: str | None = None) -> dict[int | str, dict[str, Any]]:
    return error_responses(*bodyless, not_found=not_found, docs=_DOCS)


Text = Annotated[str | None, Query(max_length=4000)]


@router.post("/v1/subscriptions", operation_id="subscribe", openapi_extra=_OSIA,
             responses={**_json(_SUBSCRIPTION, "Subscription created (or the same one again): "
                                "waiting for confirmation"), **_errors(401, 403)})
async def subscribe(request: Request, svc: Svc, caller: Caller, topic: Text = None,
                    protocol: Text = None, address: Text = None,
                    policy: Text = None) -> JSONResponse:
    authorize(caller, Action.NOTIFY_SUBSCRIBE)
    return JSONResponse(await subs.subscribe(
        _ctx(svc), caller, request_context(request, caller),
        topic=_required(topic, "topic"), protocol=protocol,
        address=_required(address, "address"), policy=policy))


@router.get("/v1/subscriptions", operation_id="listSubscription", openapi_extra=_OSIA,
            responses={**_json({"type": "array", "items": _SUBSCRIPTION},
                               "The caller's subscriptions"), **_errors(401, 403)})
async def list_subscriptions(svc: Svc, caller: Caller) -> JSONResponse:
    return JSONResponse(await subs.list_subscriptions(_ctx(svc), caller))


@router.get("/v1/subscriptions/confirm", operation_id="confirm", openapi_extra=_OSIA,
            responses={200: {"description": "Subscription confirmed"}, **_errors(401, 403)})
async def confirm(request: Request, svc: Svc, caller: Caller, token: Text = None) -> Response:
    authorize(caller, Action.NOTIFY_SUBSCRIBE)
    await subs.confirm(_ctx(svc), caller, request_context(request, caller),
                       _required(token, "token"))
    return Response(status_code=200)


@router.delete("/v1/subscriptions/{uuid}", operation_id="unsubscribe", status_code=204,
               openapi_extra=_OSIA,
               responses={204: {"description": "Subscription removed"},
                          **_errors(401, 403, 404, not_found="No subscription of yours")})
async def unsubscribe(request: Request, svc: Svc, caller: Caller,
                      uuid: Annotated[str, Path(max_length=200)]) -> Response:
    await subs.unsubscribe(_ctx(svc), caller, request_context(request, caller), uuid)
    return Response(status_code=204)


@router.post("/v1/topics", operation_id="createTopic", openapi_extra=_OSIA,
             responses={**_json(_TOPIC, "The topic (the service's own topics only)"),
                        **_errors(401, 403)})
async def create_topic(request: Request, svc: Svc, caller: Caller,
                       name: Text = None) -> JSONResponse:
    authorize(caller, Action.NOTIFY_PUBLISH)
    return JSONResponse(await subs.create_topic(_ctx(svc), caller,
                                                request_context(request, caller),
                                                _required(name, "name")))


@router.get("/v1/topics", operation_id="listTopics", openapi_extra=_OSIA,
            responses={**_json({"type": "array", "items": _TOPIC}, "Every topic"),
                       **_errors(401, 403)})
async def list_topics(svc: Svc, caller: Caller) -> JSONResponse:
    return JSONResponse(await subs.list_topics(_ctx(svc), caller))


@router.delete("/v1/topics/{uuid}", operation_id="deleteTopic", status_code=204,
               openapi_extra=_OSIA,
               responses={204: {"description": "Never: the service's topics stay"},
                          **_errors(401, 403, 404, not_found="No such topic")})
async def delete_topic(request: Request, svc: Svc, caller: Caller,
                       uuid: Annotated[str, Path(max_length=200)]) -> Response:
    await subs.delete_topic(_ctx(svc), caller, request_context(request, caller), uuid)
    return Response(status_code=204)


@router.post("/v1/topics/{uuid}/publish", operation_id="publish", openapi_extra=_OSIA,
             responses={200: {"description": "Never: only the service publishes"},
                        **_errors(401, 403)})
async def publish(request: Request, svc: Svc, caller: Caller,
                  uuid: Annotated[str, Path(max_length=200)],
                  subject: Text = None) -> Response:
    """The body is not read: nobody but the service publishes (contract 9)."""
    await subs.publish(_ctx(svc), caller, request_context(request, caller), uuid)
    return Response(status_code=200)

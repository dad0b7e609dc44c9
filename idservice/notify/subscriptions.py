"""Topics and subscriptions (contract 9, OSIA Notification `Subscriber` and `Publisher` calls).

A client with role `subscriber` lists the topics and manages its own subscriptions: subscribe
(idempotent per topic, protocol and address: the same subscription again, with the policy as
now given), list, unsubscribe, confirm with the token the confirmation message brought. What a
subscriber may create is bounded (`max_subscriptions` per client, addresses of at most 2,000
characters, retry policies of at most 30 days) so no caller can grow storage without bound.

The spec's publisher calls need role `admin`, and answer what the service allows: topics are
the service's event types (creating one of them again answers it, any other name is refused),
none can be deleted, and only the service publishes (it does, from the outbox).

Every change is audited (`notify.subscribe`, `notify.unsubscribe`, `notify.confirm`); every
refusal once the caller is authorized is audited as `refused` with `details.code`
(`persons/refusals.refusals_recorded`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from idservice.audit.events import AuditEvent, RequestContext
from idservice.audit.recorder import record
from idservice.auth.policy import Action, authorize
from idservice.auth.principal import Principal
from idservice.errors import InvalidField, NotFound, ProblemError
from idservice.notify.errors import (
    InvalidAddress,
    InvalidConfirmationToken,
    InvalidPolicy,
    ProtocolNotSupported,
    SubscriptionLimit,
    TopicReserved,
    UnknownTopic,
)
from idservice.notify.events import Policy, PolicyError, parse_policy
from idservice.outbound import TargetRefused, check_url
from idservice.persons.names import check_text
from idservice.persons.refusals import refusals_recorded
from idservice.queries import notify as q

__all__ = ["MAX_ADDRESS", "NotifyContext", "confirm", "create_topic", "delete_topic",
           "list_subscriptions", "list_topics", "publish", "subscribe", "token_digest",
           "unsubscribe"]

MAX_ADDRESS = 2000


@dataclass(frozen=True)
class NotifyContext:
    pool: asyncpg.Pool
    allow_private: bool  # IDSERVICE_NOTIFY_ALLOW_PRIVATE
    max_subscriptions: int  # per client


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _subscription(row: Any) -> dict[str, Any]:
    """The spec's `Subscription` (`topic`: the topic's name, contract 9)."""
    return {"uuid": row["id"], "topic": row["topic"], "protocol": row["protocol"],
            "address": row["address"],
            "policy": Policy(row["countdown"], row["max_retries"]).text(),
            "active": row["active"]}


def check_address(address: str, allow_private: bool) -> str:
    """An http(s) URL without credentials; a literal loopback, link-local or private address
    (or `localhost`) is refused here unless private targets are allowed. Host names are
    resolved and every address checked again at each delivery (`outbound.guard_target`)."""
    if len(address) > MAX_ADDRESS:
        raise InvalidAddress(f"the address is longer than {MAX_ADDRESS} characters",
                             field="address")
    try:
        target = check_url(address)
    except TargetRefused as exc:
        raise InvalidAddress(str(exc), field="address") from None
    host = target.host.lower().rstrip(".")
    if not allow_private:
        local = host == "localhost" or host.endswith(".localhost")
        try:
            ip = ipaddress.ip_address(host)
            local = local or not ip.is_global or ip.is_multicast
        except ValueError:
            pass
        if local:
            raise InvalidAddress("the address is a loopback, link-local or private host, "
                                 "which deliveries may not reach; give a public address",
                                 field="address")
    return address


async def list_topics(ctx: NotifyContext, principal: Principal) -> list[dict[str, str]]:
    authorize(principal, Action.NOTIFY_TOPICS)
    return [{"uuid": r["id"], "name": r["name"]} for r in await ctx.pool.fetch(q.TOPICS)]


async def subscribe(ctx: NotifyContext, principal: Principal, rctx: RequestContext, *,
                    topic: str, protocol: str | None, address: str,
                    policy: str | None) -> dict[str, Any]:
    authorize(principal, Action.NOTIFY_SUBSCRIBE)
    topic = _text(topic, "topic", 100)
    address = _text(address, "address", MAX_ADDRESS, InvalidAddress)
    policy = None if policy is None else _text(policy, "policy", 40, InvalidPolicy)
    protocol = None if protocol is None else _text(protocol, "protocol", 20)
    facts = {"topic": topic, "address": address}
    async with refusals_recorded(ctx, rctx, "notify.subscribe", **facts):
        if protocol == "email":
            raise ProtocolNotSupported("deliveries are made over HTTP only: use protocol http",
                                       field="protocol")
        if protocol not in (None, "http"):
            raise InvalidField("protocol must be http", field="protocol")
        check_address(address, ctx.allow_private)
        try:
            rule = parse_policy(policy)
        except PolicyError as exc:
            raise InvalidPolicy(str(exc), field="policy") from None
        async with ctx.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow(q.TOPIC_BY_NAME, topic) is None:
                raise UnknownTopic("no topic of this name: list the topics (GET /v1/topics)",
                                   field="topic")
            await conn.execute(q.LOCK_CLIENT, principal.id)
            row = await conn.fetchrow(q.FIND_SUBSCRIPTION, principal.id, topic, "http", address)
            if row is not None:
                row = await conn.fetchrow(q.RESUBSCRIBE, row["id"], rule.countdown,
                                          rule.max_retries)
                outcome = "replayed"
            else:
                if await conn.fetchval(q.COUNT_FOR_CLIENT, principal.id) \
                        >= ctx.max_subscriptions:
                    raise SubscriptionLimit(
                        f"this client has {ctx.max_subscriptions} subscriptions, the most "
                        "allowed: unsubscribe from one first", field="topic")
                row = await conn.fetchrow(q.INSERT_SUBSCRIPTION, principal.id,
                                          principal.jurisdiction, topic, "http", address,
                                          rule.countdown, rule.max_retries)
                outcome = "subscribed"
            assert row is not None
            await record(conn, rctx, [AuditEvent(
                "notify.subscribe", outcome,
                details={**facts, "subscription": row["id"], "policy": rule.text()})])
            return _subscription(row)


async def list_subscriptions(ctx: NotifyContext, principal: Principal) -> list[dict[str, Any]]:
    authorize(principal, Action.NOTIFY_SUBSCRIBE)
    return [_subscription(r) for r in await ctx.pool.fetch(q.LIST_FOR_CLIENT, principal.id)]


def _uuid(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidField("must be a UUID", field=field) from None


def _text(value: str, field: str, max_length: int,
          error: type[ProblemError] = InvalidField) -> str:
    """Refused before anything is looked up (and so not audited): empty, over-long or
    control-character text."""
    try:
        return check_text(value, max_length=max_length)
    except ValueError as exc:
        raise error(str(exc), field=field) from None


async def unsubscribe(ctx: NotifyContext, principal: Principal, rctx: RequestContext,
                      subscription: str) -> None:
    """Remove one of the caller's subscriptions (another client's is not found)."""
    authorize(principal, Action.NOTIFY_SUBSCRIBE)
    sid = _uuid(subscription, "uuid")
    async with refusals_recorded(ctx, rctx, "notify.unsubscribe", subscription=sid), \
            ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.DELETE_SUBSCRIPTION, sid, principal.id)
        if row is None:
            raise NotFound("no subscription of yours has this id", field="uuid")
        await record(conn, rctx, [AuditEvent(
            "notify.unsubscribe", "removed",
            details={"subscription": sid, "topic": row["topic"], "address": row["address"]})])


async def confirm(ctx: NotifyContext, principal: Principal, rctx: RequestContext,
                  token: str) -> None:
    """Confirm the caller's subscription whose confirmation message carried `token` (the
    latest one sent); confirming again with it changes nothing."""
    authorize(principal, Action.NOTIFY_SUBSCRIBE)
    token = _text(token, "token", 200, InvalidConfirmationToken)
    async with refusals_recorded(ctx, rctx, "notify.confirm"), \
            ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q.CONFIRM, token_digest(token), principal.id)
        if row is None:
            raise InvalidConfirmationToken(
                "this token confirms no subscription of yours: use the token of the "
                "latest confirmation message, or subscribe again", field="token")
        await record(conn, rctx, [AuditEvent(
            "notify.confirm", "confirmed",
            details={"subscription": row["id"], "topic": row["topic"],
                     "address": row["address"]})])


async def create_topic(ctx: NotifyContext, principal: Principal, rctx: RequestContext,
                       name: str) -> dict[str, str]:
    """Idempotent for the service's own topics; no other topic can be created."""
    authorize(principal, Action.NOTIFY_PUBLISH)
    name = _text(name, "name", 100)
    async with refusals_recorded(ctx, rctx, "notify.topic", topic=name):
        row = await ctx.pool.fetchrow(q.TOPIC_BY_NAME, name)
        if row is None:
            raise TopicReserved("topics are the service's event types (GET /v1/topics); no "
                                "other topic can be created", field="name")
        return {"uuid": row["id"], "name": row["name"]}


async def delete_topic(ctx: NotifyContext, principal: Principal, rctx: RequestContext,
                       topic_id: str) -> None:
    authorize(principal, Action.NOTIFY_PUBLISH)
    topic_id = _uuid(topic_id, "uuid")
    async with refusals_recorded(ctx, rctx, "notify.topic", topic=topic_id):
        row = await ctx.pool.fetchrow(q.TOPIC_BY_ID, topic_id)
        if row is None:
            raise NotFound("no topic has this id", field="uuid")
        raise TopicReserved(f"topic {row['name']} is one of the service's event types and "
                            "cannot be deleted", field="uuid")


async def publish(ctx: NotifyContext, principal: Principal, rctx: RequestContext,
                  topic_id: str) -> None:
    """Only the service publishes (contract 9): always refused, after the topic is checked."""
    authorize(principal, Action.NOTIFY_PUBLISH)
    topic_id = _uuid(topic_id, "uuid")
    async with refusals_recorded(ctx, rctx, "notify.publish", topic=topic_id):
        row = await ctx.pool.fetchrow(q.TOPIC_BY_ID, topic_id)
        if row is None:
            raise UnknownTopic("no topic has this id: list the topics (GET /v1/topics)",
                               field="uuid")
        raise TopicReserved("only the service publishes: its events are sent when records "
                            "change", field="uuid")

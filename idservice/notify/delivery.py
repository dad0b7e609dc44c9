"""Delivering the outbox to subscribers (contract 9): at least once, in order per person.

Runs in every service worker. Each worker keeps one database session for its locks: a shared
advisory lock that says "a deliverer runs here" (so each can count the others), and one session
advisory lock per subscription it is delivering, so that a subscription is delivered by one
worker at a time while several workers deliver different subscriptions at once (the cost of a
delivery is CPU in the worker: one worker alone was the limit). A worker killed mid-round loses
nothing: the locks go with its connection, and a subscription's `cursor` moves only after the
events up to it were answered 2xx, so the next holder sends again what was not acknowledged (a
duplicate, with the same `message-id`, never a gap).

Each round: one worker at a time (a try-lock; the others skip it) sequences the final outbox
rows (`queries/notify.SEQUENCE`, the migration says why), sends due confirmation messages and
prunes what every subscription has passed. Then the worker locks its share of the confirmed
subscriptions whose retry time has come (their number divided by the deliverers running,
rounded up, tried in random order; one locked by another worker is skipped), reads each again
once locked (another worker may have just moved its cursor), and sends each the next `batch`
events of its topic after its cursor. The first is sent alone (a
subscriber that is down costs one attempt per round, not one per event); the rest go out
concurrently, one chain per person (`uin`) so that a person's events are sent one after the
other, and a chain stops at its first failure. The cursor then moves over the events before
the first failure; a later round sends the rest again after the policy's countdown. When the
event at the head has failed `max` retries after its first attempt, it is given up (logged and
counted in /metrics) and delivery goes on.

Each request: `POST <address>`, headers `message-type`, `message-id`, `topic-id`,
`subscription-id`, and `x-jws-signature`, a JWS (ES256, the access-token key, published in
/.well-known/jwks.json) of the exact body with the payload detached (RFC 7515 Appendix F);
the body is the spec's `Message`. Every request goes through `outbound.py`: timeout, no
redirects, a size cap on the answer, and the target's addresses checked (`guard_target`) at
every round, then connected to as checked.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from idservice.auth.jws import Signer, sign_detached
from idservice.background import PeriodicTask
from idservice.db.types import Conn
from idservice.logging import get_logger
from idservice.metrics import NOTIFY_ATTEMPTS, NOTIFY_DROPPED
from idservice.notify.events import (
    NotifyEvent,
    Topic,
    confirmation_message,
    event_text,
    notification_message,
    receives,
)
from idservice.notify.subscriptions import token_digest
from idservice.outbound import (
    OutboundClient,
    OutboundError,
    TargetRefused,
    check_url,
    guard_target,
)
from idservice.queries import notify as q

__all__ = ["SIGNATURE_HEADER", "SIGNATURE_TYP", "Deliverer", "DeliveryConfig"]

_log = get_logger(__name__)

SIGNATURE_HEADER = "x-jws-signature"
SIGNATURE_TYP = "osia-message+jws"
_MAX_ANSWER_BYTES = 64 * 1024
_SEQUENCE_BATCH = 20_000
_PRUNE_BATCH = 20_000
_SUBSCRIPTIONS_PER_ROUND = 100
_SIGNATURE_CACHE = 20_000


@dataclass(frozen=True)
class DeliveryConfig:
    origin: str  # IDSERVICE_ORIGIN: the events' `source`, and the confirmation URL's base
    key_label: str
    kid: str
    allow_private: bool
    timeout: float
    batch: int
    concurrency: int
    interval: float
    confirm_seconds: int


class Deliverer:
    def __init__(self, pool: asyncpg.Pool, signer: Signer, config: DeliveryConfig) -> None:
        self._pool = pool
        self._signer = signer
        self._config = config
        self._client = OutboundClient(timeout=config.timeout,
                                      max_connections=config.concurrency * 4)
        self._loop = PeriodicTask("notify-delivery", config.interval, self.run_once)
        self._signed: OrderedDict[str, asyncio.Future[tuple[bytes, str]]] = OrderedDict()
        self._topic_ids: dict[str, str] = {}
        self._session: Any = None  # the pool connection holding this worker's locks

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._drop_session()
        await self._client.aclose()

    async def run_once(self) -> int:
        """Rounds while they are full (a backlog); the number of events passed."""
        try:
            conn = await self._conn()
            passed = 0
            for _ in range(20):
                moved, full = await self._round(conn)
                passed += moved
                if not full:
                    break
            return passed
        except BaseException:
            await self._drop_session()  # its locks go with it; the next round starts afresh
            raise

    async def _conn(self) -> Conn:
        """This worker's session: registered as a deliverer (`DELIVERERS` counts it)."""
        if self._session is None:
            conn = await self._pool.acquire()
            try:
                await conn.execute(q.DELIVERER_REGISTER)
            except BaseException:
                await self._pool.release(conn)
                raise
            self._session = conn
        session: Conn = self._session
        return session

    async def _drop_session(self) -> None:
        """Close the session rather than return it to the pool with session locks held (the
        pool's reset does not unlock them, db/pool.py)."""
        conn, self._session = self._session, None
        if conn is not None:
            conn.terminate()
            await self._pool.release(conn)

    async def _round(self, conn: Conn) -> tuple[int, bool]:
        if not self._topic_ids:
            self._topic_ids = {r["name"]: r["id"] for r in await conn.fetch(q.TOPICS)}
        if await conn.fetchval(q.WORKER_TRY_LOCK):
            try:
                await self._housekeeping(conn)
            finally:
                await conn.execute(q.WORKER_UNLOCK)
        claimed = await self._claim(conn)
        try:
            subscriptions = await conn.fetch(q.DUE_SUBSCRIPTIONS, claimed) if claimed else []
            results = await asyncio.gather(*(self._deliver(row) for row in subscriptions))
        finally:
            for sub_id in claimed:
                await conn.execute(q.SUBSCRIPTION_UNLOCK, sub_id)
        return sum(n for n, _ in results), any(full for _, full in results)

    async def _housekeeping(self, conn: Conn) -> None:
        """Sequence the final outbox rows, expire and confirm subscriptions, prune what every
        subscription has passed: one worker at a time."""
        await conn.fetchval(q.SEQUENCE, _SEQUENCE_BATCH)
        await conn.execute(q.EXPIRE_UNCONFIRMED, float(self._config.confirm_seconds))
        confirmations = await conn.fetch(q.DUE_CONFIRMATIONS, _SUBSCRIPTIONS_PER_ROUND)
        await asyncio.gather(*(self._confirm(row) for row in confirmations))
        await conn.execute(q.PRUNE, _PRUNE_BATCH)

    async def _claim(self, conn: Conn) -> list[str]:
        """Lock this worker's share of the due subscriptions (their number divided by the
        deliverers running, rounded up), tried in random order so that workers spread."""
        due = [row["id"] for row in await conn.fetch(q.DUE_SUBSCRIPTION_IDS,
                                                      _SUBSCRIPTIONS_PER_ROUND)]
        if not due:
            return []
        share = -(-len(due) // max(1, int(await conn.fetchval(q.DELIVERERS))))
        random.shuffle(due)
        claimed: list[str] = []
        for sub_id in due:
            if len(claimed) == share:
                break
            if await conn.fetchval(q.SUBSCRIPTION_TRY_LOCK, sub_id):
                claimed.append(sub_id)
        return claimed

    # ---- one subscription ----

    async def _deliver(self, sub: Any) -> tuple[int, bool]:
        events = await self._pool.fetch(q.EVENTS_AFTER, sub["topic"], sub["cursor"],
                                        self._config.batch)
        if not events:
            return 0, False
        failed: set[int] = set()
        try:
            pin_to = await self._target(sub["address"])
        except TargetRefused as exc:
            _log.warning("notify_target_refused", subscription=sub["id"], reason=str(exc))
            failed.add(events[0]["seq"])
        else:
            await self._send_all(sub, events, pin_to, failed)
        return await self._advance(sub, events, failed), len(events) == self._config.batch

    async def _target(self, address: str) -> str:
        addresses = await guard_target(check_url(address),
                                       allow_private=self._config.allow_private)
        return addresses[0]

    async def _send_all(self, sub: Any, events: Sequence[Any], pin_to: str,
                        failed: set[int]) -> None:
        mine = [e for e in events if receives(sub["jurisdiction"], e["uin"])]
        if not mine:
            return
        if not await self._send_event(sub, mine[0], pin_to):  # down? one attempt only
            failed.add(mine[0]["seq"])
            return
        chains: dict[str, list[Any]] = {}
        for event in mine[1:]:
            chains.setdefault(event["uin"], []).append(event)
        slots = asyncio.Semaphore(self._config.concurrency)

        async def chain(items: list[Any]) -> None:
            for event in items:
                async with slots:
                    ok = await self._send_event(sub, event, pin_to)
                if not ok:
                    failed.add(event["seq"])
                    return

        await asyncio.gather(*(chain(items) for items in chains.values()))

    async def _advance(self, sub: Any, events: Sequence[Any], failed: set[int]) -> int:
        """Move the cursor over what was acknowledged; set the retry state of the rest."""
        cursor, attempts, delay = events[-1]["seq"], 0, 0.0
        if failed:
            first = min(failed)
            cursor = max((e["seq"] for e in events if e["seq"] < first), default=sub["cursor"])
            attempts = 1 if cursor != sub["cursor"] else sub["attempts"] + 1
            delay = float(sub["countdown"])
            if attempts > sub["max_retries"]:
                _log.warning("notify_given_up", subscription=sub["id"], seq=first,
                             attempts=attempts)
                NOTIFY_DROPPED.inc()
                cursor, attempts, delay = first, 0, 0.0
        await self._pool.execute(q.ADVANCE, sub["id"], cursor, attempts, delay, sub["cursor"])
        return sum(1 for e in events if e["seq"] <= cursor)

    # ---- requests ----

    async def _send_event(self, sub: Any, event: Any, pin_to: str) -> bool:
        body, signature = await self._signed_body(event)
        return await self._post(sub, "Notification", event["message_id"], body, signature,
                                pin_to)

    async def _signed_body(self, event: Any) -> tuple[bytes, str]:
        """One body and one HSM signature per event, whatever the number of subscriptions: the
        body is the same bytes for all; concurrent rounds of several subscriptions share the
        one in flight."""
        message_id: str = event["message_id"]
        pending = self._signed.get(message_id)
        if pending is None:
            pending = asyncio.ensure_future(self._make_signed_body(event))
            self._signed[message_id] = pending
            if len(self._signed) > _SIGNATURE_CACHE:
                self._signed.popitem(last=False)
        try:
            return await asyncio.shield(pending)
        except Exception:
            self._signed.pop(message_id, None)  # an HSM error: the next attempt signs again
            raise

    async def _make_signed_body(self, event: Any) -> tuple[bytes, str]:
        facts = NotifyEvent(Topic(event["topic"]), event["uin"], event["uin1"], event["uin2"],
                            event["previous_uin"])
        body = notification_message(event["topic"], event["message_id"],
                                    event_text(facts, self._config.origin),
                                    event["created_at"])
        return body, await self._sign(body)

    async def _sign(self, body: bytes) -> str:
        return await sign_detached(self._signer, self._config.key_label, self._config.kid,
                                   SIGNATURE_TYP, body)

    async def _post(self, sub: Any, kind: str, message_id: str, body: bytes, signature: str,
                    pin_to: str) -> bool:
        headers = {"Content-Type": "application/json", "message-type": kind,
                   "message-id": message_id, "topic-id": self._topic_ids[sub["topic"]],
                   "subscription-id": sub["id"], SIGNATURE_HEADER: signature}
        try:
            reply = await self._client.request("POST", sub["address"], content=body,
                                               headers=headers, pin_to=pin_to,
                                               max_bytes=_MAX_ANSWER_BYTES)
        except OutboundError as exc:
            NOTIFY_ATTEMPTS.labels("failed").inc()
            _log.info("notify_attempt_failed", subscription=sub["id"], error=str(exc))
            return False
        ok = 200 <= reply.status < 300
        NOTIFY_ATTEMPTS.labels("delivered" if ok else "refused").inc()
        return ok

    async def _confirm(self, sub: Any) -> None:
        """Send a confirmation message with a fresh token (only its digest is kept)."""
        token = secrets.token_urlsafe(32)
        await self._pool.execute(q.SET_TOKEN, sub["id"], token_digest(token))
        url = f"{self._config.origin}/osia/v1/subscriptions/confirm?token={token}"
        message_id = str(uuid.uuid4())
        body = confirmation_message(sub["topic"], message_id, token, url, datetime.now(UTC))
        try:
            pin_to = await self._target(sub["address"])
            ok = await self._post(sub, "SubscriptionConfirmation", message_id, body,
                                  await self._sign(body), pin_to)
        except TargetRefused as exc:
            _log.warning("notify_target_refused", subscription=sub["id"], reason=str(exc))
            ok = False
        attempts = sub["confirm_attempts"] + 1
        again = None if ok or attempts > sub["max_retries"] else float(sub["countdown"])
        await self._pool.execute(q.CONFIRMATION_TRIED, sub["id"], again, attempts)

"""Notifications out (contract 9, OSIA Notification; issue 11 item 4) on the real stack: the
session server, and a real HTTP subscriber on loopback (`tests/support/subscriber.py`; the
session settings allow private targets, IDSERVICE_NOTIFY_ALLOW_PRIVATE=1).

Each subscription rule with its OSIA code; confirmation; delivery while the subscriber is down
then up (every event arrives, in order per person, duplicates told apart by `message-id`); no
event for a rolled-back change; the JWS signature verified with the JWKS; /metrics backlog."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.assertion import client_token_form
from idservice.notify.delivery import Deliverer, DeliveryConfig
from idservice.notify.events import Topic
from idservice.queries.notify import BACKLOG
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.osia import assert_osia_error, new_transaction, uin_attributes
from tests.support.server import ServerThread, free_port
from tests.support.subscriber import Received, Subscriber

DbFn = Callable[..., list[Any]]
SUBS = "/osia/v1/subscriptions"


@pytest.fixture
def subscriber_client(server: ServerThread,
                      client_token: Callable[..., str]) -> Iterator[httpx.Client]:
    """A new subscriber client of province 052; its subscriptions are removed afterwards (no
    subscription outlives its test: the outbox of other tests is not held back)."""
    client = server.client(client_token("052", ("subscriber",)))
    yield client
    for sub in client.get(SUBS).json():
        client.delete(f"{SUBS}/{sub['uuid']}")


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber(free_port()).start()
    yield sub
    sub.stop()


def _subscribe(client: httpx.Client, topic: str, address: str, **params: str) -> httpx.Response:
    return client.post(SUBS, params={"topic": topic, "address": address, **params})


def _confirmed(client: httpx.Client, subscriber: Subscriber, topic: str,
               policy: str = "1,600") -> str:
    response = _subscribe(client, topic, subscriber.address, policy=policy)
    assert response.status_code == 200, response.text
    sid: str = response.json()["uuid"]
    assert response.json()["active"] is False
    message = subscriber.confirmation(sid)
    assert message.body["type"] == "SubscriptionConfirmation"
    confirm = client.get(f"{SUBS}/confirm", params={"token": message.body["token"]})
    assert confirm.status_code == 200, confirm.text
    assert message.body["subscribeURL"].endswith(f"confirm?token={message.body['token']}")
    return sid


def _issue(registrar: httpx.Client, province: str = "052") -> str:
    response = registrar.post("/v1/pins", json=issue_body(province))
    assert response.status_code == 201, response.text
    pin: str = response.json()["pin"]
    return pin


def _rename(officer: httpx.Client, pin: str, name: str) -> httpx.Response:
    return officer.post(f"/v1/persons/{pin}/corrections",
                        json={"changes": {"full_name": name}, "reason": "sai chính tả"})


def _notifications(subscriber: Subscriber, topic: str) -> list[Received]:
    return [r for r in subscriber.of_type("Notification") if r.body["topic"] == topic]


def _first_of_each(received: list[Received]) -> list[Received]:
    """Duplicates dropped by `message-id` (at least once: a message may come twice)."""
    seen: set[str] = set()
    out = []
    for r in received:
        if r.headers["message-id"] not in seen:
            seen.add(r.headers["message-id"])
            out.append(r)
    return out


# ---- topics and who may call -------------------------------------------------------------

def test_topics_one_per_event_type_listed_for_subscribers_and_admins(
        subscriber_client: httpx.Client, server: ServerThread,
        client_token: Callable[..., str]) -> None:
    response = subscriber_client.get("/osia/v1/topics")
    assert response.status_code == 200, response.text
    topics = response.json()
    assert {t["name"] for t in topics} == {t.value for t in Topic}
    assert all(set(t) == {"uuid", "name"} for t in topics)
    admin = server.client(client_token("*", ("admin",)))
    assert admin.get("/osia/v1/topics").json() == topics


def test_anonymous_caller_refused_401_empty(server: ServerThread) -> None:
    with httpx.Client(base_url=server.base_url) as anonymous:
        for response in (anonymous.get("/osia/v1/topics"), anonymous.get(SUBS),
                         anonymous.post(SUBS, params={"topic": "death", "address": "x"})):
            assert response.status_code == 401
            assert response.content == b""


def test_registrar_refused_403_empty_whatever_it_sent(
        registrar: httpx.Client) -> None:
    for response in (registrar.get("/osia/v1/topics"), registrar.get(SUBS),
                     registrar.post(SUBS), registrar.get(f"{SUBS}/confirm")):
        assert response.status_code == 403, response.text
        assert response.content == b""


def test_subscriber_creating_topic_refused_403(subscriber_client: httpx.Client) -> None:
    response = subscriber_client.post("/osia/v1/topics", params={"name": "death"})
    assert response.status_code == 403


# ---- subscription rules, each with its code ------------------------------------------------

def test_unknown_topic_refused_1200_and_audited(subscriber_client: httpx.Client,
                                                service_db: DbFn) -> None:
    response = subscriber_client.post(SUBS, params={"topic": "marriage",
                                                    "address": "http://127.0.0.1:9/x"},
                                      headers={"X-Request-ID": "notify-unknown-topic"})
    assert_osia_error(response, 400, 1200)
    [event] = service_db("SELECT outcome, details FROM audit_event WHERE request_id = $1 "
                         "AND action = 'notify.subscribe'", "notify-unknown-topic")
    assert event["outcome"] == "refused"
    assert event["details"]["code"] == "unknown_topic"


@pytest.mark.parametrize("address", ["ftp://example.org/x", "example.org/hook",
                                     "http://user:pw@example.org/x", "http:///nohost",
                                     "http://example.org/" + "a" * 2000])
def test_address_not_http_url_refused_1201(subscriber_client: httpx.Client,
                                            address: str) -> None:
    assert_osia_error(_subscribe(subscriber_client, "death", address), 400, 1201)


def test_email_protocol_refused_1203(subscriber_client: httpx.Client) -> None:
    response = _subscribe(subscriber_client, "death", "http://127.0.0.1:9/x", protocol="email")
    assert_osia_error(response, 400, 1203)


@pytest.mark.parametrize("policy", ["0,5", "3600,-1", "60", "a,b", "60,5,1", "86400,31"])
def test_bad_policy_refused_1202(subscriber_client: httpx.Client, policy: str) -> None:
    response = _subscribe(subscriber_client, "death", "http://127.0.0.1:9/x", policy=policy)
    assert_osia_error(response, 400, 1202)


def test_missing_address_refused_1000(subscriber_client: httpx.Client) -> None:
    assert_osia_error(subscriber_client.post(SUBS, params={"topic": "death"}), 400, 1000)


def test_same_subscription_twice_same_uuid_policy_default_then_updated(
        subscriber_client: httpx.Client) -> None:
    first = _subscribe(subscriber_client, "death", "http://127.0.0.1:9/same")
    assert first.status_code == 200, first.text
    assert first.json()["policy"] == "3600,168"
    assert first.json()["protocol"] == "http" and first.json()["topic"] == "death"
    again = _subscribe(subscriber_client, "death", "http://127.0.0.1:9/same", policy="60,10")
    assert again.json()["uuid"] == first.json()["uuid"]
    assert again.json()["policy"] == "60,10"
    assert [s["uuid"] for s in subscriber_client.get(SUBS).json()] == [first.json()["uuid"]]


def test_more_subscriptions_than_allowed_refused_1204(subscriber_client: httpx.Client,
                                                      settings: Any) -> None:
    for i in range(settings.notify_max_subscriptions):
        response = _subscribe(subscriber_client, "death", f"http://127.0.0.1:9/n{i}")
        assert response.status_code == 200, response.text
    response = _subscribe(subscriber_client, "death", "http://127.0.0.1:9/one-more")
    assert_osia_error(response, 400, 1204)
    # the same one again is not a new one
    assert _subscribe(subscriber_client, "death", "http://127.0.0.1:9/n0").status_code == 200


def test_confirm_with_unknown_token_refused_1205(subscriber_client: httpx.Client) -> None:
    response = subscriber_client.get(f"{SUBS}/confirm", params={"token": "not-a-token"})
    assert_osia_error(response, 400, 1205)


def test_confirm_with_another_clients_token_refused_1205(
        subscriber_client: httpx.Client, subscriber: Subscriber, server: ServerThread,
        client_token: Callable[..., str]) -> None:
    sid = _subscribe(subscriber_client, "death", subscriber.address).json()["uuid"]
    token = subscriber.confirmation(sid).body["token"]
    other = server.client(client_token("052", ("subscriber",)))
    assert_osia_error(other.get(f"{SUBS}/confirm", params={"token": token}), 400, 1205)


def test_unsubscribe_unknown_404_malformed_1003_others_404(
        subscriber_client: httpx.Client, server: ServerThread,
        client_token: Callable[..., str]) -> None:
    missing = subscriber_client.delete(f"{SUBS}/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.content == b""
    assert_osia_error(subscriber_client.delete(f"{SUBS}/not-a-uuid"), 400, 1003)
    sid = _subscribe(subscriber_client, "death", "http://127.0.0.1:9/mine").json()["uuid"]
    other = server.client(client_token("052", ("subscriber",)))
    assert other.delete(f"{SUBS}/{sid}").status_code == 404
    gone = subscriber_client.delete(f"{SUBS}/{sid}")
    assert gone.status_code == 204
    assert subscriber_client.get(SUBS).json() == []


def test_admin_topic_calls_only_what_the_service_allows_1206(
        server: ServerThread, client_token: Callable[..., str]) -> None:
    admin = server.client(client_token("*", ("admin",)))
    topics = {t["name"]: t["uuid"] for t in admin.get("/osia/v1/topics").json()}
    again = admin.post("/osia/v1/topics", params={"name": "death"})
    assert again.status_code == 200 and again.json() == {"uuid": topics["death"],
                                                          "name": "death"}
    assert_osia_error(admin.post("/osia/v1/topics", params={"name": "gossip"}), 400, 1206)
    assert_osia_error(admin.delete(f"/osia/v1/topics/{topics['death']}"), 400, 1206)
    publish = admin.post(f"/osia/v1/topics/{topics['death']}/publish", content=b"hello",
                         headers={"Content-Type": "plain/text"})
    assert_osia_error(publish, 400, 1206)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_osia_error(admin.post(f"/osia/v1/topics/{unknown}/publish"), 400, 1200)
    assert admin.delete(f"/osia/v1/topics/{unknown}").status_code == 404


# ---- delivery --------------------------------------------------------------------------------

def test_subscriber_down_then_up_every_event_arrives_in_order_per_person(
        subscriber_client: httpx.Client, registrar: httpx.Client, officer: httpx.Client,
        server: ServerThread, service_db: DbFn) -> None:
    subscriber = Subscriber(free_port()).start()
    try:
        for topic in ("liveBirth", "changeOfName", "death", "updatePerson"):
            _confirmed(subscriber_client, subscriber, topic)
        subscriber.stop()  # down: connections refused
        pins = [_issue(registrar) for _ in range(6)]
        for pin in pins:
            for name in ("Nguyễn Thị Minh Ánh", "Nguyễn Thị Minh Anh", "Nguyễn Thị Minh Ảnh"):
                assert _rename(officer, pin, name).status_code == 200
        deaths = pins[:2]
        for pin in deaths:
            body = {"registration": {"authority": "UBND xã Nhơn Lý", "number": f"KT-{pin}",
                                     "registered_on": "2025-01-10", "province_code": "052"},
                    "date_of_death": "2025-01-05", "place_of_death": "Quy Nhơn"}
            assert registrar.post(f"/v1/persons/{pin}/death", json=body).status_code == 200
            undo = officer.post(f"/v1/persons/{pin}/corrections",
                                json={"changes": {"status": "active"}, "reason": "nhầm"})
            assert undo.status_code == 200, undo.text
        time.sleep(1.5)  # attempts fail meanwhile (policy: every second)
        [backlog] = service_db(BACKLOG)  # what /metrics reports at its next refresh
        assert backlog["n"] >= 4 * len(pins) + 2 * len(deaths)
        assert backlog["age"] >= 1.5
        metrics = httpx.get(f"{server.base_url}/metrics").text
        assert "idservice_notify_backlog" in metrics
        assert "idservice_notify_oldest_undelivered_seconds" in metrics
        assert subscriber.of_type("Notification") == []
        subscriber.start()  # up again, same port

        def complete() -> bool:
            births = {r.event["uin"] for r in _notifications(subscriber, "liveBirth")}
            names = _first_of_each(_notifications(subscriber, "changeOfName"))
            return set(pins) <= births and len(names) >= 3 * len(pins) and \
                len(_first_of_each(_notifications(subscriber, "updatePerson"))) >= 2
        subscriber.wait_for(complete, timeout=60)
        subscriber.wait_for(
            lambda: {r.event["uin"] for r in _notifications(subscriber, "death")} >= set(deaths))
    finally:
        subscriber.stop()
    for topic, per_person in (("liveBirth", 1), ("changeOfName", 3), ("death", 1),
                              ("updatePerson", 1)):
        unique = [r for r in _first_of_each(_notifications(subscriber, topic))
                  if r.event["uin"] in pins]
        for pin in pins if topic in ("liveBirth", "changeOfName") else deaths:
            mine = [r for r in unique if r.event["uin"] == pin]
            assert len(mine) == per_person, (topic, pin, len(mine))
            stamps = [r.body["timestamp"] for r in mine]
            assert stamps == sorted(stamps), (topic, pin, stamps)  # in order per person
    birth = next(r for r in _notifications(subscriber, "liveBirth") if r.event["uin"] == pins[0])
    assert birth.event == {"source": server.base_url, "uin": pins[0], "uin1": birth.event["uin1"],
                           "uin2": "052090012345"}
    assert set(birth.headers) >= {"message-type", "message-id", "topic-id", "subscription-id",
                                  "x-jws-signature"}
    assert birth.headers["message-id"] == birth.body["messageId"]
    assert set(birth.body) == {"type", "topic", "messageId", "message", "timestamp"}


def test_reissued_pin_birth_cancellation_and_change_of_gender_with_previous_uin(
        subscriber_client: httpx.Client, subscriber: Subscriber, registrar: httpx.Client,
        officer: httpx.Client) -> None:
    _confirmed(subscriber_client, subscriber, "birthCancellation")
    _confirmed(subscriber_client, subscriber, "changeOfGender")
    pin = _issue(registrar)
    response = officer.post(f"/v1/persons/{pin}/corrections",
                            json={"changes": {"sex": "M"}, "reason": "ghi nhầm giới tính"})
    assert response.status_code == 200, response.text
    new_pin = response.json()["pin"]
    subscriber.wait_for(lambda: _notifications(subscriber, "changeOfGender"))
    subscriber.wait_for(lambda: _notifications(subscriber, "birthCancellation"))
    assert _notifications(subscriber, "birthCancellation")[0].event["uin"] == pin
    gender = _notifications(subscriber, "changeOfGender")[0].event
    assert gender["uin"] == new_pin and gender["previousUin"] == pin


def test_rolled_back_correction_sends_no_event(
        subscriber_client: httpx.Client, subscriber: Subscriber, registrar: httpx.Client,
        officer: httpx.Client, owner_db: DbFn) -> None:
    _confirmed(subscriber_client, subscriber, "changeOfName")
    pin = _issue(registrar)
    owner_db("REVOKE INSERT ON person_history FROM idservice_service")
    try:  # the correction's transaction fails after its event was queued: all rolled back
        failed = _rename(officer, pin, "Lê Thị Hoa")
    finally:
        owner_db("GRANT INSERT ON person_history TO idservice_service")
    assert failed.status_code >= 500
    assert _rename(officer, pin, "Lê Thị Hồng").status_code == 200
    subscriber.wait_for(lambda: _notifications(subscriber, "changeOfName"))
    time.sleep(1.0)  # anything else queued would have come by now
    assert len(_first_of_each(_notifications(subscriber, "changeOfName"))) == 1


def test_other_provinces_events_not_delivered_to_a_province_subscriber(
        subscriber_client: httpx.Client, subscriber: Subscriber, server: ServerThread,
        client_token: Callable[..., str]) -> None:
    _confirmed(subscriber_client, subscriber, "liveBirth")
    other = server.client(client_token("079"))
    theirs = _issue(other, "079")
    ours = _issue(server.client(client_token("052")))
    subscriber.wait_for(lambda: any(r.event["uin"] == ours
                                    for r in _notifications(subscriber, "liveBirth")))
    assert theirs not in {r.event["uin"] for r in _notifications(subscriber, "liveBirth")}


def test_signature_of_each_delivery_verifies_with_the_jwks(
        subscriber_client: httpx.Client, subscriber: Subscriber, registrar: httpx.Client,
        server: ServerThread) -> None:
    _confirmed(subscriber_client, subscriber, "liveBirth")
    pin = _issue(registrar)
    subscriber.wait_for(lambda: any(r.event["uin"] == pin
                                    for r in _notifications(subscriber, "liveBirth")))
    jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json").json()
    for received in subscriber.received:  # the confirmation message too
        header_b64, empty, signature = received.headers["x-jws-signature"].split(".")
        assert empty == ""  # payload detached
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
        key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        payload = base64.urlsafe_b64encode(received.raw).rstrip(b"=").decode()
        verified = jwt.api_jws.decode_complete(
            f"{header_b64}.{payload}.{signature}", jwt.PyJWK(key).key, algorithms=["ES256"])
        assert verified["payload"] == received.raw
        tampered = base64.urlsafe_b64encode(received.raw + b" ").rstrip(b"=").decode()
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.api_jws.decode_complete(f"{header_b64}.{tampered}.{signature}",
                                        jwt.PyJWK(key).key, algorithms=["ES256"])


def test_live_birth_from_batch_and_osia_issuance(
        subscriber_client: httpx.Client, subscriber: Subscriber, registrar: httpx.Client) -> None:
    _confirmed(subscriber_client, subscriber, "liveBirth")
    lines = "\n".join(json.dumps(issue_body("052")) for _ in range(3)) + "\n"
    batch = registrar.post("/v1/pins:batch", content=lines.encode(),
                           headers={"Content-Type": "application/x-ndjson"})
    assert batch.status_code == 200, batch.text
    pins = [json.loads(line)["pin"] for line in batch.text.splitlines() if line.strip()]
    osia = registrar.post("/osia/v1/uin", params={"transactionId": new_transaction()},
                          json=uin_attributes(motherUin="052090077777"))
    assert osia.status_code == 200, osia.text
    pins.append(osia.json())
    subscriber.wait_for(lambda: {r.event["uin"] for r in _notifications(
        subscriber, "liveBirth")} >= set(pins))
    osia_birth = next(r.event for r in _notifications(subscriber, "liveBirth")
                      if r.event["uin"] == osia.json())
    assert osia_birth["uin1"] == "052090077777" and osia_birth["uin2"] == "052090012345"


def test_loopback_address_refused_1201_when_private_targets_not_allowed(
        settings: Settings, database: Any, softhsm_dir: SoftHsmDir,
        softhsm_token_factory: Callable[..., Any],
        make_client: Callable[..., tuple[str, Any]]) -> None:
    """IDSERVICE_NOTIFY_ALLOW_PRIVATE unset: a server of its own (the session's allows it).
    Delivery-time refusal of names resolving to loopback: tests/integration/test_outbound_guard."""
    token = softhsm_token_factory("notify-strict")
    strict = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "notify-strict-es256",
        "notify_allow_private": False, "notify_interval": 10.0})
    thread = ServerThread(create_app(strict, database=database), free_port()).start()
    try:
        client_id, key = make_client("052", ("subscriber",))
        issued = httpx.post(f"{thread.base_url}/v1/auth/client-token",
                            data=client_token_form(client_id, key, settings.client_token_url))
        assert issued.status_code == 200, issued.text
        client = thread.client(issued.json()["access_token"])
        for address in ("http://127.0.0.1:9/x", "http://localhost:9/x",
                        "http://169.254.169.254/latest/meta-data"):
            assert_osia_error(_subscribe(client, "death", address), 400, 1201)
        assert client.get(SUBS).json() == []
    finally:
        thread.stop()


def test_delivered_events_pruned_from_the_outbox(
        subscriber_client: httpx.Client, subscriber: Subscriber, registrar: httpx.Client,
        service_db: DbFn) -> None:
    """Storage stays bounded: an event every subscription of its topic has passed is deleted."""
    _confirmed(subscriber_client, subscriber, "liveBirth")
    pin = _issue(registrar)
    subscriber.wait_for(lambda: any(r.event["uin"] == pin
                                    for r in _notifications(subscriber, "liveBirth")))
    deadline = time.monotonic() + 30
    while service_db("SELECT 1 FROM notify_event WHERE uin = $1", pin):
        assert time.monotonic() < deadline, "delivered event still in the outbox"
        time.sleep(0.1)


def test_two_workers_deliver_their_shares_of_the_subscriptions_at_once(
        subscriber_client: httpx.Client, registrar: httpx.Client, server: ServerThread,
        service_db: DbFn) -> None:
    """One advisory lock per subscription, not one for all: two more deliverers (as two more
    service workers would run them) on the session's database, beside the server's own, each
    deliver some of six subscriptions in the same moment, and no subscription gets the event
    twice (never two deliverers on one subscription)."""
    subscriber = Subscriber(free_port(), delay=0.3).start()  # a round lasts, the locks held
    try:
        sids = []
        for i in range(6):
            address = f"http://127.0.0.1:{subscriber.port}/hooks/{i}"
            response = _subscribe(subscriber_client, "liveBirth", address, policy="1,600")
            assert response.status_code == 200, response.text
            sid = response.json()["uuid"]
            token = subscriber.confirmation(sid).body["token"]
            confirm = subscriber_client.get(f"{SUBS}/confirm", params={"token": token})
            assert confirm.status_code == 200, confirm.text
            sids.append(sid)
        svc = server.services
        config = DeliveryConfig(origin=server.base_url, key_label=svc.token_key.label,
                                kid=svc.token_key.kid, allow_private=True, timeout=10,
                                batch=500, concurrency=4, interval=0.05, confirm_seconds=3600)
        workers = [Deliverer(svc.pool, svc.keystore, config) for _ in range(2)]

        async def once() -> list[int]:
            return list(await asyncio.gather(*(w.run_once() for w in workers)))

        assert server.call(once()) == [0, 0]  # running: counted among the deliverers
        pin = _issue(registrar)
        deadline = time.monotonic() + 30
        while not service_db("SELECT 1 FROM notify_event WHERE uin = $1 AND seq IS NOT NULL",
                             pin):  # sequenced: due for all six at once
            assert time.monotonic() < deadline, "the event was not sequenced"
            time.sleep(0.02)

        async def stop() -> None:
            for w in workers:
                await w.stop()

        try:
            passed = server.call(once())
        finally:
            server.call(stop())
        assert all(n > 0 for n in passed), passed
        subscriber.wait_for(lambda: {r.headers["subscription-id"] for r in _notifications(
            subscriber, "liveBirth") if r.event["uin"] == pin} == set(sids))
    finally:
        subscriber.stop()
    per_subscription = [r.headers["subscription-id"] for r in _notifications(
        subscriber, "liveBirth") if r.event["uin"] == pin]
    assert sorted(per_subscription) == sorted(sids)  # each once: one deliverer per subscription

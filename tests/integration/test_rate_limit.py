"""Authentication limits (contract 7; issue 9 item 1): per source address before any other work,
per client/operator only for verified requests, failure events capped per source and minute and
the rest counted into one `auth.rate_limited` event.

A second server on the session database with small limits; clients connect from distinct
loopback addresses (httpx bound to 127.0.0.x), so the service sees distinct TCP peers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from idservice.app import create_app
from idservice.audit.events import RequestContext
from idservice.auth.assertion import client_token_form
from idservice.auth.principal import Actor
from idservice.auth.rate_limit import AuthLimits, RateLimitReporter
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.server import ServerThread, free_port

SOURCE_LIMIT = 10  # requests per source and minute over the three endpoints
IDENTITY_LIMIT = 3  # verified logins per client and minute
FAILURE_EVENTS = 3  # failure events per source and minute whose identity did not verify
VERIFY_LIMIT = 4  # PIN verifications per caller and minute
FLOOD, REAL = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def limited_server(settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
                   softhsm_token_factory: Callable, server: ServerThread) -> Iterator[ServerThread]:
    token = softhsm_token_factory("rate-limit")
    limited = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "rate-limit-es256",
        "auth_source_rate_limit": SOURCE_LIMIT, "auth_rate_limit": IDENTITY_LIMIT,
        "auth_failure_events_per_minute": FAILURE_EVENTS, "auth_report_interval": 0.5,
        "verify_rate_limit": VERIFY_LIMIT})
    thread = ServerThread(create_app(limited, database=database), free_port()).start()
    yield thread
    thread.stop()


def _fresh_window() -> None:
    """Start well inside a minute, so the fixed window cannot roll over during the test."""
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)


def _from(server: ServerThread, source: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30,
                        transport=httpx.HTTPTransport(local_address=source))


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60


def _forget(service_db: Callable[..., list], *sources: str) -> None:
    """Earlier tests' counts of these loopback addresses (this minute) are not ours."""
    service_db("DELETE FROM auth_source_window WHERE source = ANY($1::text[])", list(sources))


def test_flood_from_one_address_neither_locks_out_the_client_nor_writes_past_the_cap(
        limited_server: ServerThread, make_client: Callable[..., tuple[str, Any]],
        settings: Settings, service_db: Callable[..., list]) -> None:
    """The review's reproduction: assertions naming a real client's id, signed by a key that is
    not the client's, sent faster than the limit, from 127.0.0.2; the client on 127.0.0.3."""
    _fresh_window()
    _forget(service_db, FLOOD, REAL)
    client_id, key = make_client("052")
    impostor = ec.generate_private_key(ec.SECP256R1())
    prefix = f"flood-{secrets.token_hex(4)}-"
    flood = 2 * SOURCE_LIMIT + IDENTITY_LIMIT  # names the client more than its own limit
    statuses = []
    with _from(limited_server, FLOOD) as attacker:
        for i in range(flood):
            response = attacker.post(
                "/v1/auth/client-token", headers={"X-Request-Id": f"{prefix}{i}"},
                data=client_token_form(client_id, impostor, settings.client_token_url))
            statuses.append(response.status_code)
            if response.status_code == 429:
                _assert_limited(response)
    assert statuses == [401] * SOURCE_LIMIT + [429] * (flood - SOURCE_LIMIT)
    with _from(limited_server, REAL) as real:
        response = real.post("/v1/auth/client-token",
                             data=client_token_form(client_id, key, settings.client_token_url))
    assert response.status_code == 200, response.text  # not locked out

    recorded = service_db("SELECT actor_type, actor_id, source_ip, date_trunc('minute', at) AS m "
                          "FROM audit_event WHERE request_id LIKE $1", f"{prefix}%")
    assert len(recorded) == FAILURE_EVENTS  # the cap, not one per request
    assert {(r["actor_type"], r["actor_id"], r["source_ip"]) for r in recorded} == {
        ("client", client_id, FLOOD)}
    minute = recorded[0]["m"]

    # within 60 s after the minute: one event counting the rest (unrecorded failures + 429s)
    deadline = time.monotonic() + 60 - time.time() % 60 + 60
    while not (counted := _rate_limited_events(service_db, FLOOD, minute)):
        assert time.monotonic() < deadline, "no auth.rate_limited event within 60 s"
        time.sleep(0.5)
    time.sleep(1.5)  # (other processes' reporters would have written a second one by now)
    counted = _rate_limited_events(service_db, FLOOD, minute)
    assert len(counted) == 1
    details = counted[0]["details"]
    assert details["count"] == flood - FAILURE_EVENTS
    assert details["limited"] == flood - SOURCE_LIMIT
    assert details["unrecorded_failures"] == SOURCE_LIMIT - FAILURE_EVENTS
    assert (counted[0]["actor_type"], counted[0]["outcome"]) == ("anonymous", "counted")


def _rate_limited_events(service_db: Callable[..., list], source: str,
                         minute: Any) -> list[dict[str, Any]]:
    rows = service_db("SELECT actor_type, outcome, details::text AS details FROM audit_event "
                      "WHERE action = 'auth.rate_limited' AND source_ip = $1 "
                      "AND (details ->> 'minute')::timestamptz = $2", source, minute)
    return [dict(r) | {"details": json.loads(r["details"])} for r in rows]


def test_all_three_endpoints_are_limited_per_source(
        limited_server: ServerThread, service_db: Callable[..., list]) -> None:
    _fresh_window()
    busy, other = "127.0.0.4", "127.0.0.5"
    _forget(service_db, busy, other)
    token_body = {"nonce": "x" * 44, "auth_token": {}}
    form = {"grant_type": "client_credentials", "client_assertion": "x"}
    with _from(limited_server, busy) as client:
        for _ in range(4):
            assert client.post("/v1/auth/challenge").status_code == 200
        for _ in range(3):
            assert client.post("/v1/auth/token", json=token_body).status_code == 401
        for _ in range(3):
            assert client.post("/v1/auth/client-token", data=form).status_code == 401
        _assert_limited(client.post("/v1/auth/challenge"))
        _assert_limited(client.post("/v1/auth/token", json=token_body))
        _assert_limited(client.post("/v1/auth/client-token", data=form))
        # before any other work: not even the body is looked at
        _assert_limited(client.post("/v1/auth/token", content=b"{not json"))
    with _from(limited_server, other) as client:
        assert client.post("/v1/auth/challenge").status_code == 200


def test_a_verified_client_is_limited_per_client(
        limited_server: ServerThread, make_client: Callable[..., tuple[str, Any]],
        settings: Settings, service_db: Callable[..., list]) -> None:
    _fresh_window()
    source = "127.0.0.6"
    _forget(service_db, source)
    client_id, key = make_client("052")
    other_id, other_key = make_client("052")
    with _from(limited_server, source) as client:
        for _ in range(IDENTITY_LIMIT):
            response = client.post("/v1/auth/client-token", data=client_token_form(
                client_id, key, settings.client_token_url))
            assert response.status_code == 200, response.text
        _assert_limited(client.post("/v1/auth/client-token", data=client_token_form(
            client_id, key, settings.client_token_url)))
        assert client.post("/v1/auth/client-token", data=client_token_form(
            other_id, other_key, settings.client_token_url)).status_code == 200


def test_pin_verification_is_limited_per_caller(
        limited_server: ServerThread, make_client: Callable[..., tuple[str, Any]],
        settings: Settings) -> None:
    """/v1/pins/verify answers match / no match for a PIN, name and birth date: a PIN oracle,
    limited per caller (contract 7)."""
    _fresh_window()
    body = {"pin": "052324000001", "full_name": "Nguyễn Thị Minh Anh",
            "date_of_birth": "2024-03-02"}
    tokens = []
    for _ in range(2):
        client_id, key = make_client("052")
        response = httpx.post(f"{limited_server.base_url}/v1/auth/client-token",
                              data=client_token_form(client_id, key, settings.client_token_url))
        assert response.status_code == 200, response.text
        tokens.append(response.json()["access_token"])
    with limited_server.client(tokens[0]) as guesser:
        for _ in range(VERIFY_LIMIT):
            assert guesser.post("/v1/pins/verify", json=body).json() == {"match": False}
        _assert_limited(guesser.post("/v1/pins/verify", json=body))
    with limited_server.client(tokens[1]) as other:  # another caller has its own count
        assert other.post("/v1/pins/verify", json=body).status_code == 200


def test_rate_limited_event_is_written_once_by_concurrent_reporters(
        database: DatabaseTarget, service_db: Callable[..., list]) -> None:
    """Every process runs a reporter; a minute's event is written by exactly one."""
    source = f"test-{secrets.token_hex(6)}"
    service_db("INSERT INTO auth_source_window (source, window_start, requests, limited, "
               "failures, unrecorded) VALUES ($1, date_trunc('minute', now()) - "
               "interval '3 minutes', 12, 2, 10, 5)", source)

    async def main() -> list[int]:
        pools = [await asyncpg.create_pool(database.service_url, min_size=1, max_size=2)
                 for _ in range(3)]
        try:
            return list(await asyncio.gather(
                *(RateLimitReporter(pool).run_once() for pool in pools)))
        finally:
            for pool in pools:
                await pool.close()

    asyncio.run(main())
    rows = service_db("SELECT actor_type, actor_id, details::text AS details FROM audit_event "
                      "WHERE action = 'auth.rate_limited' AND source_ip = $1", source)
    assert len(rows) == 1
    assert json.loads(rows[0]["details"])["count"] == 7
    assert (rows[0]["actor_type"], rows[0]["actor_id"]) == ("anonymous", source)
    assert service_db("SELECT reported FROM auth_source_window WHERE source = $1",
                      source)[0]["reported"] is True


def test_zero_turns_the_limits_off() -> None:
    # no database round trip at all: the pool is never touched
    limits = AuthLimits(None, source_limit=0, identity_limit=0,  # type: ignore[arg-type]
                        failure_events=30, verify_limit=0)
    asyncio.run(limits.admit(RequestContext(Actor("anonymous", "x"), None, "127.0.0.1")))
    assert Settings().auth_source_rate_limit == 120
    assert Settings().auth_failure_events_per_minute == 30
    assert Settings().verify_rate_limit == 120

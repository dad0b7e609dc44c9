"""Issuance (contract section 4, POST /v1/pins): format, idempotency, concurrency, audit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.support.bodies import issue_body
from tests.support.server import ServerThread


@pytest.mark.parametrize(
    ("sex", "dob", "g", "yy"),
    [("M", "1999-12-31", "0", "99"), ("F", "1990-01-01", "1", "90"),
     ("M", "2000-01-01", "2", "00"), ("F", "2024-03-02", "3", "24")],
)
def test_pin_encodes_province_century_sex_and_year(
    registrar: httpx.Client, sex: str, dob: str, g: str, yy: str
) -> None:
    response = registrar.post("/v1/pins", json=issue_body("052", sex=sex, dob=dob,
                                                          registered_on="2024-06-01"))
    assert response.status_code == 201, response.text
    body = response.json()
    pin = body["pin"]
    assert len(pin) == 12 and pin.isdigit()
    assert pin[:3] == "052" and pin[3] == g and pin[4:6] == yy
    assert body["status"] == "active"
    assert body["registration"]["province_code"] == "052"
    assert body["issued_at"].endswith("Z")


def test_same_key_other_content_is_registration_conflict(
    registrar: httpx.Client, service_db: Callable[..., list]
) -> None:
    body = issue_body("052")
    first = registrar.post("/v1/pins", json=body)
    assert first.status_code == 201
    body["child"]["full_name"] = "Someone Else"
    second = registrar.post("/v1/pins", json=body)
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["code"] == "registration_conflict"
    number = body["registration"]["number"]
    rows = service_db("SELECT outcome, pin, details->>'code' AS code FROM audit_event "
                      "WHERE action = 'pin.issue' AND details->'registration'->>'number' = $1 "
                      "ORDER BY id", number)
    assert [(r["outcome"], r["code"]) for r in rows] == [("issued", None),
                                                         ("refused", "registration_conflict")]
    assert rows[1]["pin"] == first.json()["pin"]  # the record the refusal touched
    assert service_db("SELECT count(*) FROM person WHERE registration_number = $1",
                      number)[0][0] == 1


def test_national_registrar_issues_for_any_province(client_token: Callable[..., str],
                                                     server: ServerThread) -> None:
    with server.client(client_token("*")) as national:
        response = national.post("/v1/pins", json=issue_body("079"))
        assert response.status_code == 201, response.text
        assert response.json()["pin"].startswith("079")


def test_officer_cannot_issue_and_registrar_cannot_read(officer: httpx.Client,
                                                         registrar: httpx.Client) -> None:
    denied = officer.post("/v1/pins", json=issue_body("052"))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    pin = registrar.post("/v1/pins", json=issue_body("052")).json()["pin"]
    read = registrar.get(f"/v1/persons/{pin}", params={"purpose": "check"})
    assert read.status_code == 403 and read.json()["code"] == "forbidden"


def test_64_concurrent_clients_one_bucket_no_duplicates_one_event_each(
    server: ServerThread, make_client: Callable[..., tuple[str, object]],
    client_token: Callable[..., str], service_db: Callable[..., list],
) -> None:
    """64 clients issue into the same (province, G, YY) bucket at once, each request sent
    twice (a retry): every registration gets one PIN, no PIN twice, one audit event per call."""
    token = client_token("052")
    bodies = [issue_body("052", sex="M", dob="2011-05-05", registered_on="2011-06-01")
              for _ in range(64)]

    async def main() -> list[tuple[int, str]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            async def one(body: dict) -> tuple[int, str]:
                response = await client.post("/v1/pins", json=body)
                return response.status_code, response.json()["pin"]

            first = await asyncio.gather(*(one(b) for b in bodies))
            retried = await asyncio.gather(*(one(b) for b in bodies))
            return list(zip(first, retried, strict=True))  # type: ignore[arg-type]

    results = asyncio.run(main())
    first_pins = [f[1] for f, _ in results]  # type: ignore[index]
    assert all(f[0] == 201 for f, _ in results)  # type: ignore[index]
    assert all(r[0] == 200 and r[1] == f[1] for f, r in results)  # type: ignore[index]
    assert len(set(first_pins)) == 64
    assert all(p.startswith("052211") for p in first_pins)
    numbers = [b["registration"]["number"] for b in bodies]
    rows = service_db("SELECT details->'registration'->>'number' AS n, outcome, pin "
                      "FROM audit_event WHERE action = 'pin.issue' AND "
                      "details->'registration'->>'number' = ANY($1::text[])", numbers)
    assert len(rows) == 128
    assert sorted(r["outcome"] for r in rows) == ["issued"] * 64 + ["replayed"] * 64
    assert service_db("SELECT count(*) FROM person WHERE registration_number = ANY($1::text[])",
                      numbers)[0][0] == 64


def test_concurrent_retries_of_one_registration_issue_one_pin(
    server: ServerThread, client_token: Callable[..., str], service_db: Callable[..., list],
) -> None:
    token = client_token("052")
    body = issue_body("052")

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            return list(await asyncio.gather(*(client.post("/v1/pins", json=body)
                                               for _ in range(16))))

    responses = asyncio.run(main())
    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert len({r.json()["pin"] for r in responses}) == 1
    assert service_db("SELECT count(*) FROM person WHERE registration_number = $1",
                      body["registration"]["number"])[0][0] == 1

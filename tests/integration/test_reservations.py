"""Reservations for offline offices and their sync (contract 8, issue 13 items 1-3)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from idservice.auth.assertion import client_token_form
from idservice.db.migrate import migrate
from idservice.persons.models import IssueRequest
from idservice.persons.office_records import birth_digest, sign_issuance, signed_payload
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.faults.conftest import fetch, register_client
from tests.support.bodies import issue_body
from tests.support.fixtures_db import drop_database
from tests.support.pki import new_client_key
from tests.support.server import ServerThread

NDJSON = {"Content-Type": "application/x-ndjson"}
YEAR = 2026


def _sub(token: str) -> str:
    return str(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["sub"])


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)  # type: ignore[no-any-return]


def _birth(sex: str = "M", *, number: str | None = None, name: str = "Lê Văn Bình"
           ) -> dict[str, Any]:
    return issue_body("052", sex=sex, dob=f"{YEAR}-11-02", registered_on=f"{YEAR}-11-20",
                      number=number, full_name=name)


def _reserve(client: httpx.Client, m: int = 3, f: int = 2, days: int = 30) -> dict[str, Any]:
    buckets = [b for b in ({"sex": "M", "birth_year": YEAR, "count": m},
                           {"sex": "F", "birth_year": YEAR, "count": f}) if b["count"]]
    response = client.post("/v1/reservations", json={"buckets": buckets, "days": days})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _line(res: dict[str, Any], pin: str, birth: dict[str, Any], *, key: Any = None,
          client_id: str | None = None) -> dict[str, Any]:
    at = "2026-11-20T03:04:05+00:00"
    line: dict[str, Any] = {"pin": pin, "issued_offline_at": at, "birth": birth}
    if key is not None:
        payload = signed_payload(res["reservation_id"], pin, at,
                                 birth_digest(IssueRequest.model_validate_json(json.dumps(birth))))
        line["office_signature"] = sign_issuance(key, client_id or "", payload)
    return line


def _sync(client: httpx.Client, res_id: str, lines: list[Any]) -> httpx.Response:
    data = b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n"
                    for x in lines)
    return client.post(f"/v1/reservations/{res_id}/issued", content=data, headers=NDJSON)


def _results(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(x) for x in response.text.splitlines() if x]


@pytest.fixture
def office(server: ServerThread, make_client: Callable[..., tuple[str, object]],
           settings: Settings) -> Iterator[tuple[httpx.Client, str, Any]]:
    """A registrar client of 052 (an office), its id and its private key."""
    client_id, key = make_client("052")
    response = httpx.post(f"{server.base_url}/v1/auth/client-token",
                          data=client_token_form(client_id, key, settings.client_token_url))
    assert response.status_code == 200, response.text
    with server.client(response.json()["access_token"]) as client:
        yield client, client_id, key


def test_reservation_is_a_jws_verifiable_with_the_jwks_and_its_pins_are_no_persons(
    server: ServerThread, office: tuple[httpx.Client, str, Any], officer: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    client, client_id, _ = office
    body = _reserve(client)
    token = body["reservation"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "pin-reservation+jwt" and header["alg"] == "ES256"
    jwks = httpx.get(f"{server.base_url}/.well-known/jwks.json").json()
    [jwk] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"])  # type: ignore[arg-type]
    assert claims == {k: v for k, v in body.items() if k != "reservation"}
    assert claims["client_id"] == client_id and claims["province_code"] == "052"
    assert claims["exp"] - claims["iat"] == 30 * 86400
    m, f = claims["pins"][f"M{YEAR}"], claims["pins"][f"F{YEAR}"]
    assert len(m) == 3 and len(f) == 2 and len(set(m + f)) == 5
    assert all(p.startswith("052226") for p in m) and all(p.startswith("052326") for p in f)
    # A reserved number is nobody's record: not read, not verified, not found.
    assert officer.get(f"/v1/persons/{m[0]}", params={"purpose": "t"}).status_code == 404
    verify = officer.post("/v1/pins/verify", json={"pin": m[0], "full_name": "",
                                                   "date_of_birth": f"{YEAR}-01-01"})
    assert verify.json() == {"match": False}
    got = client.get(f"/v1/reservations/{claims['reservation_id']}").json()
    assert got["counts"] == {"reserved": 5, "issued": 0, "retired": 0}
    [event] = service_db("SELECT details FROM audit_event WHERE action = 'pin.reserve' AND "
                         "details->>'reservation_id' = $1", claims["reservation_id"])
    assert _d(event["details"])["counts"] == {f"M{YEAR}": 3, f"F{YEAR}": 2}


@pytest.mark.parametrize(("change", "field"), [
    ({"buckets": [{"sex": "M", "birth_year": YEAR, "count": 0}]}, "buckets.0.count"),
    ({"buckets": [{"sex": "M", "birth_year": YEAR, "count": 1001}]}, "buckets.0.count"),
    ({"days": 0}, "days"),
    ({"days": 367}, "days"),
])
def test_reserve_count_or_days_out_of_range_invalid_field(
    office: tuple[httpx.Client, str, Any], change: dict[str, Any], field: str
) -> None:
    body = {"buckets": [{"sex": "M", "birth_year": YEAR, "count": 1}], "days": 10, **change}
    response = office[0].post("/v1/reservations", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_field"
    assert response.json()["field"].replace("[", ".").replace("]", "") == field


def test_reserve_other_province_forbidden(office: tuple[httpx.Client, str, Any]) -> None:
    response = office[0].post("/v1/reservations", json={
        "buckets": [{"sex": "M", "birth_year": YEAR, "count": 1}], "days": 1,
        "province_code": "001"})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_sync_issues_replays_and_writes_offline_events(
    office: tuple[httpx.Client, str, Any], officer: httpx.Client, service_db: Callable[..., list],
) -> None:
    client, client_id, key = office
    res = _reserve(client)
    m, f = res["pins"][f"M{YEAR}"], res["pins"][f"F{YEAR}"]
    lines = [_line(res, m[0], _birth("M"), key=key, client_id=client_id),
             _line(res, f[0], _birth("F"), key=key, client_id=client_id)]
    first = _results(_sync(client, res["reservation_id"], lines))
    assert first == [{"line": 1, "pin": m[0], "status": 201},
                     {"line": 2, "pin": f[0], "status": 201}]
    again = _results(_sync(client, res["reservation_id"], lines))
    assert [r["status"] for r in again] == [200, 200]
    person = officer.get(f"/v1/persons/{m[0]}", params={"purpose": "t"})
    assert person.status_code == 200 and person.json()["child"]["full_name"] == "Lê Văn Bình"
    rows = service_db("SELECT outcome, details FROM audit_event WHERE action = 'pin.issue' "
                      "AND pin = $1 ORDER BY id", m[0])
    assert [r["outcome"] for r in rows] == ["issued", "replayed"]
    details = _d(rows[0]["details"])
    assert details["offline"] is True and details["reservation_id"] == res["reservation_id"]
    assert details["issued_offline_at"] == "2026-11-20T03:04:05+00:00"
    assert details["office_signature"] == lines[0]["office_signature"]
    got = client.get(f"/v1/reservations/{res['reservation_id']}").json()
    assert got["counts"] == {"reserved": 3, "issued": 2, "retired": 0}


def test_sync_of_another_clients_reservation_forbidden_whole_request(
    office: tuple[httpx.Client, str, Any], registrar: httpx.Client,
    service_db: Callable[..., list],
) -> None:
    client, _, _ = office
    res = _reserve(client, m=1, f=0)
    pin = res["pins"][f"M{YEAR}"][0]
    response = _sync(registrar, res["reservation_id"], [_line(res, pin, _birth("M"))])
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert registrar.get(f"/v1/reservations/{res['reservation_id']}").status_code == 403
    assert service_db("SELECT status FROM person WHERE pin = $1", pin)[0][0] == "reserved"


def test_sync_pin_of_other_bucket_or_other_reservation_pin_not_reserved(
    office: tuple[httpx.Client, str, Any], registrar: httpx.Client,
) -> None:
    client, _, _ = office
    res = _reserve(client, m=1, f=1)
    other = _reserve(registrar, m=1, f=0)
    results = _results(_sync(client, res["reservation_id"], [
        _line(res, res["pins"][f"F{YEAR}"][0], _birth("M")),   # a girl's PIN for a boy
        _line(res, other["pins"][f"M{YEAR}"][0], _birth("M")),  # another client's PIN
    ]))
    assert [r["error"]["code"] for r in results] == ["pin_not_reserved"] * 2
    assert all(r["error"]["status"] == 422 for r in results)


def test_sync_one_pin_for_two_registrations_reservation_conflict(
    office: tuple[httpx.Client, str, Any], service_db: Callable[..., list],
) -> None:
    client, _, _ = office
    res = _reserve(client, m=1, f=0)
    pin = res["pins"][f"M{YEAR}"][0]
    results = _results(_sync(client, res["reservation_id"], [
        _line(res, pin, _birth("M")), _line(res, pin, _birth("M", name="Trần Văn Cường"))]))
    assert results[0] == {"line": 1, "pin": pin, "status": 201}
    assert results[1]["error"]["code"] == "reservation_conflict"
    assert results[1]["error"]["status"] == 409
    later = _results(_sync(client, res["reservation_id"], [
        _line(res, pin, _birth("M", name="Phạm Văn Dũng"))]))
    assert later[0]["error"]["code"] == "reservation_conflict"
    assert service_db("SELECT full_name FROM person WHERE pin = $1", pin)[0][0] == "Lê Văn Bình"


def test_sync_registration_issued_online_conflict_names_both_pins(
    office: tuple[httpx.Client, str, Any],
) -> None:
    client, _, _ = office
    res = _reserve(client, m=1, f=0)
    birth = _birth("M")
    online = client.post("/v1/pins", json=birth)
    assert online.status_code == 201, online.text
    offered = res["pins"][f"M{YEAR}"][0]
    [result] = _results(_sync(client, res["reservation_id"], [_line(res, offered, birth)]))
    assert result["error"]["code"] == "registration_conflict"
    assert result["error"]["status"] == 409
    assert result["error"]["details"]["pins"] == [online.json()["pin"], offered]


def test_sync_line_matching_an_active_person_possible_duplicate_unless_overridden(
    office: tuple[httpx.Client, str, Any], service_db: Callable[..., list],
) -> None:
    """Contract 9: offline sync lines get the duplicate check of online issuance, per line."""
    client, _, _ = office
    res = _reserve(client, m=2, f=0)
    first, second = res["pins"][f"M{YEAR}"]
    online = _birth("M", name=f"Đinh Văn Tú {secrets.token_hex(3)}")
    issued = client.post("/v1/pins", json=online)
    assert issued.status_code == 201, issued.text
    twin = {**online, "registration": {**online["registration"],
                                        "number": f"OFF-{secrets.token_hex(4)}"}}
    [refused] = _results(_sync(client, res["reservation_id"], [_line(res, first, twin)]))
    assert refused["error"]["code"] == "possible_duplicate"
    assert refused["error"]["status"] == 409
    assert refused["error"]["details"]["candidates"] == [issued.json()["pin"]]
    assert service_db("SELECT status FROM person WHERE pin = $1", first)[0][0] == "reserved"
    twin["duplicate_override"] = {"reason": "sinh đôi, cùng tên theo giấy chứng sinh"}
    [ok] = _results(_sync(client, res["reservation_id"], [_line(res, second, twin)]))
    assert ok == {"line": 1, "pin": second, "status": 201}
    override = service_db("SELECT details FROM audit_event WHERE action = "
                          "'pin.duplicate_override' AND pin = $1", second)
    assert len(override) == 1
    details = _d(override[0]["details"])
    assert details["candidates"] == [issued.json()["pin"]] and details["offline"] is True


def test_sync_bad_office_signature_invalid_field(office: tuple[httpx.Client, str, Any]) -> None:
    client, client_id, key = office
    res = _reserve(client, m=2, f=0)
    m = res["pins"][f"M{YEAR}"]
    signed = _line(res, m[0], _birth("M"), key=key, client_id=client_id)
    signed["pin"] = m[1]  # the signature was for the other PIN
    [result] = _results(_sync(client, res["reservation_id"], [signed]))
    assert result["error"]["code"] == "invalid_field"
    assert result["error"]["field"] == "office_signature"


def test_release_retires_unused_pins_still_syncable_by_owner_never_issued_online(
    office: tuple[httpx.Client, str, Any], officer_token: Callable[..., str],
    server: ServerThread, owner_db: Callable[..., list],
) -> None:
    client, _, _ = office
    res = _reserve(client, m=2, f=1)
    rid = res["reservation_id"]
    with server.client(officer_token("001", roles=("admin",))) as other_admin:
        assert other_admin.post(f"/v1/reservations/{rid}/release").status_code == 403
    with server.client(officer_token("052", roles=("admin",))) as admin:
        released = admin.post(f"/v1/reservations/{rid}/release")
    assert released.status_code == 200, released.text
    assert released.json()["counts"] == {"reserved": 0, "issued": 0, "retired": 3}
    m = res["pins"][f"M{YEAR}"]
    [result] = _results(_sync(client, rid, [_line(res, m[0], _birth("M"))]))
    assert result == {"line": 1, "pin": m[0], "status": 201}
    assert client.get(f"/v1/reservations/{rid}").json()["counts"] == {
        "reserved": 0, "issued": 1, "retired": 2}
    # Expiry retires too (the clock is moved by moving exp into the past).
    res2 = _reserve(client, m=1, f=0)
    owner_db("UPDATE reservation SET issued_at = now() - interval '2 days', "
             "expires_at = now() - interval '1 second' WHERE id = $1", res2["reservation_id"])
    assert client.get(f"/v1/reservations/{res2['reservation_id']}").json()["counts"] == {
        "reserved": 0, "issued": 0, "retired": 1}
    pin2 = res2["pins"][f"M{YEAR}"][0]
    [late] = _results(_sync(client, res2["reservation_id"], [_line(res2, pin2, _birth("M"))]))
    assert late == {"line": 1, "pin": pin2, "status": 201}


def test_release_by_other_province_admin_is_403_and_audited_refused(
    office: tuple[httpx.Client, str, Any], officer_token: Callable[..., str],
    server: ServerThread, service_db: Callable[..., list],
) -> None:
    client, _, _ = office
    rid = _reserve(client, m=1, f=0)["reservation_id"]
    with server.client(officer_token("001", roles=("admin",))) as other_admin:
        refused = other_admin.post(f"/v1/reservations/{rid}/release",
                                   headers={"X-Request-ID": f"rel-{rid}"})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    events = service_db("SELECT outcome, details FROM audit_event WHERE action = 'pin.release' "
                        "AND request_id = $1", f"rel-{rid}")
    assert [(e["outcome"], _d(e["details"])["code"], _d(e["details"])["reservation_id"])
            for e in events] == [("refused", "forbidden", rid)]
    assert client.get(f"/v1/reservations/{rid}").json()["counts"] == {
        "reserved": 1, "issued": 0, "retired": 0}


def test_sync_cut_mid_stream_then_resent_applies_each_line_once(
    office: tuple[httpx.Client, str, Any], server: ServerThread,
    service_db: Callable[..., list], settings: Settings,
) -> None:
    client, _, _ = office
    res = _reserve(client, m=600, f=0)
    pins = res["pins"][f"M{YEAR}"]
    lines = [_line(res, pin, _birth("M", number=f"cut-{secrets.token_hex(4)}-{i}"))
             for i, pin in enumerate(pins)]
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    cut_at = len(data) * 9 // 10  # past the first chunk (500 lines), in the middle of a line

    def stream() -> Iterator[bytes]:
        yield data[:cut_at]
        time.sleep(1.5)  # the server reads what arrived (a reset would drop unread bytes)
        raise ConnectionAbortedError("the line went down")

    with pytest.raises(Exception):  # whatever the transport says about the cut
        client.post(f"/v1/reservations/{res['reservation_id']}/issued", content=stream(),
                    headers=NDJSON)
    results = _results(_sync(client, res["reservation_id"], lines))
    assert [r["line"] for r in results] == list(range(1, 601))
    assert [r["pin"] for r in results] == pins
    statuses = [r["status"] for r in results]
    assert statuses == [200] * 500 + [201] * 100  # the first chunk was applied before the cut
    rows = service_db("SELECT pin, count(*) FILTER (WHERE outcome = 'issued') AS n "
                      "FROM audit_event WHERE action = 'pin.issue' AND pin = ANY($1::text[]) "
                      "GROUP BY pin", pins)
    assert len(rows) == 600 and all(r["n"] == 1 for r in rows)
    assert service_db("SELECT count(*) FROM person WHERE pin = ANY($1::text[]) AND "
                      "status = 'active'", pins)[0][0] == 600


SPACE = 100


@dataclass
class Tiny:
    server: ServerThread
    database: DatabaseTarget


@pytest.fixture(scope="module")
def tiny(settings: Settings, pg_server: Any, pg_superuser_url: str, softhsm_dir: Any,
         softhsm_token_factory: Callable[..., Any]) -> Iterator[Tiny]:
    """A server whose buckets hold 100 numbers (as in test_exhaustion.py) and whose clients may
    hold 150 unused reserved PINs; its own SoftHSM token, so its own database (its audit
    checkpoints are signed with its own key and must not land in the session database)."""
    from pydantic import SecretStr

    from idservice.app import create_app
    from idservice.pin.allocator import AllocatorConfig
    from tests.support.server import free_port

    name = f"test_{uuid.uuid4().hex[:12]}"
    urls = asyncio.run(pg_server.ensure_database(name))
    asyncio.run(migrate(urls.owner))
    target = DatabaseTarget(urls.service, urls.owner, urls.auditor, None, urls.admin)
    token = softhsm_token_factory("tiny-reserve")
    tiny = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "tiny-res-es256",
        "reservation_max_open": 150})
    app = create_app(tiny, database=target,
                     allocator=AllocatorConfig(space=SPACE, block_size=10, random_tries=4))
    thread = ServerThread(app, free_port()).start()
    yield Tiny(thread, target)
    thread.stop()
    asyncio.run(drop_database(pg_superuser_url, name))


def _tiny_client(tiny: Tiny, settings: Settings) -> httpx.Client:
    client_id = f"tiny-{secrets.token_hex(4)}"
    client = new_client_key(client_id)
    register_client(tiny.database.admin_url, client_id, client.cert_pem, jurisdiction="001")
    response = httpx.post(f"{tiny.server.base_url}/v1/auth/client-token",
                          data=client_token_form(client_id, client.key,
                                                 settings.client_token_url))
    assert response.status_code == 200, response.text
    return tiny.server.client(response.json()["access_token"])


def test_reserved_numbers_never_issued_online_and_exhaustion_exact_nothing_reserved(
    tiny: Tiny, settings: Settings,
) -> None:
    year = 1911  # a bucket of its own: 001 0 11
    with _tiny_client(tiny, settings) as client:
        online = [client.post("/v1/pins", json=issue_body(
            "001", sex="M", dob=f"{year}-02-03", registered_on=f"{year}-03-01"))
            for _ in range(20)]
        assert all(r.status_code == 201 for r in online)
        res = client.post("/v1/reservations", json={
            "buckets": [{"sex": "M", "birth_year": year, "count": 70}], "days": 5})
        assert res.status_code == 201, res.text
        reserved = set(res.json()["pins"][f"M{year}"])
        assert len(reserved) == 70 and not reserved & {r.json()["pin"] for r in online}
        # 10 numbers left: asking for 11 reserves nothing, exactly.
        more = client.post("/v1/reservations", json={
            "buckets": [{"sex": "M", "birth_year": year, "count": 11}], "days": 5})
        assert more.status_code == 409 and more.json()["code"] == "pin_space_exhausted"
        rest = [client.post("/v1/pins", json=issue_body(
            "001", sex="M", dob=f"{year}-02-03", registered_on=f"{year}-03-01"))
            for _ in range(11)]
        assert [r.status_code for r in rest] == [201] * 10 + [409]
        assert rest[-1].json()["code"] == "pin_space_exhausted"
        issued = {r.json()["pin"] for r in online + rest[:10]}
        assert len(issued) == 30 and not issued & reserved
    prefix = f"0010{year % 100:02d}"  # 001, G 0 (male, 1900s), YY
    assert fetch(tiny.database.service_url, "SELECT count(*) FROM person WHERE pin LIKE "
                 "$1 || '%'", prefix)[0][0] == SPACE


def test_more_open_reserved_pins_than_the_limit_reservation_limit(
    tiny: Tiny, settings: Settings,
) -> None:
    with _tiny_client(tiny, settings) as client:
        first = client.post("/v1/reservations", json={"buckets": [
            {"sex": "F", "birth_year": 1912, "count": 80},
            {"sex": "M", "birth_year": 1912, "count": 60}], "days": 5})
        assert first.status_code == 201, first.text
        over = client.post("/v1/reservations", json={
            "buckets": [{"sex": "F", "birth_year": 1913, "count": 11}], "days": 5})
        assert over.status_code == 409 and over.json()["code"] == "reservation_limit"
        rid = first.json()["reservation_id"]
        assert client.post(f"/v1/reservations/{rid}/release").status_code == 200
        again = client.post("/v1/reservations", json={
            "buckets": [{"sex": "F", "birth_year": 1913, "count": 11}], "days": 5})
        assert again.status_code == 201, again.text

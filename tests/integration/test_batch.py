"""NDJSON batch issuance (contract section 4, POST /v1/pins:batch)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import httpx

from tests.support.bodies import issue_body
from tests.support.server import ServerThread

NDJSON = {"Content-Type": "application/x-ndjson"}


def _lines(bodies: list[object]) -> bytes:
    return b"".join((b if isinstance(b, bytes) else json.dumps(b).encode()) + b"\n"
                    for b in bodies)


def _results(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_batch_answers_every_line_and_is_idempotent_when_resent(
    registrar: httpx.Client, service_db: Callable[..., list]
) -> None:
    bodies: list[object] = [issue_body("052", sex="M" if i % 2 else "F") for i in range(40)]
    bodies[5] = b'{"not json'
    bad = issue_body("052")
    bad["child"]["sex"] = "X"
    bodies[9] = bad
    bodies[20] = issue_body("079")  # outside the registrar's jurisdiction
    first = _results(registrar.post("/v1/pins:batch", content=_lines(bodies), headers=NDJSON))
    assert [r["line"] for r in first] == list(range(1, 41))
    errors = {r["line"]: r["error"]["code"] for r in first if "error" in r}
    assert errors == {6: "malformed_request", 10: "invalid_field", 21: "forbidden"}
    pins = {r["line"]: r["pin"] for r in first if "pin" in r}
    assert len(set(pins.values())) == 37

    # The stream was "cut" and everything is sent again: same PINs, nothing new applied.
    second = _results(registrar.post("/v1/pins:batch", content=_lines(bodies), headers=NDJSON))
    assert {r["line"]: r["pin"] for r in second if "pin" in r} == pins
    assert all(r["replayed"] for r in second if "pin" in r)
    numbers = [b["registration"]["number"] for b in bodies if isinstance(b, dict)]
    assert service_db("SELECT count(*) FROM person WHERE registration_number = ANY($1::text[])",
                      numbers)[0][0] == 37


def test_batch_writes_one_audit_event_per_line(
    server: ServerThread, client_token: Callable[..., str], service_db: Callable[..., list]
) -> None:
    token = client_token("052")
    sub = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["sub"]
    bodies: list[object] = [issue_body("052") for _ in range(25)] + [b"{}"]
    with server.client(token) as client:
        results = _results(client.post("/v1/pins:batch", content=_lines(bodies), headers=NDJSON))
    assert len(results) == 26
    rows = service_db("SELECT outcome, (details->>'line')::int AS line FROM audit_event "
                      "WHERE actor_id = $1 AND action = 'pin.issue' ORDER BY line", sub)
    assert [r["line"] for r in rows] == list(range(1, 27))
    assert [r["outcome"] for r in rows] == ["issued"] * 25 + ["refused"]


def test_batch_streams_a_large_body_sent_in_pieces(registrar: httpx.Client) -> None:
    """More lines than one chunk, sent as a stream: the answer arrives line by line."""
    bodies = [issue_body("052") for _ in range(1200)]

    def stream() -> Iterator[bytes]:
        data = _lines(bodies)  # type: ignore[arg-type]
        for i in range(0, len(data), 7000):
            yield data[i:i + 7000]

    with registrar.stream("POST", "/v1/pins:batch", content=stream(), headers=NDJSON) as resp:
        assert resp.status_code == 200
        results = [json.loads(line) for line in resp.iter_lines() if line]
    assert [r["line"] for r in results] == list(range(1, 1201))
    assert all("pin" in r for r in results)


def test_batch_wrong_content_type_is_415(registrar: httpx.Client) -> None:
    response = registrar.post("/v1/pins:batch", content=b"{}\n",
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_officer_cannot_run_a_batch(officer: httpx.Client) -> None:
    response = officer.post("/v1/pins:batch", content=_lines([issue_body("052")]),
                            headers=NDJSON)
    assert response.status_code == 403


def test_repeated_key_inside_one_batch_is_replay_or_conflict(
    registrar: httpx.Client, service_db: Callable[..., list]
) -> None:
    body = issue_body("052")
    same = json.loads(json.dumps(body))
    other = json.loads(json.dumps(body))
    other["child"]["full_name"] = "Người Khác"
    results = _results(registrar.post("/v1/pins:batch", content=_lines([body, same, other]),
                                      headers=NDJSON))
    assert results[0]["pin"] == results[1]["pin"] and results[1]["replayed"] is True
    assert results[2]["error"]["code"] == "registration_conflict"
    assert service_db("SELECT count(*) FROM person WHERE registration_number = $1",
                      body["registration"]["number"])[0][0] == 1

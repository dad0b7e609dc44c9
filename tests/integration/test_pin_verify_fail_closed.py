"""`POST /v1/pins/verify` answers only once its `pin.verify` event is committed (issue 16:
the count, the read and the event are two statements without an explicit transaction)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx

from tests.support.bodies import issue_body


def test_verify_whose_event_cannot_be_written_is_not_answered(
        registrar: httpx.Client, owner_db: Callable[..., list],
        owner_ddl: Callable[[str], None],
        service_db: Callable[..., list]) -> None:
    body = issue_body()
    issued = registrar.post("/v1/pins", json=body)
    assert issued.status_code == 201, issued.text
    pin = issued.json()["pin"]
    suffix = secrets.token_hex(4)
    owner_db(f"""CREATE FUNCTION fail_verify_{suffix}() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.action = 'pin.verify' AND NEW.pin = '{pin}' THEN
                     RAISE EXCEPTION 'injected failure of the verify event';
                   END IF;
                   RETURN NEW;
                 END $$""")
    owner_ddl(f"CREATE TRIGGER fail_verify_{suffix} BEFORE INSERT ON audit_event FOR EACH ROW "
             f"EXECUTE FUNCTION fail_verify_{suffix}()")
    question = {"pin": pin, "full_name": body["child"]["full_name"],
                "date_of_birth": body["child"]["date_of_birth"]}
    try:
        refused = registrar.post("/v1/pins/verify", json=question)
    finally:
        owner_ddl(f"DROP TRIGGER fail_verify_{suffix} ON audit_event")
        owner_db(f"DROP FUNCTION fail_verify_{suffix}()")
    assert refused.status_code == 500, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "match" not in refused.json()
    assert service_db("SELECT 1 FROM audit_event WHERE action = 'pin.verify' AND pin = $1",
                      pin) == []
    answered = registrar.post("/v1/pins/verify", json=question)
    assert answered.json() == {"match": True}
    assert [r["outcome"] for r in service_db(
        "SELECT outcome FROM audit_event WHERE action = 'pin.verify' AND pin = $1", pin)] \
        == ["match"]

"""OSIA generateUIN's transactionId claimed by the issuance statement itself
(`issue_pin_claimed()`, migration 0056; issue 12's speed): what the fold must keep.

The claim and the issuance commit or roll back together: a failed or refused issuance leaves
no claim (a corrected retry under the same transactionId is issued), a transactionId held for
other attributes is refused 1100 whatever else is wrong with the request, and concurrent uses
of one transactionId issue at most one PIN.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.osia import assert_osia_error, new_transaction, uin_attributes
from tests.support.server import ServerThread

DbFn = Callable[..., list[Any]]


def _uin(client: httpx.Client, attributes: object, tx: str) -> httpx.Response:
    return client.post("/osia/v1/uin", params={"transactionId": tx}, json=attributes)


def _claims(service_db: DbFn, tx: str) -> int:
    count: int = service_db("SELECT count(*) FROM external_registration "
                            "WHERE source = 'osia' AND external_id = $1", tx)[0][0]
    return count


def test_issuance_failing_after_the_claim_leaves_no_claim(
    registrar: httpx.Client, server: ServerThread, owner_db: DbFn, service_db: DbFn,
) -> None:
    """A real fault after the claim: the service role loses the right to insert
    registrations (owner REVOKE), which issue_pins() does after claiming, at the end of the
    statement (migration 0072). The 500 leaves no claim, so the caller's retry with corrected
    attributes under the same id is issued, not 1100."""
    tx = new_transaction()
    with httpx.Client(base_url=server.base_url, headers=dict(registrar.headers)) as own:
        owner_db("REVOKE INSERT ON registration FROM idservice_service")
        try:
            failed = _uin(own, uin_attributes(), tx)
        finally:
            owner_db("GRANT INSERT ON registration TO idservice_service")
    assert_osia_error(failed, 500, 5000)
    assert _claims(service_db, tx) == 0
    retried = _uin(registrar, uin_attributes(), tx)  # other attributes: a new registration
    assert retried.status_code == 200, retried.text


def test_possible_duplicate_releases_the_claim_for_a_corrected_retry(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    """issue_pin() refuses inside the statement (the same child under another registration
    number): the claim made by that statement goes with the refusal."""
    first = uin_attributes()
    assert _uin(registrar, first, new_transaction()).status_code == 200
    tx = new_transaction()
    twin = {**first, "registrationNumber": first["registrationNumber"] + "-bis"}
    assert_osia_error(_uin(registrar, twin, tx), 400, 1103)
    assert _claims(service_db, tx) == 0
    corrected = _uin(registrar, uin_attributes(), tx)
    assert corrected.status_code == 200, corrected.text
    assert _claims(service_db, tx) == 1


def test_registration_conflict_releases_the_claim_for_a_corrected_retry(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    attributes = uin_attributes()
    assert _uin(registrar, attributes, new_transaction()).status_code == 200
    tx = new_transaction()
    assert_osia_error(_uin(registrar, {**attributes, "placeOfBirth": "Tuy Phước"}, tx),
                      400, 1101)
    assert _claims(service_db, tx) == 0
    assert _uin(registrar, uin_attributes(), tx).status_code == 200


def test_held_transaction_with_attributes_breaking_a_rule_is_still_1100_and_audited(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    """The rules of the registration are checked before the statement that claims; a
    transactionId already held for other attributes is still the answer (1100), as when the
    claim came first."""
    tx = new_transaction()
    assert _uin(registrar, uin_attributes(), tx).status_code == 200
    response = _uin(registrar, uin_attributes(dateOfBirth="2024-03-20"), tx)  # after the date
    assert_osia_error(response, 400, 1100)
    events = service_db("SELECT outcome, details->>'code' AS code FROM audit_event "
                        "WHERE action = 'pin.issue' AND details->>'transaction_id' = $1", tx)
    assert [(e["outcome"], e["code"]) for e in events] == [
        ("refused", "osia_transaction_conflict")]


def test_new_transaction_with_attributes_breaking_a_rule_keeps_the_rule_code(
    registrar: httpx.Client, service_db: DbFn,
) -> None:
    tx = new_transaction()
    assert_osia_error(_uin(registrar, uin_attributes(dateOfBirth="2024-03-20"), tx), 400, 1209)
    assert _claims(service_db, tx) == 0


def test_concurrent_uses_of_one_transaction_issue_one_pin(
    registrar: httpx.Client, server: ServerThread, service_db: DbFn,
) -> None:
    """Eight requests at once under one transactionId, each for another registration: one is
    issued, the seven others wait for its claim and are refused 1100; one person, one claim."""
    tx = new_transaction()
    bodies = [uin_attributes() for _ in range(8)]

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60,
                                     headers=dict(registrar.headers)) as client:
            return list(await asyncio.gather(*(
                client.post("/osia/v1/uin", params={"transactionId": tx}, json=body)
                for body in bodies)))

    responses = asyncio.run(main())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 7, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 400} == {1100}
    numbers = [b["registrationNumber"] for b in bodies]
    assert service_db("SELECT count(*) FROM person WHERE registration_number = ANY($1)",
                      numbers)[0][0] == 1
    assert _claims(service_db, tx) == 1


def test_concurrent_retries_of_one_transaction_answer_one_pin(
    registrar: httpx.Client, server: ServerThread,
) -> None:
    tx, attributes = new_transaction(), uin_attributes()

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60,
                                     headers=dict(registrar.headers)) as client:
            return list(await asyncio.gather(*(
                client.post("/osia/v1/uin", params={"transactionId": tx}, json=attributes)
                for _ in range(8))))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert len({r.json() for r in responses}) == 1

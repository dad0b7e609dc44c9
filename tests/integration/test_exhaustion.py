"""A full bucket answers 409 pin_space_exhausted exactly when every number is taken.

The real bucket holds 10^6 numbers; this test runs a second server on the same database whose
allocator uses a 100-number space (10 blocks of 10), so "full" is reachable in a test. Only
the space size differs: the SQL, the allocator and the HTTP path are the production ones.
It signs tokens with its own key on its own SoftHSM token (one open store per token per process).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from idservice.app import create_app
from idservice.auth.assertion import client_token_form
from idservice.pin.allocator import AllocatorConfig
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.fixtures_hsm import SoftHsmDir
from tests.support.osia import assert_osia_error, new_transaction, uin_attributes
from tests.support.server import ServerThread, free_port

SPACE = 100


@pytest.fixture(scope="module")
def tiny_server(settings: Settings, database: DatabaseTarget, softhsm_dir: SoftHsmDir,
                softhsm_token_factory: Callable, server: ServerThread) -> Iterator[ServerThread]:
    token = softhsm_token_factory("tiny-bucket")
    tiny_settings = settings.model_copy(update={
        "pkcs11_module": token.module_path, "pkcs11_token_label": token.token_label,
        "pkcs11_pin": SecretStr(softhsm_dir.user_pin), "jwt_key_label": "tiny-es256"})
    app = create_app(tiny_settings, database=database,
                     allocator=AllocatorConfig(space=SPACE, block_size=10, random_tries=4))
    thread = ServerThread(app, free_port()).start()
    yield thread
    thread.stop()


def test_bucket_fills_to_exactly_space_then_exhausted(
    tiny_server: ServerThread, make_client: Callable[..., tuple[str, object]],
    settings: Settings, service_db: Callable[..., list],
) -> None:
    client_id, key = make_client("001")
    response = httpx.post(f"{tiny_server.base_url}/v1/auth/client-token",
                          data=client_token_form(client_id, key, settings.client_token_url))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]

    def body() -> dict:
        return issue_body("001", sex="M", dob="1901-02-03", registered_on="1901-03-01")

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=tiny_server.base_url, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            sem = asyncio.Semaphore(16)

            async def one() -> httpx.Response:
                async with sem:
                    return await client.post("/v1/pins", json=body())

            return list(await asyncio.gather(*(one() for _ in range(SPACE))))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [201] * SPACE, [r.text for r in responses
                                                                  if r.status_code != 201][:3]
    pins = {r.json()["pin"] for r in responses}
    assert pins == {f"001001{n:06d}" for n in range(SPACE)}

    with httpx.Client(base_url=tiny_server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        full = client.post("/v1/pins", json=body())
    assert full.status_code == 409
    assert full.json()["code"] == "pin_space_exhausted"
    assert service_db("SELECT count(*) FROM person WHERE pin LIKE '001001%'")[0][0] == SPACE
    assert service_db("SELECT sum(used) FROM pin_block WHERE prefix = '001001'")[0][0] == SPACE


def test_batch_fills_bucket_then_reports_exhaustion_per_line(
    tiny_server: ServerThread, make_client: Callable[..., tuple[str, object]],
    settings: Settings,
) -> None:
    """The batch path (bulk candidates, then the exact allocator as fallback) ends in the same
    place: every number used once, then pin_space_exhausted for the line that finds none."""
    client_id, key = make_client("001")
    token = httpx.post(f"{tiny_server.base_url}/v1/auth/client-token",
                       data=client_token_form(client_id, key, settings.client_token_url)
                       ).json()["access_token"]
    lines = [issue_body("001", sex="F", dob="1902-02-03", registered_on="1902-03-01")
             for _ in range(SPACE + 1)]
    payload = b"".join(json.dumps(b).encode() + b"\n" for b in lines)
    with httpx.Client(base_url=tiny_server.base_url, timeout=120,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.post("/v1/pins:batch", content=payload,
                               headers={"Content-Type": "application/x-ndjson"})
    results = [json.loads(x) for x in response.text.splitlines()]
    pins = [r["pin"] for r in results if "pin" in r]
    assert sorted(pins) == [f"001102{n:06d}" for n in range(SPACE)]
    errors = [r["error"]["code"] for r in results if "error" in r]
    assert errors == ["pin_space_exhausted"]


def test_osia_uin_on_a_full_bucket_is_1102_and_releases_the_transaction(
    tiny_server: ServerThread, make_client: Callable[..., tuple[str, object]],
    settings: Settings, service_db: Callable[..., list],
) -> None:
    """The exact path (issue_pin() found no free number among its random tries) with an OSIA
    transactionId: issue_pin_claimed() committed the claim, the exact allocator refuses, and
    the claim is released, so a corrected retry under the same transactionId is issued."""
    client_id, key = make_client("001")
    token = httpx.post(f"{tiny_server.base_url}/v1/auth/client-token",
                       data=client_token_form(client_id, key, settings.client_token_url)
                       ).json()["access_token"]
    lines = [issue_body("001", sex="M", dob="1903-02-03", registered_on="1903-03-01")
             for _ in range(SPACE)]
    payload = b"".join(json.dumps(b).encode() + b"\n" for b in lines)
    with httpx.Client(base_url=tiny_server.base_url, timeout=120,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        filled = client.post("/v1/pins:batch", content=payload,
                             headers={"Content-Type": "application/x-ndjson"})
        assert sum('"pin"' in x for x in filled.text.splitlines()) == SPACE
        tx = new_transaction()
        full = client.post("/osia/v1/uin", params={"transactionId": tx}, json=uin_attributes(
            registrationProvince="001", registrationDate="1903-03-01", gender=1,
            dateOfBirth="1903-02-03"))
        assert_osia_error(full, 400, 1102)
        assert service_db("SELECT count(*) FROM external_registration WHERE external_id = $1",
                          tx)[0][0] == 0
        corrected = client.post("/osia/v1/uin", params={"transactionId": tx},
                                json=uin_attributes(registrationProvince="001",
                                                    registrationDate="1904-03-01", gender=1,
                                                    dateOfBirth="1904-02-03"))
    assert corrected.status_code == 200, corrected.text

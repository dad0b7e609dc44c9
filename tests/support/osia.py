"""Helpers for the field-interface tests (OSIA, OpenCRVS): attribute sets to start from,
reader clients with a registered purpose, checks of OSIA error bodies."""

from __future__ import annotations

import asyncio
import copy
import itertools
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from idservice.auth.administration import admin_actor
from idservice.auth.assertion import client_token_form
from idservice.auth.client_registry import add_client
from idservice.db.pool import connect
from tests.support.bodies import mother_pin
from tests.support.pki import new_client_key

__all__ = ["assert_osia_error", "new_transaction", "reader_token", "uin_attributes"]

_counter = itertools.count(1)


def new_transaction() -> str:
    return f"tx-{uuid.uuid4().hex}"


def uin_attributes(**changes: Any) -> dict[str, Any]:
    """A valid flat OSIA attribute set (a new registration number, and so a new child, each
    call: the mother's UIN comes from the number, so the duplicate check of contract 9 does not
    refuse the next set); `name=None` removes an attribute."""
    number = f"OSIA-{next(_counter)}-{secrets.token_hex(4)}"
    attributes: dict[str, Any] = {
        "registrationAuthority": "UBND xã Nhơn Lý",
        "registrationNumber": number,
        "registrationBook": "01/2024",
        "registrationDate": "2024-03-10",
        "registrationProvince": "052",
        "lastName": "Nguyễn", "middleName": "Thị Minh", "firstName": "Anh",
        "otherNames": "Bé Na",
        "gender": 2,
        "dateOfBirth": "2024-03-02",
        "placeOfBirth": "Quy Nhơn",
        "homeTown": "Bình Định",
        "ethnicity": "Kinh",
        "nationality": "VN",
        "fatherFullName": "Nguyễn Văn Hùng",
        "fatherUin": "052090012345",
        "motherFullName": "Trần Thị Lan",
    }
    attributes = copy.deepcopy(attributes)
    for name, value in changes.items():
        if value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = value
    if "motherUin" not in changes and "motherFullName" in attributes:
        attributes["motherUin"] = mother_pin(
            str(attributes.get("registrationProvince", "")),
            str(attributes.get("registrationAuthority", "")),
            str(attributes.get("registrationNumber", "")))
    return attributes


def assert_osia_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """OSIA `Error {code, message}` (additionalProperties false), never problem+json."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0] == "application/json", \
        response.headers["content-type"]
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    for leak in ("Traceback", "asyncpg", "pydantic", "SELECT ", "idservice."):
        assert leak not in response.text, (leak, response.text)
    return body


def reader_token(base_url: str, admin_url: str | None, token_url: str, *, jurisdiction: str = "052",
                 purpose: str | None = "kiểm tra điều kiện hưởng trợ cấp (test)",
                 roles: tuple[str, ...] = ("reader",)) -> str:
    """A client registered with `purpose` (None: none) and its access token, over HTTP."""
    client_id = f"reader-{secrets.token_hex(6)}"
    key = new_client_key(client_id)

    async def main() -> None:
        assert admin_url is not None  # registering a client is administration
        conn = await connect(admin_url)
        try:
            await add_client(conn, client_id=client_id, cert_pem=key.cert_pem,
                             roles=list(roles), jurisdiction=jurisdiction, purpose=purpose,
                             by=admin_actor())
        finally:
            await conn.close()

    asyncio.run(main())
    response = httpx.post(f"{base_url}/v1/auth/client-token",
                          data=client_token_form(client_id, key.key, token_url))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


ReaderFactory = Callable[..., str]

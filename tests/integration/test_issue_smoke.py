"""Issuance over real HTTP: a registrar gets a PIN, a retry gets the same one."""

from __future__ import annotations

import httpx

from tests.support.bodies import issue_body


def test_issue_then_retry_returns_same_pin(registrar: httpx.Client) -> None:
    body = issue_body("052")
    first = registrar.post("/v1/pins", json=body)
    assert first.status_code == 201, first.text
    pin = first.json()["pin"]
    assert pin.startswith("052") and pin[3] == "3" and pin[4:6] == "24"
    again = registrar.post("/v1/pins", json=body)
    assert again.status_code == 200
    assert again.json()["pin"] == pin

"""SoftHSM dev/test helpers and JWK thumbprints."""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hsm.errors import HsmError
from hsm.jwk import jwk_thumbprint
from hsm.softhsm import (
    SoftHsmToken,
    ensure_softhsm_token,
    find_softhsm_module,
    generate_so_pin,
    generate_user_pin,
    load_or_create_pins,
)


def test_find_softhsm_module() -> None:
    assert os.path.isfile(find_softhsm_module())


def test_pins_are_random_persistent_and_private(tmp_path: Path) -> None:
    assert generate_user_pin() != generate_user_pin()
    assert len(generate_so_pin()) >= 16
    user_pin, so_pin = load_or_create_pins(tmp_path / "dev")
    assert (user_pin, so_pin) == load_or_create_pins(tmp_path / "dev")
    assert user_pin != so_pin
    mode = stat.S_IMODE((tmp_path / "dev" / "pins.json").stat().st_mode)
    assert mode == 0o600


def test_ensure_token_is_idempotent(
    softhsm_token_factory: Callable[[str], SoftHsmToken], hsm_token: SoftHsmToken
) -> None:
    again = softhsm_token_factory(hsm_token.token_label)
    assert again == hsm_token
    assert os.environ["SOFTHSM2_CONF"] == str(hsm_token.conf_path)
    conf = hsm_token.conf_path.read_text()
    for line in ("objectstore.backend = file", "slots.removable = false", "log.level = ERROR"):
        assert line in conf
    slots = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SOFTHSM2_CONF": str(hsm_token.conf_path)},
    ).stdout
    labels = [line.split(":", 1)[1].strip() for line in slots.splitlines() if "Label:" in line]
    assert labels.count(hsm_token.token_label) == 1
    assert hsm_token.user_pin not in repr(hsm_token)


def test_ensure_token_errors_do_not_leak_pins(
    softhsm_token_factory: Callable[[str], SoftHsmToken],
) -> None:
    token = softhsm_token_factory("hsm-tests")
    with pytest.raises(HsmError, match="1-32 bytes"):
        ensure_softhsm_token(token.conf_path.parent, "x" * 33, "1234", "5678")
    bad_so_pin = "so-" + generate_so_pin()
    with pytest.raises(HsmError) as info:  # PIN too short: softhsm2-util fails
        ensure_softhsm_token(token.conf_path.parent, "hsm-badpin", "1", bad_so_pin)
    assert bad_so_pin not in str(info.value)
    assert info.value.__cause__ is None


def test_rfc7638_known_answer() -> None:
    # RFC 7638 §3.1 example; optional members must not change the thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhA"
        "I4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_package_reexports_public_api() -> None:
    hsm = importlib.import_module("hsm")
    assert getattr(hsm, "__file__", None) is not None, "hsm must be a regular package"
    for name in hsm.__all__:
        assert hasattr(hsm, name), name
    assert {"KeyStore", "AsyncKeyStore", "HsmError", "HsmUnavailable", "KeyNotFound"} <= set(
        hsm.__all__
    )


def test_second_softhsm_configuration_is_refused_once_loaded(
    keystore: object, hsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    with pytest.raises(HsmError, match="only use one"):
        ensure_softhsm_token(tmp_path / "other", "other", "123456", "12345678")
    assert os.environ["SOFTHSM2_CONF"] == str(hsm_token.conf_path)

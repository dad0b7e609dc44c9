"""SoftHSM fixtures for the hsm tests.

SoftHSM reads ``$SOFTHSM2_CONF`` when the PKCS#11 module initialises, and the variable
is process-global, so a pytest process must use exactly ONE SoftHSM configuration.
``softhsm_dir`` is that one configuration (session scope); every consumer creates its
own token(s) in it with ``softhsm_token_factory(label)``. Tokens are separate so that
suites never fight over a token login (login is per token and process in PKCS#11).

These fixtures have no hsm-test specifics: they can move to ``tests/conftest.py`` as is
so the whole suite shares the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Submodule imports work even while the editable install still registers ``hsm`` as a
# namespace package (it was installed before hsm/__init__.py existed).
from hsm.keystore import KeyStore
from hsm.softhsm import (
    SoftHsmToken,
    active_softhsm_dir,
    ensure_softhsm_token,
    load_or_create_pins,
)


@dataclass(frozen=True)
class SoftHsmDir:
    """The process's SoftHSM configuration directory and its dev PINs."""

    base_dir: Path
    user_pin: str
    so_pin: str


@pytest.fixture(scope="session")
def softhsm_dir(data_dir: Path) -> SoftHsmDir:
    # One SoftHSM configuration per process: the one in the session's data dir, which the
    # service's own token (`resolve_hsm`) uses too.
    base_dir = active_softhsm_dir() or data_dir / "softhsm"
    user_pin, so_pin = load_or_create_pins(base_dir)
    return SoftHsmDir(base_dir=base_dir, user_pin=user_pin, so_pin=so_pin)


@pytest.fixture(scope="session")
def softhsm_token_factory(softhsm_dir: SoftHsmDir) -> Callable[[str], SoftHsmToken]:
    """``factory(label)`` creates (once) and returns a token in the shared configuration."""

    def factory(label: str) -> SoftHsmToken:
        return ensure_softhsm_token(
            softhsm_dir.base_dir, label, softhsm_dir.user_pin, softhsm_dir.so_pin
        )

    return factory


@pytest.fixture(scope="session")
def hsm_token(softhsm_token_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    """The token the hsm tests sign with."""
    return softhsm_token_factory("hsm-tests")


@pytest.fixture
def keystore(hsm_token: SoftHsmToken) -> Iterator[KeyStore]:
    """An open KeyStore on ``hsm_token`` with keys ``es`` (EC P-256) and ``rsa`` (RSA-2048)."""
    store = KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin)
    store.open()
    store.ensure_key("es", "EC_P256")
    store.ensure_key("rsa", "RSA_2048")
    try:
        yield store
    finally:
        store.close()

"""Server-side PKCS#11 key store for idservice's signing keys.

``KeyStore`` (blocking, thread-safe) and ``AsyncKeyStore`` (asyncio, one worker thread)
keep the private keys inside the token: keys are generated there as sensitive,
non-extractable token objects and only signatures leave it. Public keys are exported as
``cryptography`` objects and as JWKs whose ``kid`` is the RFC 7638 thumbprint.
``hsm.softhsm`` creates SoftHSM2 tokens for development and tests.
"""

from hsm.async_keystore import AsyncKeyStore
from hsm.errors import HsmError, HsmUnavailable, KeyNotFound
from hsm.jwk import PublicKey, jwk_thumbprint
from hsm.keystore import KeyKind, KeyStore, SignAlg
from hsm.softhsm import (
    SoftHsmToken,
    active_softhsm_dir,
    ensure_softhsm_token,
    find_softhsm_module,
    generate_so_pin,
    generate_user_pin,
    load_or_create_pins,
)

__all__ = [
    "AsyncKeyStore",
    "HsmError",
    "HsmUnavailable",
    "KeyKind",
    "KeyNotFound",
    "KeyStore",
    "PublicKey",
    "SignAlg",
    "SoftHsmToken",
    "active_softhsm_dir",
    "ensure_softhsm_token",
    "find_softhsm_module",
    "generate_so_pin",
    "generate_user_pin",
    "jwk_thumbprint",
    "load_or_create_pins",
]

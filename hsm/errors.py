"""Exception hierarchy of the PKCS#11 key store.

Callers only ever see these types, never ``pkcs11.exceptions.*``: the raw library
exceptions carry bare CKR_* names without context, and letting them escape would tie
the service to python-pkcs11.

* :class:`HsmError` -- root; also raised for configuration problems that retrying
  cannot fix: wrong or locked user PIN (CKR_PIN_INCORRECT, CKR_PIN_LOCKED, ...),
  ambiguous token/key labels, a key of the wrong type under a label, a token already
  logged in by someone else in this process (CKR_USER_ALREADY_LOGGED_IN).
  A wrong PIN is deliberately *not* :class:`HsmUnavailable`: the device is reachable and
  retrying would only burn the token's PIN retry counter, so /readyz should report it
  as a hard misconfiguration.
* :class:`HsmUnavailable` -- the module cannot be loaded, the token is absent, or a
  device/session error persisted after one close-reopen-retry cycle.
* :class:`KeyNotFound` -- no key pair with that label on the token.
* :class:`WrongPin` -- an officer's token refused the PIN (wrong, locked, malformed): its
  message says so in words an officer acts on, with what the token says of the tries left.

No message ever contains a PIN.
"""

from __future__ import annotations

__all__ = ["HsmError", "HsmUnavailable", "KeyNotFound", "WrongPin"]


class HsmError(Exception):
    """Root of all key store errors (also: wrong PIN, inconsistent token contents)."""


class HsmUnavailable(HsmError):
    """The PKCS#11 module or token cannot be reached, even after a reopen attempt."""


class KeyNotFound(HsmError):
    """No key pair with the requested label exists on the token."""


class WrongPin(HsmError):
    """The token refused the user PIN (`hsm/client.py`); the message is for the officer."""

"""Server-side signing keys held in a PKCS#11 token (SoftHSM in dev, an HSM in production).

Design (PKCS#11 v2.40 base specification; SoftHSM 2.6 / python-pkcs11 0.10 behaviour):

* One read/write session per :class:`KeyStore`, logged in once as CKU_USER (login is per
  application and token, §5.6 ``C_Login``). All calls into a module go through the
  process-wide lock of :mod:`hsm._library`, because python-pkcs11 initialises the module
  without OS locking (§5.4), so concurrent calls would be undefined behaviour.
* Sessions and object handles die with device errors and with ``C_Finalize``. On
  session/device errors (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
  CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR, CKR_TOKEN_NOT_PRESENT, ...) the store drops the
  session and every handle, reopens (re-initialising the module for device-level errors
  or when the token label is not found), looks the keys up again and retries once;
  a second failure is :class:`~hsm.errors.HsmUnavailable`. Private-key handles are only
  cached for the lifetime of one session.
* Public keys, JWKs and ``kid`` values are cached per label for the store's lifetime:
  they are public and cannot change without a new key pair under a new label.
* A rejected PIN latches: later calls fail fast with :class:`~hsm.errors.HsmError`
  instead of presenting the PIN again, because real tokens lock the user PIN after a
  few failures. Create a new KeyStore with the right PIN.
* One open KeyStore per token per process: a second one on the same token is refused
  (CKR_USER_ALREADY_LOGGED_IN) rather than riding on the first one's login with an
  unchecked PIN. A login left behind by a store that was dropped without ``close()`` is
  cleared by re-initialising the module, so the PIN is always verified.
* The user PIN never appears in ``repr()``, exception messages or logs.

Operations open the session lazily, so a service can start while the token is absent
and report that through :meth:`KeyStore.ping` (/readyz).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pkcs11 import Mechanism, ObjectClass, TokenFlag
from pkcs11.exceptions import (
    DeviceError,
    DeviceRemoved,
    GeneralError,
    KeyHandleInvalid,
    MultipleTokensReturned,
    NoSuchToken,
    ObjectHandleInvalid,
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    SessionClosed,
    SessionHandleInvalid,
    SlotIDInvalid,
    TokenNotPresent,
    TokenNotRecognised,
    UserAlreadyLoggedIn,
    UserNotLoggedIn,
    UserPinNotInitialized,
)
from pkcs11.types import Object, Session, SignMixin, Token

from hsm import _objects
from hsm._library import Library, library_for
from hsm._objects import KeyKind, SignAlg
from hsm.errors import HsmError, HsmUnavailable, KeyNotFound
from hsm.jwk import PublicKey, jwk_thumbprint, public_jwk_members

__all__ = ["KeyKind", "KeyStore", "SignAlg"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors after which the token or module itself is suspect: re-initialise the module.
_DEVICE_ERRORS: tuple[type[PKCS11Error], ...] = (
    DeviceError,
    DeviceRemoved,
    TokenNotPresent,
    TokenNotRecognised,
    SlotIDInvalid,
    GeneralError,
)
# Errors that invalidate the session or handles: drop everything, reopen, retry once.
_SESSION_ERRORS: tuple[type[PKCS11Error], ...] = (
    SessionHandleInvalid,
    SessionClosed,
    UserNotLoggedIn,
    KeyHandleInvalid,
    ObjectHandleInvalid,
)
# Opening the token: these trigger one module re-initialisation (rescans slots).
_REOPEN_ERRORS: tuple[type[PKCS11Error], ...] = (NoSuchToken, *_DEVICE_ERRORS)
_PIN_ERRORS: tuple[type[PKCS11Error], ...] = (
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PinExpired,
    UserPinNotInitialized,
)
_DEFAULT_JWS_ALG: dict[KeyKind, SignAlg] = {"EC_P256": "ES256", "RSA_2048": "PS256"}


class _LoginLost(Exception):
    """Public key visible but private key not: the session may have lost its login."""


class _OrphanedLogin(Exception):
    """Token logged in by a session no live KeyStore owns (leaked or foreign)."""


class _Secret:
    """Holds the PIN so that ``vars()``, debuggers and rich tracebacks show no value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"


@dataclass(frozen=True)
class _PublicInfo:
    kind: KeyKind
    key: PublicKey
    members: dict[str, str]
    kid: str


def _is_recoverable(exc: BaseException) -> bool:
    if isinstance(exc, (_LoginLost, *_DEVICE_ERRORS, *_SESSION_ERRORS)):
        return True
    # python-pkcs11 maps CKR_CRYPTOKI_NOT_INITIALIZED (someone finalized the module) and
    # unknown CKR_* values to the bare base class.
    return type(exc) is PKCS11Error


class KeyStore:
    """Signing keys on one PKCS#11 token; thread-safe, blocking (see :class:`AsyncKeyStore`)."""

    def __init__(self, module_path: str, token_label: str, user_pin: str) -> None:
        if not isinstance(user_pin, str) or not user_pin:
            raise HsmError("user PIN must be a non-empty string")
        self._module_path = module_path
        self._token_label = token_label
        self._pin = _Secret(user_pin)
        self._library: Library = library_for(module_path)
        self._session: Session | None = None
        self._session_generation = -1
        self._serial: bytes | None = None
        self._pin_rejected = False
        # Per-session (handles die with the session):
        self._private: dict[str, SignMixin] = {}
        self._mechanisms: frozenset[Mechanism] = frozenset()
        # Per-store (public data, survives reopen):
        self._public: dict[str, _PublicInfo] = {}

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "closed"
        return (
            f"KeyStore(module_path={self._module_path!r}, "
            f"token_label={self._token_label!r}, {state})"
        )

    @property
    def token_label(self) -> str:
        return self._token_label

    @property
    def module_path(self) -> str:
        return self._module_path

    @property
    def _lock(self) -> threading.Lock:
        return self._library.lock  # looked up each time: replaced in a forked child

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Load the module (after any fork), open one session and log in.

        Raises HsmUnavailable if the module or token cannot be reached, HsmError for a
        rejected PIN. Calling it on an open store is a no-op.
        """
        with self._lock:
            self._ensure_session_locked()

    def close(self) -> None:
        """Log out and close the session. The store can be reopened (explicitly or lazily)."""
        with self._lock:
            self._drop_session_locked(graceful=True)

    def __enter__(self) -> KeyStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ operations

    def ensure_key(self, label: str, kind: KeyKind = "EC_P256") -> None:
        """Find the key pair ``label`` or generate it as persistent token objects.

        The private key is sensitive and non-extractable. An existing key of another
        kind under the same label is an HsmError (never silently replaced).
        """
        if kind not in _objects.KEY_KINDS:
            raise ValueError(f"unsupported key kind {kind!r}")

        def op(session: Session) -> _PublicInfo:
            public = _objects.find_one(session, ObjectClass.PUBLIC_KEY, label)
            private = _objects.find_one(session, ObjectClass.PRIVATE_KEY, label)
            if public is None and private is None:
                log.info("generating %s key pair %r on token %r", kind, label, self._token_label)
                public = _objects.generate_keypair(session, label, kind)
            elif public is None:
                raise HsmError(f"token has a private key {label!r} but no public key")
            elif private is None:
                raise _LoginLost
            info = self._public_info(label, public)
            if info.kind != kind:
                raise HsmError(f"key {label!r} exists as {info.kind}, not {kind}")
            return info

        self._public[label] = self._call(op, f"ensure_key({label!r})")

    def sign(self, label: str, data: bytes, alg: SignAlg) -> bytes:
        """Sign ``data`` as JWS ``alg``; ES256 returns raw r||s (64 bytes, RFC 7518 §3.4)."""
        if alg not in _objects.SIGN_ALGS:
            raise ValueError(f"unsupported JWS algorithm {alg!r}")

        def op(session: Session) -> bytes:
            private = self._private_key_locked(session, label)
            info = self._public.get(label)
            if info is None:
                info = self._public[label] = self._load_public_locked(session, label)
            if info.kind != _objects.ALG_KIND[alg]:
                raise HsmError(f"key {label!r} is {info.kind}; cannot sign {alg}")
            return _objects.sign_with(private, bytes(data), alg, self._mechanisms)

        return self._call(op, f"sign({label!r}, {alg})")

    def public_key(self, label: str) -> PublicKey:
        """The public key (``EllipticCurvePublicKey`` or ``RSAPublicKey``); cached."""
        return self._info(label).key

    def jwk(self, label: str, alg: SignAlg | None = None) -> dict[str, str]:
        """Public JWK with RFC 7638 ``kid``, ``alg`` and ``use="sig"``.

        ``alg`` defaults to ES256 for EC keys and PS256 for RSA keys (an RSA key can also be
        published as RS256).
        """
        info = self._info(label)
        jws_alg = alg or _DEFAULT_JWS_ALG[info.kind]
        if _objects.ALG_KIND.get(jws_alg) != info.kind:
            raise HsmError(f"key {label!r} is {info.kind}; cannot be published for {jws_alg}")
        return {**info.members, "kid": info.kid, "alg": jws_alg, "use": "sig"}

    def kid(self, label: str) -> str:
        """RFC 7638 SHA-256 thumbprint of the public key (base64url, no padding)."""
        return self._info(label).kid

    def ping(self) -> None:
        """Round-trip to the token; raises HsmUnavailable if it cannot be reached.

        Uses C_GetTokenInfo (token still present) and C_GenerateRandom (session handle
        still valid) rather than an object search: python-pkcs11 reports a search on a dead
        session a second time as an "unraisable" exception from ``SearchIter.__del__``.
        A rejected PIN raises plain HsmError (misconfiguration, not an outage).
        """

        def op(session: Session) -> None:
            token: Token = session.token.slot.get_token()
            if token.label != self._token_label:
                raise TokenNotRecognised()
            if token.flags & TokenFlag.RNG:
                session.generate_random(64)
            else:
                _objects.find_one(session, ObjectClass.PUBLIC_KEY, "\0ping")

        self._call(op, "ping")

    # ------------------------------------------------------------------ internals

    def _info(self, label: str) -> _PublicInfo:
        info = self._public.get(label)
        if info is not None:
            return info

        def op(session: Session) -> _PublicInfo:
            return self._load_public_locked(session, label)

        info = self._public[label] = self._call(op, f"public_key({label!r})")
        return info

    def _public_info(self, label: str, public: Object) -> _PublicInfo:
        key = _objects.load_public_key(public)
        kind = _objects.kind_of(key)
        if kind is None:
            raise HsmError(f"key {label!r} is neither P-256 nor RSA-2048")
        members = public_jwk_members(key)
        return _PublicInfo(kind=kind, key=key, members=members, kid=jwk_thumbprint(members))

    def _load_public_locked(self, session: Session, label: str) -> _PublicInfo:
        public = _objects.find_one(session, ObjectClass.PUBLIC_KEY, label)
        if public is None:
            raise KeyNotFound(f"no key {label!r} on token {self._token_label!r}")
        return self._public_info(label, public)

    def _private_key_locked(self, session: Session, label: str) -> SignMixin:
        cached = self._private.get(label)
        if cached is not None:
            return cached
        private = _objects.find_one(session, ObjectClass.PRIVATE_KEY, label)
        if private is None:
            if _objects.find_one(session, ObjectClass.PUBLIC_KEY, label) is not None:
                raise _LoginLost
            raise KeyNotFound(f"no key {label!r} on token {self._token_label!r}")
        if not isinstance(private, SignMixin):
            raise HsmError(f"private key {label!r} cannot sign")
        self._private[label] = private
        return private

    def _call(self, op: Callable[[Session], T], what: str) -> T:
        """Run ``op`` on the session under the library lock; reopen and retry once."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return op(self._ensure_session_locked())
                except (PKCS11Error, _LoginLost) as exc:
                    if not _is_recoverable(exc):
                        raise HsmError(
                            f"{what} failed on token {self._token_label!r}: {type(exc).__name__}"
                        ) from exc
                    if attempt == 2:
                        if isinstance(exc, _LoginLost):
                            raise HsmError(
                                f"{what}: private key not visible on token {self._token_label!r}"
                            ) from None
                        raise HsmUnavailable(
                            f"{what} failed on token {self._token_label!r} "
                            f"after reopening: {type(exc).__name__}"
                        ) from exc
                    log.warning(
                        "%s on token %r failed with %s; reopening session",
                        what,
                        self._token_label,
                        type(exc).__name__,
                    )
                    if isinstance(exc, _DEVICE_ERRORS) or type(exc) is PKCS11Error:
                        self._library.request_reinit()
                    self._drop_session_locked(graceful=True)
            raise AssertionError("unreachable")  # pragma: no cover

    def _ensure_session_locked(self) -> Session:
        if self._session is not None and self._session_generation == self._library.generation:
            return self._session
        if self._session is not None:
            # Module re-initialised (by another store, a fork or a device error): the handle
            # is dead and its number may already belong to someone else. Never touch it.
            self._drop_session_locked(graceful=False)
        if self._pin_rejected:
            raise HsmError(
                f"user PIN for token {self._token_label!r} was rejected earlier; "
                "not retrying (it would count against the PIN retry limit)"
            )
        self._open_locked()
        assert self._session is not None
        return self._session

    def _open_locked(self) -> None:
        for attempt in (1, 2):
            lib = self._library.get()
            try:
                token = lib.get_token(token_label=self._token_label)
                mechanisms = frozenset(
                    m for m in token.slot.get_mechanisms() if isinstance(m, Mechanism)
                )
                session = self._login(token)
            except _REOPEN_ERRORS as exc:
                if attempt == 2:
                    reason = (
                        "no token with this label"
                        if isinstance(exc, NoSuchToken)
                        else type(exc).__name__
                    )
                    raise HsmUnavailable(
                        f"cannot open token {self._token_label!r} in "
                        f"{self._module_path!r}: {reason}"
                    ) from exc
                # Tokens created after C_Initialize stay invisible until C_Finalize/C_Initialize.
                self._library.reinitialize()
                continue
            except _OrphanedLogin:
                if attempt == 2:
                    raise HsmError(
                        f"token {self._token_label!r} stays logged in by a session this "
                        "process's KeyStores do not own"
                    ) from None
                # C_Finalize ends every session and login, so the PIN gets checked again.
                self._library.reinitialize()
                continue
            except MultipleTokensReturned as exc:
                raise HsmError(f"several tokens labelled {self._token_label!r}") from exc
            except PKCS11Error as exc:
                raise HsmUnavailable(
                    f"cannot open token {self._token_label!r}: {type(exc).__name__}"
                ) from exc
            self._session = session
            self._session_generation = self._library.generation
            self._mechanisms = mechanisms
            log.info("opened PKCS#11 session on token %r", self._token_label)
            return

    def _login(self, token: Token) -> Session:
        serial = token.serial
        try:
            session = token.open(rw=True, user_pin=self._pin.reveal())
        except _PIN_ERRORS as exc:
            self._pin_rejected = True
            raise HsmError(
                f"token {self._token_label!r} rejected the user PIN ({type(exc).__name__})"
            ) from None
        except UserAlreadyLoggedIn:
            ref = self._library.login_owner.get(serial)
            owner = ref() if ref is not None else None
            if owner is None or (owner is not self and owner._session is None):
                raise _OrphanedLogin from None
            if owner is not self:
                raise HsmError(
                    f"token {self._token_label!r} is already logged in by another KeyStore in "
                    "this process; use a single KeyStore per token per process"
                ) from None
            # Our own earlier login is still active (our old session died, others remain):
            # a new session inherits the user state (PKCS#11 v2.40 §5.6), PIN already checked.
            session = token.open(rw=True)
        self._serial = serial
        self._library.login_owner[serial] = weakref.ref(self)
        return session

    def _drop_session_locked(self, *, graceful: bool) -> None:
        session, self._session = self._session, None
        self._private.clear()
        self._mechanisms = frozenset()
        if session is None:
            return
        same_generation = self._session_generation == self._library.generation
        if graceful and same_generation:
            try:
                session.close()  # C_Logout + C_CloseSession
            except PKCS11Error as exc:
                log.debug("ignoring %s while closing a broken session", type(exc).__name__)
            else:
                if self._serial is not None:
                    self._library.login_owner.pop(self._serial, None)

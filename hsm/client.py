"""Officer side: sign a login challenge with the certificate's key on a USB token (PKCS#11).

Finds a certificate on the token and the private key with the same CKA_ID, and signs with it.
Hashing happens on the host and the token signs the digest (`CKM_ECDSA`, giving raw r||s as
JWS wants): SoftHSM 2.6.1 and many smart cards have no `CKM_ECDSA_SHA256`. RSA uses the
token's hash-and-sign mechanisms (`CKM_SHA256_RSA_PKCS`, `..._PKCS_PSS`), always named
explicitly since python-pkcs11's defaults (SHA-512, SHA-1 for PSS) are not what we want.
Calls go through the process-wide module state of `hsm._library` (one lock per module).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import MGF, Attribute, Mechanism, ObjectClass, TokenFlag
from pkcs11.exceptions import (
    NoSuchToken,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
)

from hsm._library import library_for
from hsm.errors import HsmError, WrongPin

__all__ = ["TokenSignature", "default_algorithm", "sign_with_token", "token_certificate"]

T = TypeVar("T")

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_RSA_MECHANISMS = {
    "RS256": (Mechanism.SHA256_RSA_PKCS, None),
    "RS384": (Mechanism.SHA384_RSA_PKCS, None),
    "RS512": (Mechanism.SHA512_RSA_PKCS, None),
    "PS256": (Mechanism.SHA256_RSA_PKCS_PSS, (Mechanism.SHA256, MGF.SHA256, 32)),
    "PS384": (Mechanism.SHA384_RSA_PKCS_PSS, (Mechanism.SHA384, MGF.SHA384, 48)),
    "PS512": (Mechanism.SHA512_RSA_PKCS_PSS, (Mechanism.SHA512, MGF.SHA512, 64)),
}


@dataclass(frozen=True)
class TokenSignature:
    certificate_der: bytes
    algorithm: str
    signature: bytes


def default_algorithm(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    raise HsmError("the token's certificate key is neither EC (P-256/384/521) nor RSA")


def _sign(key: Any, algorithm: str, data: bytes) -> bytes:
    if algorithm.startswith("ES"):
        digest = hashlib.new(f"sha{algorithm[2:]}", data).digest()
        return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))
    mechanism, param = _RSA_MECHANISMS[algorithm]
    return bytes(key.sign(data, mechanism=mechanism, mechanism_param=param))


def _with_pair(module_path: str, token_label: str, pin: str, key_id: bytes | None,
               use: Callable[[bytes, Any], T]) -> T:
    """Log in and call `use(certificate DER, private key)` with the first certificate on the
    token (with CKA_ID `key_id`, if given) that has a private key of the same CKA_ID."""
    state = library_for(module_path)
    with state.lock:
        lib = state.get()
        try:
            try:
                token = lib.get_token(token_label=token_label)
            except NoSuchToken:
                state.reinitialize()  # tokens created after the module loaded
                token = lib.get_token(token_label=token_label)
            with token.open(user_pin=pin) as session:
                query: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.CERTIFICATE}
                if key_id is not None:
                    query[Attribute.ID] = key_id
                # One find operation at a time per session: list the certificates first.
                for cert_object in list(session.get_objects(query)):
                    der = bytes(cert_object[Attribute.VALUE])
                    keys = list(session.get_objects({
                        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                        Attribute.ID: cert_object[Attribute.ID]}))
                    if keys:
                        return use(der, keys[0])
        except NoSuchToken as exc:
            raise HsmError(f"no token labelled {token_label!r}") from exc
        except PinLocked as exc:
            raise WrongPin("the token's PIN is locked after too many wrong tries: ask the "
                           "card's issuer to unblock it") from exc
        except PinIncorrect as exc:
            raise WrongPin(f"wrong token PIN{_tries_left(lib, token_label)}: check it and try "
                           "again") from exc
        except (PinInvalid, PinLenRange) as exc:
            raise WrongPin("the token does not accept a PIN of this length or with these "
                           "characters: check it and try again") from exc
        except PKCS11Error as exc:
            raise HsmError(f"token operation failed: {type(exc).__name__}") from exc
    raise HsmError("no certificate with a matching private key on the token")


def _tries_left(lib: Any, token_label: str) -> str:
    """What the token says of its PIN retry counter (PKCS#11 token flags, read afresh after
    the failed login): tokens do not say how many tries are left, only when few are."""
    try:
        flags = lib.get_token(token_label=token_label).flags
    except PKCS11Error:
        return ""
    if flags & TokenFlag.USER_PIN_LOCKED:
        return "; the token is now locked: ask the card's issuer to unblock it"
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        return " (1 try left before the token locks)"
    if flags & TokenFlag.USER_PIN_COUNT_LOW:
        return " (few tries left before the token locks)"
    return " (the token locks after a few wrong tries)"


def token_certificate(module_path: str, token_label: str, pin: str | None, *,
                      key_id: bytes | None = None) -> bytes:
    """The DER certificate `sign_with_token` would sign with (also checks the PIN). Without a
    PIN, no login: the first certificate (with CKA_ID `key_id`, if given), which is public on
    the token, without checking that its private key is there."""
    if pin is not None:
        return _with_pair(module_path, token_label, pin, key_id, lambda der, _key: der)
    state = library_for(module_path)
    with state.lock:
        try:
            with state.get().get_token(token_label=token_label).open() as session:
                query: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.CERTIFICATE}
                if key_id is not None:
                    query[Attribute.ID] = key_id
                for cert_object in session.get_objects(query):
                    return bytes(cert_object[Attribute.VALUE])
        except NoSuchToken as exc:
            raise HsmError(f"no token labelled {token_label!r}") from exc
        except PKCS11Error as exc:
            raise HsmError(f"token operation failed: {type(exc).__name__}") from exc
    raise HsmError("no certificate on the token")


def sign_with_token(
    module_path: str, token_label: str, pin: str, make_data: Callable[[str], bytes], *,
    key_id: bytes | None = None, algorithm: str | None = None,
) -> TokenSignature:
    """Sign `make_data(algorithm)` with the token's certificate key.

    `key_id` picks the certificate/key pair by CKA_ID when the token holds several; the
    algorithm defaults to the one that fits the key (ES256/384/512 by curve, RS256 for RSA)."""

    def sign(der: bytes, key: Any) -> TokenSignature:
        alg = algorithm or default_algorithm(x509.load_der_x509_certificate(der))
        if alg not in _RSA_MECHANISMS and alg not in _EC_ALGORITHMS.values():
            raise HsmError(f"unsupported algorithm {alg}")
        return TokenSignature(der, alg, _sign(key, alg, make_data(alg)))

    return _with_pair(module_path, token_label, pin, key_id, sign)

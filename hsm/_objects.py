"""Key objects on the token: lookup, generation, public-key export, signing (internal).

Every function takes an open, logged-in python-pkcs11 session and must be called with
the library lock held (see :mod:`hsm._library`).

* Generation (PKCS#11 v2.40 curr. mechanisms §2.3.5 CKM_EC_KEY_PAIR_GEN, §2.1.4
  CKM_RSA_PKCS_KEY_PAIR_GEN): persistent token objects (CKA_TOKEN), private key
  CKA_PRIVATE, CKA_SENSITIVE and CKA_EXTRACTABLE=false, usable for signing only (no
  CKA_DERIVE / CKA_DECRYPT / CKA_UNWRAP). python-pkcs11 does not set CKA_EXTRACTABLE and
  the default is token-specific, so it is set explicitly.
* Signing always names the mechanism; python-pkcs11's defaults (ECDSA_SHA512,
  SHA512_RSA_PKCS, SHA-1 PSS) are wrong for JOSE:
  - ES256 (RFC 7518 §3.4): SHA-256 on the host, then CKM_ECDSA over the digest, because
    SoftHSM 2.6 lacks CKM_ECDSA_SHA256. PKCS#11 returns r||s, which is exactly the JWS
    encoding.
  - PS256 (RFC 7518 §3.5): CKM_SHA256_RSA_PKCS_PSS with CK_RSA_PKCS_PSS_PARAMS
    (CKM_SHA256, CKG_MGF1_SHA256, sLen=32); if the token lacks it, host SHA-256 plus
    CKM_RSA_PKCS_PSS with the same parameters.
  - RS256 (RFC 7518 §3.3): CKM_SHA256_RSA_PKCS; fallback host SHA-256 DigestInfo plus
    CKM_RSA_PKCS (RFC 8017 §9.2).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.types import Object, Session, SignMixin
from pkcs11.util.ec import encode_named_curve_parameters

from hsm.errors import HsmError
from hsm.jwk import PublicKey

__all__ = [
    "KeyKind",
    "SignAlg",
    "find_one",
    "generate_keypair",
    "kind_of",
    "load_public_key",
    "sign_with",
]

KeyKind = Literal["EC_P256", "RSA_2048"]
SignAlg = Literal["ES256", "PS256", "RS256"]

KEY_KINDS: tuple[KeyKind, ...] = ("EC_P256", "RSA_2048")
SIGN_ALGS: tuple[SignAlg, ...] = ("ES256", "PS256", "RS256")
ALG_KIND: dict[SignAlg, KeyKind] = {"ES256": "EC_P256", "PS256": "RSA_2048", "RS256": "RSA_2048"}

_P256_PARAMS = encode_named_curve_parameters("secp256r1")
_PSS_PARAMS = (Mechanism.SHA256, MGF.SHA256, 32)
# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def find_one(session: Session, object_class: ObjectClass, label: str) -> Object | None:
    """The single object of ``object_class`` labelled ``label``, or None."""
    # list() drains the search so C_FindObjectsFinal runs before we return.
    found = list(session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}))
    if len(found) > 1:
        raise HsmError(f"{len(found)} {object_class.name} objects labelled {label!r} on the token")
    return found[0] if found else None


def generate_keypair(session: Session, label: str, kind: KeyKind) -> Object:
    """Generate a persistent sign-only key pair; returns the public key object."""
    key_id = secrets.token_bytes(16)  # CKA_ID ties the pair together for other tools
    public_template: dict[Attribute, object] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.VERIFY: True,
    }
    private_template: dict[Attribute, object] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.DERIVE: False,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
    }
    caps = MechanismFlag.SIGN | MechanismFlag.VERIFY
    if kind == "EC_P256":
        public_template[Attribute.EC_PARAMS] = _P256_PARAMS
        public, _private = session.generate_keypair(
            KeyType.EC,
            id=key_id,
            label=label,
            store=True,
            capabilities=caps,
            mechanism=Mechanism.EC_KEY_PAIR_GEN,
            public_template=public_template,
            private_template=private_template,
        )
    else:
        public, _private = session.generate_keypair(
            KeyType.RSA,
            2048,
            id=key_id,
            label=label,
            store=True,
            capabilities=caps,
            mechanism=Mechanism.RSA_PKCS_KEY_PAIR_GEN,
            public_template=public_template,
            private_template=private_template,
        )
    return public


def _unwrap_ec_point(raw: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING (v2.40 §2.3.3); some tokens return it bare."""
    if len(raw) == 65 and raw[0] == 0x04:
        return raw
    if len(raw) == 67 and raw[0] == 0x04 and raw[1] == 65:
        return raw[2:]
    raise HsmError("unexpected CKA_EC_POINT encoding (only uncompressed P-256 is supported)")


def load_public_key(public: Object) -> PublicKey:
    """Export the public half as a ``cryptography`` key object."""
    key_type = public[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        if bytes(public[Attribute.EC_PARAMS]) != _P256_PARAMS:
            raise HsmError("EC key is not on P-256")
        point = _unwrap_ec_point(bytes(public[Attribute.EC_POINT]))
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    if key_type == KeyType.RSA:
        n = int.from_bytes(public[Attribute.MODULUS], "big")
        e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise HsmError(f"unsupported key type {key_type!r}")


def kind_of(key: PublicKey) -> KeyKind | None:
    """The :data:`KeyKind` of a public key, None if it is neither P-256 nor RSA-2048."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC_P256" if isinstance(key.curve, ec.SECP256R1) else None
    return "RSA_2048" if key.key_size == 2048 else None


def sign_with(
    private: SignMixin, data: bytes, alg: SignAlg, mechanisms: frozenset[Mechanism]
) -> bytes:
    """Sign ``data`` for JWS algorithm ``alg``, choosing a mechanism the token offers."""
    if alg == "ES256":
        signature = private.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
        if len(signature) != 64:
            raise HsmError(f"CKM_ECDSA returned {len(signature)} bytes, expected 64 (r||s)")
        return signature
    if alg == "PS256":
        if Mechanism.SHA256_RSA_PKCS_PSS in mechanisms:
            return private.sign(
                data, mechanism=Mechanism.SHA256_RSA_PKCS_PSS, mechanism_param=_PSS_PARAMS
            )
        return private.sign(
            hashlib.sha256(data).digest(),
            mechanism=Mechanism.RSA_PKCS_PSS,
            mechanism_param=_PSS_PARAMS,
        )
    if Mechanism.SHA256_RSA_PKCS in mechanisms:
        return private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
    return private.sign(digest_info, mechanism=Mechanism.RSA_PKCS)

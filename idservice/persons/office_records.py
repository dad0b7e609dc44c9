"""The office's signature on an offline issuance (contract 8): who issued which PIN to which
birth, and when, signed with the office's (machine client's) key when the journal record is
written, so neither the office nor the service can later deny or alter it.

Signed: the RFC 8785 canonical JSON of `{"reservation_id", "pin", "issued_offline_at",
"birth_sha256"}`, where `birth_sha256` is the hex of the idempotency digest the service keeps
for the registration (`views.body_digest` of the normalised body), so the service checks the
signature with what it computes anyway. Form: a compact JWS with detached payload
(`header..signature`, RFC 7515 appendix F), `typ: pin-issuance+jws`, `kid` = client id;
ES256/384/512 for EC keys, PS256 for RSA (as the client's token assertions).
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from idservice.audit.entry import canonical_json
from idservice.persons.models import IssueRequest
from idservice.persons.views import body_digest
from idservice.persons.views import canonical_json as record_json

__all__ = ["ISSUANCE_TYP", "birth_digest", "sign_issuance", "signed_payload", "verify_issuance"]

ISSUANCE_TYP = "pin-issuance+jws"
_JWS = jwt.PyJWS()


def birth_digest(req: IssueRequest) -> bytes:
    """The registration's idempotency digest, as `issuance.prepare` computes it."""
    return body_digest(record_json(req.record()))


def signed_payload(reservation_id: str, pin: str, issued_offline_at: str,
                   digest: bytes) -> bytes:
    return canonical_json({"reservation_id": reservation_id, "pin": pin,
                           "issued_offline_at": issued_offline_at,
                           "birth_sha256": digest.hex()})


def _algorithm(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "PS256"
    raise TypeError("office keys are EC (P-256/384/521) or RSA")


def sign_issuance(private_key: Any, client_id: str, payload: bytes) -> str:
    return _JWS.encode(payload, private_key, algorithm=_algorithm(private_key),
                       headers={"typ": ISSUANCE_TYP, "kid": client_id},
                       is_payload_detached=True)


def verify_issuance(public_key: Any, signature: str, payload: bytes) -> bool:
    """Whether `signature` is the office key's signature of `payload` (never raises)."""
    try:
        header = jwt.get_unverified_header(signature)
        alg = _algorithm(public_key)
        if header.get("alg") != alg or header.get("typ") != ISSUANCE_TYP:
            return False
        _JWS.decode_complete(signature, public_key, algorithms=[alg],
                             detached_payload=payload)
    except (jwt.PyJWTError, TypeError, ValueError):
        return False
    return True

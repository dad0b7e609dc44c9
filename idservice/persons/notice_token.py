"""The signed payload of the printable PIN notice's QR code (issue 15, item 5), and its check.

The QR code holds one compact JWS (RFC 7515), nothing else: header
`{"alg": "ES256", "typ": "pin-notice+jwt", "kid": <kid of the service's token key>}`, payload
`{"iss": <service origin>, "iat": <Unix time>, "pin": "052326000001",
"name": "Nguyễn Thị Mai", "dob": "2026-01-05"}`, signed by the key that signs access tokens
(in the HSM). A clerk elsewhere checks it offline with the public key from
`/.well-known/jwks.json` (kept from an earlier download), with `verify_notice` or any JOSE
library: the signature, the `typ`, the key, the claims; then that the paper shows the same PIN,
name and date of birth. It proves what the registry said at `iat`, not that the record has not
been corrected since (a correction of sex or birth year cancels the PIN: ask the registry).

Pure: no I/O; signing is `auth/jws.sign_compact` on the HSM (`persons/notice.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt

__all__ = ["TYP", "NoticeInvalid", "notice_claims", "verify_notice"]

TYP = "pin-notice+jwt"
_CLAIMS = ("iss", "iat", "pin", "name", "dob")


class NoticeInvalid(ValueError):
    """The QR payload is not a notice this service signed (the message says which check)."""


def notice_claims(view: Mapping[str, Any], issuer: str, issued_at: int) -> dict[str, Any]:
    """The payload for a person record as `GET /v1/persons/{pin}` returns it."""
    child = view["child"]
    return {"iss": issuer, "iat": issued_at, "pin": view["pin"], "name": child["full_name"],
            "dob": child["date_of_birth"]}


def verify_notice(token: str, jwks: Mapping[str, Any], *,
                  issuer: str | None = None) -> dict[str, Any]:
    """The notice's claims if `token` is a `pin-notice+jwt` signed by a key of `jwks` (the
    document `/.well-known/jwks.json` serves); raises `NoticeInvalid` otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise NoticeInvalid(f"not a compact JWS: {exc}") from exc
    if header.get("typ") != TYP:
        raise NoticeInvalid(f"typ is {header.get('typ')!r}, not {TYP!r}")
    if header.get("alg") != "ES256":
        raise NoticeInvalid("alg must be ES256")
    keys = [k for k in jwks.get("keys", []) if isinstance(k, Mapping)
            and k.get("kid") == header.get("kid")]
    if not keys:
        raise NoticeInvalid(f"no key {header.get('kid')!r} in the JWKS")
    try:
        key = jwt.PyJWK(json.loads(json.dumps(dict(keys[0]))), algorithm="ES256").key
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["ES256"], issuer=issuer,
            options={"require": list(_CLAIMS), "verify_aud": False, "verify_iat": False})
    except jwt.PyJWTError as exc:
        raise NoticeInvalid(f"signature or claims refused: {exc}") from exc
    pin = claims.get("pin")
    if not (isinstance(pin, str) and len(pin) == 12 and pin.isascii() and pin.isdigit()):
        raise NoticeInvalid("pin is not 12 digits")
    return claims

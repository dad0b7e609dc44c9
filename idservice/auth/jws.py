"""Compact JWS (RFC 7515) signed by a key that lives in the HSM: access tokens (`at+jwt`,
`auth/tokens.py`), and the signed statements the service hands out for offline checking, such
as the PIN notice's QR code (`pin-notice+jwt`, `persons/notice_token.py`) and the offline
offices' PIN reservations (`pin-reservation+jwt`, `persons/reservations.py`).

PyJWT cannot sign with a PKCS#11 key, so the signing input is assembled here and handed to the
HSM; anyone verifies with PyJWT against the public key published in `/.well-known/jwks.json`
(by `kid`).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal, Protocol

__all__ = ["Signer", "b64url", "sign_compact", "sign_detached"]


class Signer(Protocol):
    async def sign(self, label: str, data: bytes, alg: Literal["ES256", "PS256", "RS256"]) -> bytes:
        ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


async def _sign(signer: Signer, key_label: str, kid: str, typ: str,
                payload: bytes) -> tuple[str, str, str]:
    header = {"alg": "ES256", "typ": typ, "kid": kid}
    encoded_header = b64url(json.dumps(header, separators=(",", ":")).encode())
    encoded_payload = b64url(payload)
    signing_input = f"{encoded_header}.{encoded_payload}"
    signature = await signer.sign(key_label, signing_input.encode(), "ES256")
    return encoded_header, encoded_payload, b64url(signature)


async def sign_compact(signer: Signer, key_label: str, kid: str, typ: str,
                       claims: dict[str, Any]) -> str:
    """`header.payload.signature` with `{"alg": "ES256", "typ": typ, "kid": kid}`; the payload
    is compact JSON, UTF-8 (names keep their diacritics)."""
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return ".".join(await _sign(signer, key_label, kid, typ, payload))


async def sign_detached(signer: Signer, key_label: str, kid: str, typ: str,
                        payload: bytes) -> str:
    """A JWS of `payload` (these exact bytes, e.g. an HTTP body) with the payload detached
    (RFC 7515 Appendix F): `header..signature`. The verifier puts base64url(body) back between
    the dots and verifies as any compact JWS (docs/notifications.md)."""
    header, _, signature = await _sign(signer, key_label, kid, typ, payload)
    return f"{header}..{signature}"

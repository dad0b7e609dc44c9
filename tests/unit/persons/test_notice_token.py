"""The PIN notice's QR payload (issue 15, item 5): a `pin-notice+jwt` compact JWS that a clerk
checks offline against the JWKS. Signed here by a software P-256 key through the same
`auth/jws.sign_compact` the service uses with its HSM key (the HSM path runs in the officer UI
test); the QR code is drawn by segno and read back by zxing-cpp, an independent decoder."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any, Literal

import pytest
import segno
import zxingcpp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from PIL import Image

from idservice.auth.jws import b64url, sign_compact
from idservice.persons.notice_token import TYP, NoticeInvalid, notice_claims, verify_notice

VIEW: dict[str, Any] = {"pin": "052326000123", "child": {
    "full_name": "Nguyễn Thị Minh Ánh", "date_of_birth": "2026-01-05"}}


class SoftSigner:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    async def sign(self, label: str, data: bytes,
                   alg: Literal["ES256", "PS256", "RS256"]) -> bytes:
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def jwk(self, kid: str) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                "x": b64url(numbers.x.to_bytes(32, "big")),
                "y": b64url(numbers.y.to_bytes(32, "big"))}


def _notice(signer: SoftSigner, kid: str = "k1", typ: str = TYP) -> str:
    claims = notice_claims(VIEW, "https://id.example.gov.vn", 1_780_000_000)
    return asyncio.run(sign_compact(signer, "label", kid, typ, claims))


def test_notice_verifies_with_the_jwks() -> None:
    signer = SoftSigner()
    claims = verify_notice(_notice(signer), {"keys": [signer.jwk("k1")]},
                           issuer="https://id.example.gov.vn")
    assert claims == {"iss": "https://id.example.gov.vn", "iat": 1_780_000_000,
                      "pin": "052326000123", "name": "Nguyễn Thị Minh Ánh", "dob": "2026-01-05"}


def test_qr_code_carries_the_notice_and_decodes() -> None:
    signer = SoftSigner()
    token = _notice(signer)
    buffer = io.BytesIO()
    segno.make(token, error="m", micro=False).save(buffer, kind="png", scale=4, border=4)
    buffer.seek(0)
    # Only QR codes are looked for: with every format on, zxing once read a stray UPC-E in the
    # modules of one random signature's code (CI, 2026-12-07), which says nothing about ours.
    decoded = [r.text for r in zxingcpp.read_barcodes(
        Image.open(buffer), formats=zxingcpp.BarcodeFormat.QRCode)]
    assert decoded == [token]
    assert verify_notice(decoded[0], {"keys": [signer.jwk("k1")]})["pin"] == "052326000123"


def test_notice_by_another_key_is_refused() -> None:
    signer, other = SoftSigner(), SoftSigner()
    with pytest.raises(NoticeInvalid, match="signature"):
        verify_notice(_notice(signer), {"keys": [other.jwk("k1")]})
    with pytest.raises(NoticeInvalid, match="no key"):
        verify_notice(_notice(signer, kid="k9"), {"keys": [signer.jwk("k1")]})


def test_access_token_is_not_a_notice() -> None:
    signer = SoftSigner()
    with pytest.raises(NoticeInvalid, match="typ"):
        verify_notice(_notice(signer, typ="at+jwt"), {"keys": [signer.jwk("k1")]})


def test_edited_pin_is_refused() -> None:
    signer = SoftSigner()
    header, payload, signature = _notice(signer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["pin"] = "052326999999"
    forged = b64url(json.dumps(claims, separators=(",", ":")).encode())
    with pytest.raises(NoticeInvalid, match="signature"):
        verify_notice(f"{header}.{forged}.{signature}", {"keys": [signer.jwk("k1")]})


def test_wrong_issuer_is_refused() -> None:
    signer = SoftSigner()
    with pytest.raises(NoticeInvalid):
        verify_notice(_notice(signer), {"keys": [signer.jwk("k1")]},
                      issuer="https://other.example")

"""Check 2: the token is a web-eid:1.0 object with exactly the expected, well-formed fields,
at most 10,000 characters as compact JSON (Web eID's `AuthTokenValidator` TOKEN_MAX_LENGTH:
"Auth token is too long" is a parse error there too; the 64 KiB body cap of the endpoint,
413, is far above it)."""

from __future__ import annotations

import base64
import binascii
import json

from idservice.auth.checks.base import LoginAttempt, ParsedToken
from idservice.auth.login_errors import TokenParse
from idservice.auth.webeid import ALGORITHMS, TOKEN_FORMAT

__all__ = ["TokenFormatCheck"]

_REQUIRED = ("format", "unverifiedCertificate", "algorithm", "signature")
_KNOWN = frozenset((*_REQUIRED, "appVersion"))
_MAX_CERT_B64 = 16 * 1024
_MAX_SIGNATURE_B64 = 2048
MAX_TOKEN_CHARS = 10_000  # Web eID's TOKEN_MAX_LENGTH


def _b64(value: str, field: str, limit: int) -> bytes:
    if len(value) > limit:
        raise TokenParse(f"{field} is too long")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenParse(f"{field} is not base64") from exc
    if not decoded:
        raise TokenParse(f"{field} is empty")
    return decoded


class TokenFormatCheck:
    name = "token_format"

    async def run(self, attempt: LoginAttempt) -> None:
        raw = attempt.raw_token
        try:
            size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False))
        except (TypeError, ValueError) as exc:
            raise TokenParse("auth_token is not a JSON object") from exc
        if size > MAX_TOKEN_CHARS:
            raise TokenParse(f"auth_token is longer than {MAX_TOKEN_CHARS} characters")
        unknown = sorted(set(raw) - _KNOWN)
        if unknown:
            raise TokenParse(f"unknown field auth_token.{unknown[0]}")
        for field in _REQUIRED:
            if not isinstance(raw.get(field), str):
                raise TokenParse(f"auth_token.{field} must be a string")
        if raw["format"] != TOKEN_FORMAT:
            raise TokenParse(f"auth_token.format must be {TOKEN_FORMAT}")
        if raw["algorithm"] not in ALGORITHMS:
            raise TokenParse(f"auth_token.algorithm must be one of {sorted(ALGORITHMS)}")
        app_version = raw.get("appVersion")
        if app_version is not None and not isinstance(app_version, str):
            raise TokenParse("auth_token.appVersion must be a string")
        attempt.token = ParsedToken(
            algorithm=raw["algorithm"],
            certificate_der=_b64(raw["unverifiedCertificate"], "unverifiedCertificate",
                                 _MAX_CERT_B64),
            signature=_b64(raw["signature"], "signature", _MAX_SIGNATURE_B64),
            app_version=app_version,
        )

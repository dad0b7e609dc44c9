"""Access tokens: JWTs signed by a key that never leaves the HSM (contract section 3.3).

PyJWT cannot sign with a PKCS#11 key, so the JWS (RFC 7515 compact form) is assembled by
`auth/jws.py` and the signing input handed to the HSM; verification is PyJWT's, against the
public keys read from the HSM at start-up (so verification keeps working while the HSM is
unreachable). Verified tokens are cached by their SHA-256 until expiry: an ES256 verify per
request would cost a core.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from idservice.auth.jws import Signer, sign_compact
from idservice.auth.principal import Principal
from idservice.clock import Clock
from idservice.errors import Unauthenticated

__all__ = ["AccessTokenIssuer", "AccessTokenVerifier", "IssuedToken", "Signer", "TokenKey"]


@dataclass(frozen=True)
class TokenKey:
    label: str
    kid: str
    public_key: EllipticCurvePublicKey
    jwk: dict[str, str]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: dict[str, Any]
    expires_in: int


class AccessTokenIssuer:
    def __init__(
        self, signer: Signer, key: TokenKey, *, issuer: str, audience: str, ttl: int,
        clock: Clock,
    ) -> None:
        self._signer = signer
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self._clock = clock

    async def issue(
        self,
        *,
        kind: Literal["client", "operator"],
        subject: str,
        roles: Iterable[str],
        jurisdiction: str,
        extra: dict[str, Any] | None = None,
        not_after: datetime | None = None,
    ) -> IssuedToken:
        """`not_after`: no token outlives this (a client certificate's notAfter)."""
        now = int(self._clock.now().timestamp())
        exp = now + self._ttl
        if not_after is not None:
            exp = min(exp, int(not_after.timestamp()))
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "kind": kind,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": secrets.token_urlsafe(18),
            "roles": sorted(roles),
            "jur": jurisdiction,
            **(extra or {}),
        }
        token = await sign_compact(self._signer, self._key.label, self._key.kid, "at+jwt",
                                   claims)
        return IssuedToken(token, claims, exp - now)


class AccessTokenVerifier:
    """Signature and claim checks; whether the token was revoked is `auth/token_revocation.py`'s."""

    def __init__(
        self, keys: Iterable[TokenKey], *, issuer: str, audience: str, clock: Clock,
        cache_size: int = 50_000, leeway: int = 30,
    ) -> None:
        self._keys = {k.kid: k.public_key for k in keys}
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._leeway = leeway
        self._cache: OrderedDict[bytes, Principal] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str) -> Principal:
        if len(token) > 8192:
            raise Unauthenticated("access token too long")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self._clock.now().timestamp()
        cached = self._cache.get(digest)
        if cached is not None:
            if cached.expires_at + self._leeway > now:
                return cached
            del self._cache[digest]
        principal = self._verify_uncached(token, now)
        self._cache[digest] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def _verify_uncached(self, token: str, now: float) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(str(header.get("kid")))
            if key is None or header.get("alg") != "ES256":
                raise Unauthenticated("access token signed by an unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"],
                         "verify_iat": False},
            )
            # PyJWT checks exp against the wall clock; check it against ours as well.
            if int(claims["exp"]) + self._leeway <= now:
                raise Unauthenticated("access token expired")
            kind = claims.get("kind")
            roles = claims.get("roles")
            jur = claims.get("jur")
            if kind not in ("client", "operator") or not isinstance(roles, list) \
                    or not isinstance(jur, str):
                raise Unauthenticated("access token lacks required claims")
            cnf = claims.get("cnf")
            thumb = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
            return Principal(
                kind=kind, id=str(claims["sub"]), roles=frozenset(map(str, roles)),
                jurisdiction=jur, token_id=str(claims["jti"]), expires_at=int(claims["exp"]),
                cert_thumbprint=thumb if isinstance(thumb, str) else None,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("access token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid access token") from exc

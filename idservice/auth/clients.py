"""Machine clients: OAuth 2.0 client credentials with `private_key_jwt` (RFC 7523, RFC 6749 4.4).

The client proves possession of the key registered for it by signing a short-lived assertion
(`iss = sub = client_id`, `aud` = our token URL, unique `jti`, `exp` at most 5 minutes ahead).
Every `jti` is remembered until its assertion expires, so an assertion works once.
Failures answer RFC 6749 section 5.2 error bodies, not problem details (contract 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from idservice.clock import Clock
from idservice.db.types import Conn
from idservice.queries import auth as q

__all__ = [
    "ASSERTION_TYPE",
    "ClientAuthError",
    "VerifiedClient",
    "claimed_client_id",
    "verify_client_assertion",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SKEW = 30
_CLAIM_ERRORS = (jwt.InvalidAudienceError, jwt.InvalidIssuerError, jwt.MissingRequiredClaimError,
                 jwt.ImmatureSignatureError, jwt.ExpiredSignatureError, jwt.InvalidIssuedAtError)


class ClientAuthError(Exception):
    """An RFC 6749 error: `error` is the registered code, the message its description.
    `verified`: raised after the assertion's signature verified (the client proved its key),
    so the refusal is the client's own doing, not anyone's who typed its id."""

    def __init__(self, error: str, description: str, status: int = 401, *,
                 verified: bool = False) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.verified = verified

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class VerifiedClient:
    id: str
    roles: list[str]
    jurisdiction: str
    cert_pem: str | None = None  # None: registered before certificates were kept (0018)
    cert_not_after: datetime | None = None


def claimed_client_id(assertion: str) -> str | None:
    """The unverified `iss` of an assertion: names the actor of a failed login in the audit log."""
    try:
        issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return issuer[:64] if isinstance(issuer, str) and issuer else None


def _algorithms_for(key: Any) -> list[str]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {256: ["ES256"], 384: ["ES384"], 521: ["ES512"]}.get(key.curve.key_size, [])
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    return []


async def verify_client_assertion(
    conn: Conn,
    *,
    assertion: str,
    client_id: str | None,
    audience: str,
    clock: Clock,
    max_lifetime: int = 300,
) -> VerifiedClient:
    """Verify the assertion and burn its `jti` (in the caller's transaction)."""
    if len(assertion) > 8192:
        raise ClientAuthError("invalid_client", "client assertion too long")
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise ClientAuthError("invalid_client", "client assertion is not a JWT") from exc
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or (client_id is not None and client_id != issuer):
        raise ClientAuthError("invalid_client", "iss must be the client_id")
    row = await conn.fetchrow(q.GET_CLIENT, issuer)
    if row is None or not row["enabled"]:
        raise ClientAuthError("invalid_client", "unknown or disabled client")
    if row["cert_not_after"] is not None and row["cert_not_after"] <= clock.now():
        raise ClientAuthError("invalid_client", "the client's certificate has expired")
    key = load_pem_public_key(row["public_key_pem"].encode())
    algorithms = _algorithms_for(key)
    if header.get("alg") not in algorithms:
        raise ClientAuthError("invalid_client", "assertion algorithm does not fit the client key")
    now = clock.now().timestamp()
    try:
        claims = jwt.decode(
            assertion, key, algorithms=algorithms, audience=audience, issuer=issuer,  # type: ignore[arg-type]
            leeway=_SKEW, options={"require": ["iss", "sub", "aud", "exp", "jti"],
                                   "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        # PyJWT checks the signature before the claims: a claim error means it verified.
        raise ClientAuthError("invalid_client", f"client assertion rejected: {exc}",
                              verified=isinstance(exc, _CLAIM_ERRORS)) from exc

    def refused(description: str) -> ClientAuthError:
        return ClientAuthError("invalid_client", description, verified=True)

    if claims.get("sub") != issuer:
        raise refused("sub must be the client_id")
    exp = claims["exp"]
    if not isinstance(exp, int | float):
        raise refused("exp must be a number")
    if exp + _SKEW <= now:
        raise refused("client assertion expired")
    if exp > now + max_lifetime + _SKEW:
        raise refused(f"exp must be at most {max_lifetime} s ahead")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + _SKEW:
        raise refused("client assertion not yet valid")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 1 <= len(jti) <= 200:
        raise refused("jti must be a string of 1-200 characters")
    burned = await conn.fetchval(q.REMEMBER_JTI, issuer, jti, datetime.fromtimestamp(exp, UTC))
    if burned is None:
        raise refused("client assertion replayed (jti already used)")
    return VerifiedClient(issuer, list(row["roles"]), row["jurisdiction"], row["cert_pem"],
                          row["cert_not_after"])

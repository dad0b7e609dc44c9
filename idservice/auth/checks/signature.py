"""Check 9: the token's signature over `H(origin) || H(nonce)` verifies with the certificate's
key, for the algorithm the token names (RFC 7518 section 3: ES* raw r||s, PS* with MGF1 and
salt = hash length, RS* PKCS#1 v1.5). The key type and curve must fit the algorithm."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from idservice.auth.checks.base import LoginAttempt
from idservice.auth.login_errors import SignatureInvalid
from idservice.auth.webeid import signed_data

__all__ = ["SignatureCheck"]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


class SignatureCheck:
    name = "signature"

    def __init__(self, origin: str) -> None:
        self._origin = origin

    async def run(self, attempt: LoginAttempt) -> None:
        token = attempt.parsed
        alg = token.algorithm
        data = signed_data(self._origin, attempt.nonce, alg)
        hash_alg = _HASHES[alg[2:]]()
        key = attempt.cert.public_key()
        try:
            if alg.startswith("ES"):
                if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVES[alg]:
                    raise SignatureInvalid(f"{alg} does not fit the certificate's key")
                size = (key.curve.key_size + 7) // 8
                if len(token.signature) != 2 * size:
                    raise SignatureInvalid(f"{alg} signature must be {2 * size} bytes (r||s)")
                der = encode_dss_signature(int.from_bytes(token.signature[:size], "big"),
                                           int.from_bytes(token.signature[size:], "big"))
                key.verify(der, data, ec.ECDSA(hash_alg))
                return
            if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
                raise SignatureInvalid(f"{alg} needs an RSA key of at least 2048 bits")
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(hash_alg), hash_alg.digest_size)
                if alg.startswith("PS") else padding.PKCS1v15())
            key.verify(token.signature, data, pad, hash_alg)
        except InvalidSignature as exc:
            raise SignatureInvalid("signature does not verify for this origin and nonce") from exc

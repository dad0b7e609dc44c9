"""Why an officer login was refused: one error type per contract login code (contract 1, 3.1).

Each check of `auth/checks/` raises exactly one of these; the message is fixed per type (plus a
short, non-secret detail), so a refusal always names the check that failed.
"""

from __future__ import annotations

from typing import ClassVar

from idservice.errors import ProblemError

__all__ = [
    "CertExpired",
    "CertNotYetValid",
    "CertPolicy",
    "CertRevoked",
    "CertUntrusted",
    "CertWrongPurpose",
    "LoginFailed",
    "NonceExpired",
    "NonceNotFound",
    "OperatorDisabled",
    "OperatorUnknown",
    "RevocationUnavailable",
    "SignatureInvalid",
    "TokenParse",
]


class LoginFailed(ProblemError):
    status: ClassVar[int] = 401
    code: ClassVar[str] = "login_failed"
    title: ClassVar[str] = "Login refused"


class NonceNotFound(LoginFailed):
    code, title = "nonce_not_found", "Unknown or already used challenge nonce"


class NonceExpired(LoginFailed):
    code, title = "nonce_expired", "Challenge nonce expired"


class TokenParse(LoginFailed):
    code, title = "token_parse", "Malformed authentication token"


class SignatureInvalid(LoginFailed):
    code, title = "signature_invalid", "Signature does not verify"


class CertExpired(LoginFailed):
    code, title = "cert_expired", "Certificate expired"


class CertNotYetValid(LoginFailed):
    code, title = "cert_not_yet_valid", "Certificate not yet valid"


class CertUntrusted(LoginFailed):
    code, title = "cert_untrusted", "Certificate not issued by a trusted CA"


class CertRevoked(LoginFailed):
    code, title = "cert_revoked", "Certificate revoked"


class CertWrongPurpose(LoginFailed):
    code, title = "cert_wrong_purpose", "Certificate not meant for authentication"


class CertPolicy(LoginFailed):
    code, title = "cert_policy", "Certificate lacks a required policy"


class RevocationUnavailable(LoginFailed):
    code, title = "revocation_unavailable", "No fresh revocation data for the certificate"


class OperatorUnknown(LoginFailed):
    code, title = "operator_unknown", "No operator registered for this certificate"


class OperatorDisabled(LoginFailed):
    code, title = "operator_disabled", "Operator disabled"

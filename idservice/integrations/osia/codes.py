"""OSIA `Error.code` values: one integer per failure, as data (docs/integrations.md lists them).

OSIA's `Error {code, message}` has no code list of its own; its only example is 1023 "Unknown
attribute name", which we keep. Our problems (contract 1) map to these by their `code`, and a
field error by the attribute at fault (`uin_attributes.UIN_ATTRIBUTES`). Under `/osia` a
status the spec does not document becomes 400 (a refusal) or 500 (a failure), with the code
saying which.
"""

from __future__ import annotations

from enum import IntEnum

from idservice.errors import ProblemError

__all__ = ["BODYLESS", "PROBLEM_CODES", "OsiaCode", "OsiaError", "TransactionConflict",
           "osia_status"]


class OsiaCode(IntEnum):
    MALFORMED_REQUEST = 1000  # body not JSON, not the documented shape
    UNSUPPORTED_MEDIA_TYPE = 1001  # Content-Type is not application/json
    PAYLOAD_TOO_LARGE = 1002  # body over the single-request limit (1 MiB)
    INVALID_PARAMETER = 1003  # a query or path parameter breaks its rule
    PURPOSE_REQUIRED = 1004  # officer read without `purpose`
    METHOD_NOT_ALLOWED = 1005
    INVALID_TRANSACTION_ID = 1006  # transactionId missing, empty, over 200 chars, control chars
    UNKNOWN_ATTRIBUTE = 1023  # OSIA's own example code
    OPERATOR_NOT_SUPPORTED = 1024  # verify: an operator the attribute cannot take
    INVALID_ATTRIBUTE_VALUE = 1025  # match/verify: a value the attribute can never have
    NO_VALUE = 1026  # read: the record has no value for this attribute (inside the 200)
    TRANSACTION_CONFLICT = 1100  # transactionId used before with other attributes
    REGISTRATION_CONFLICT = 1101  # registration key used before with other content
    PIN_SPACE_EXHAUSTED = 1102
    POSSIBLE_DUPLICATE = 1103  # contract 9 (duplicate check at issuance)
    UNKNOWN_TOPIC = 1200  # notification: no topic of this name (or id)
    INVALID_ADDRESS = 1201  # not http(s), or a target deliveries may not reach
    INVALID_POLICY = 1202  # policy is not "countdown,max" within the bounds
    PROTOCOL_NOT_SUPPORTED = 1203  # email
    SUBSCRIPTION_LIMIT = 1204  # the client has the most subscriptions allowed
    INVALID_CONFIRMATION_TOKEN = 1205  # unknown, used or another client's token
    TOPIC_RESERVED = 1206  # topics and publishing belong to the service
    INTERNAL = 5000
    UNAVAILABLE = 5003  # database or HSM down, nothing was done: retry later


# Our problem codes (contract 1) -> OSIA codes. A problem naming a UIN attribute's field takes
# that attribute's code instead (see `uin_attributes.attribute_for_field`).
PROBLEM_CODES: dict[str, OsiaCode] = {
    "malformed_request": OsiaCode.MALFORMED_REQUEST,
    "invalid_field": OsiaCode.INVALID_PARAMETER,
    "unsupported_media_type": OsiaCode.UNSUPPORTED_MEDIA_TYPE,
    "payload_too_large": OsiaCode.PAYLOAD_TOO_LARGE,
    "purpose_required": OsiaCode.PURPOSE_REQUIRED,
    "method_not_allowed": OsiaCode.METHOD_NOT_ALLOWED,
    "registration_conflict": OsiaCode.REGISTRATION_CONFLICT,
    "pin_space_exhausted": OsiaCode.PIN_SPACE_EXHAUSTED,
    "possible_duplicate": OsiaCode.POSSIBLE_DUPLICATE,
    "osia_transaction_conflict": OsiaCode.TRANSACTION_CONFLICT,
    "unknown_topic": OsiaCode.UNKNOWN_TOPIC,
    "invalid_address": OsiaCode.INVALID_ADDRESS,
    "invalid_policy": OsiaCode.INVALID_POLICY,
    "protocol_not_supported": OsiaCode.PROTOCOL_NOT_SUPPORTED,
    "subscription_limit": OsiaCode.SUBSCRIPTION_LIMIT,
    "invalid_confirmation_token": OsiaCode.INVALID_CONFIRMATION_TOKEN,
    "topic_reserved": OsiaCode.TOPIC_RESERVED,
    "unavailable": OsiaCode.UNAVAILABLE,
    "internal": OsiaCode.INTERNAL,
}

# Statuses the OSIA specs document without a body: sent as they are, empty.
BODYLESS = frozenset({401, 403, 404})


def osia_status(status: int) -> int:
    """401/403/404 (and 405 for a method no operation has) as they are; any other refusal is
    400 and any failure 500, the only error statuses with a body in uin.yaml/dataaccess.yaml."""
    if status in BODYLESS or status == 405:
        return status
    return 500 if status >= 500 else 400


class OsiaError(ProblemError):
    """A refusal only the OSIA interfaces have, with its OSIA code (400 under /osia)."""

    status, code, title = 400, "osia_refused", "Refused"

    def __init__(self, osia_code: OsiaCode | int, detail: str, *,
                 field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.osia_code = int(osia_code)


class TransactionConflict(OsiaError):
    """The same transactionId with other attributes (contract 10)."""

    code = "osia_transaction_conflict"

    def __init__(self, detail: str) -> None:
        super().__init__(OsiaCode.TRANSACTION_CONFLICT, detail, field="transactionId")

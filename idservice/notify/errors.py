"""Refusals of the notification interface (contract 9): one error type per rule, each with its
stable code; under `/osia` each becomes a 400 with its OSIA integer code
(`integrations/osia/codes.PROBLEM_CODES`, listed in docs/notifications.md)."""

from __future__ import annotations

from idservice.errors import ProblemError

__all__ = ["InvalidAddress", "InvalidConfirmationToken", "InvalidPolicy",
           "ProtocolNotSupported", "SubscriptionLimit", "TopicReserved", "UnknownTopic"]


class UnknownTopic(ProblemError):
    status, code, title = 400, "unknown_topic", "No such topic"


class InvalidAddress(ProblemError):
    """Not an http(s) URL, or a target the delivery may not reach (SSRF guard)."""

    status, code, title = 400, "invalid_address", "Address not allowed"


class InvalidPolicy(ProblemError):
    status, code, title = 400, "invalid_policy", "Invalid delivery policy"


class ProtocolNotSupported(ProblemError):
    """The spec's `email` protocol: deliveries are HTTP only."""

    status, code, title = 400, "protocol_not_supported", "Protocol not supported"


class SubscriptionLimit(ProblemError):
    """More subscriptions for one client than `IDSERVICE_NOTIFY_MAX_SUBSCRIPTIONS`."""

    status, code, title = 400, "subscription_limit", "Too many subscriptions"


class InvalidConfirmationToken(ProblemError):
    status, code, title = 400, "invalid_confirmation_token", "Invalid confirmation token"


class TopicReserved(ProblemError):
    """Topics are the service's event types and only the service publishes (contract 9)."""

    status, code, title = 400, "topic_reserved", "Topics are managed by the service"

"""Prometheus metrics of the service (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["AUDIT_SEQUENCED", "ISSUANCES", "REQUEST_LATENCY"]

REQUEST_LATENCY = Histogram(
    "idservice_request_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
ISSUANCES = Counter("idservice_pins_issued_total", "PINs issued", ["province"])
AUDIT_SEQUENCED = Counter("idservice_audit_sequenced_total", "Audit events given an index")

"""Conformance to the OSIA Notification specification itself (`tests/fuzz/osia/
notification.yaml` 1.2.0, unmodified), base URL `/osia` of the session server.

schemathesis generates requests from the spec for each operation, sent with a real token of
the role that may call it (contract 9): a `subscriber` client for the Subscriber operations
and the topic list, an `admin` client for the Publisher operations. No 5xx, and every answer a
documented status with its documented media type and body (`test_schemathesis.py`'s bounded,
derandomized runner). The spec documents no 401/403: refusals of other roles (401/403 with an
empty body, contract 9) are tested in tests/integration/test_notifications.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode

from tests.fuzz.test_schemathesis import CHECKS, EXAMPLES, REQUEST_TIMEOUT, _operations
from tests.support.server import ServerThread

SPEC = Path(__file__).resolve().parent / "osia" / "notification.yaml"


@schemathesis.serializer("plain/text")
def _plain_text(ctx: Any, value: Any) -> bytes:
    """The spec's publish body is `plain/text` (sic), which schemathesis has no serializer for:
    sent as UTF-8 text (or any other value as its str)."""
    return value.encode() if isinstance(value, str) else str(value).encode()

# Who may call each operation (contract 9: only the service publishes; topics need admin).
CALLERS = {"subscribe": "subscriber", "listSubscription": "subscriber",
           "unsubscribe": "subscriber", "confirm": "subscriber", "listTopics": "subscriber",
           "createTopic": "admin", "deleteTopic": "admin", "publish": "admin"}


@pytest.fixture(scope="module")
def spec() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_path(SPEC)


@pytest.fixture(scope="module")
def tokens(client_token: Callable[..., str]) -> dict[str, str]:
    return {"subscriber": client_token("052", ("subscriber",)),
            "admin": client_token("*", ("admin",))}


@pytest.fixture(scope="module")
def session(server: ServerThread, tokens: dict[str, str]) -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
        # what the fuzzing subscribed is removed: no subscription outlives the module
        auth = {"Authorization": f"Bearer {tokens['subscriber']}"}
        base = f"{server.base_url}/osia/v1/subscriptions"
        for sub in s.get(base, headers=auth, timeout=30).json():
            s.delete(f"{base}/{sub['uuid']}", headers=auth, timeout=30)


def _fuzz(operation: Any, mode: GenerationMode, token: str, session: requests.Session,
          base_url: str) -> str | None:
    """`test_schemathesis._fuzz`, except that the caller's token replaces whatever
    `Authorization` schemathesis generated from the spec's BearerAuth scheme: this run is about
    what a caller with the role gets (the spec documents no 401 to check a missing one
    against)."""

    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        case.headers = {**{k: v for k, v in (case.headers or {}).items()
                           if k.lower() != "authorization"},
                        "Authorization": f"Bearer {token}"}
        response = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        return None  # negative mode, nothing to negate
    except Exception as exc:
        return f"{operation.label} [{mode.value}]: {exc}"
    return None


def test_every_operation_of_the_spec_has_its_caller(spec: schemathesis.BaseSchema) -> None:
    assert {op.definition.raw["operationId"] for op in _operations(spec)} == set(CALLERS)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("role", ["subscriber", "admin"])
def test_spec_operations_conform_and_never_fail(
    role: str, spec: schemathesis.BaseSchema, tokens: dict[str, str],
    session: requests.Session, server: ServerThread,
) -> None:
    started = time.monotonic()
    failures = [failure for operation in _operations(spec)
                if CALLERS[operation.definition.raw["operationId"]] == role
                for mode in EXAMPLES
                if (failure := _fuzz(operation, mode, tokens[role], session,
                                     f"{server.base_url}/osia"))]
    assert not failures, f"{len(failures)} failing operation(s) of notification.yaml as " \
        f"{role}:\n\n" + "\n\n".join(failures)
    assert time.monotonic() - started < 120

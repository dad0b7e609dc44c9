"""The office signs the digest the service computes for a birth (contract 8): the two must be
the same function of the body, or every offline record is refused as badly signed."""

from __future__ import annotations

import json

from idservice.persons.models import IssueRequest
from idservice.persons.office_records import birth_digest
from idservice.persons.views import body_digest, canonical_json
from tests.support.bodies import issue_body


def _request(body: dict[str, object]) -> IssueRequest:
    return IssueRequest.model_validate_json(json.dumps(body))


def test_birth_digest_is_the_services_idempotency_digest_of_the_stored_record() -> None:
    req = _request(issue_body("052"))
    assert birth_digest(req) == body_digest(canonical_json(req.record()))


def test_birth_digest_ignores_a_duplicate_override_as_the_stored_record_does() -> None:
    body = issue_body("052")
    plain = _request(body)
    overridden = _request({**body, "duplicate_override": {"reason": "sinh đôi"}})
    assert birth_digest(overridden) == birth_digest(plain)

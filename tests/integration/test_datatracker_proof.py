"""Usage proofs (contract 11, `/datatracker/v2/proof`): they verify with the standalone
verifier against the key and checkpoint auditors see (`/v1/audit/key`,
`/v1/audit/checkpoint`, `/v1/audit/proofs/inclusion`), fail when anything is tampered with,
follow the caller rules, and `idservice audit prove` (a real subprocess) checks them."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from idservice.audit.checkpoints import NoteVerifier
from idservice.datatracker.verifier import ProofError, verify_proof
from tests.support.datatracker import (
    TrackerEnv,
    adult,
    read,
    usage_headers,
    usages,
    years_before,
)

PROOF = "/datatracker/v2/proof"


@pytest.fixture(scope="module")
def auditor(tracker: TrackerEnv) -> Iterator[httpx.Client]:
    with tracker.operator(("auditor",), "*") as client:
        yield client


@pytest.fixture(scope="module")
def log_key(tracker: TrackerEnv) -> tuple[str, bytes]:
    response = httpx.get(f"{tracker.base_url}/v1/audit/key")  # public, as a citizen's app
    assert response.status_code == 200
    return response.headers["Idservice-Note-Key-Name"], response.content


@pytest.fixture(scope="module")
def usage(tracker: TrackerEnv, tracker_officer: httpx.Client,
          portal: httpx.Client) -> tuple[str, int]:
    """A citizen and the audit index of an officer's read of their record."""
    citizen = adult(tracker)
    assert read(tracker_officer, citizen, "Kiểm tra hồ sơ đất đai").status_code == 200
    tracker.flush()
    index = usages(portal, citizen)["usages"][0]["auditIndex"]
    return citizen, index


def get_proof(portal: httpx.Client, citizen: str, index: int, **params: Any) -> httpx.Response:
    return portal.get(PROOF, params={"auditIndex": index, **params},
                      headers=usage_headers(citizen))


def test_proof_verifies_against_the_auditors_checkpoint_and_key(
        tracker: TrackerEnv, portal: httpx.Client, auditor: httpx.Client,
        usage: tuple[str, int], log_key: tuple[str, bytes]) -> None:
    citizen, index = usage
    response = get_proof(portal, citizen, index)
    assert response.status_code == 200, response.text
    proof = response.json()
    name, pem = log_key
    checked = verify_proof(proof, pem, key_name=name, pin=citizen)
    assert checked.leaf_index == index and checked.event["purpose"] == "Kiểm tra hồ sơ đất đai"

    # The same tree as the auditors': the path equals theirs for that size, and the event is
    # in their latest signed checkpoint too (verified with their checkpoint and path).
    theirs = auditor.get("/v1/audit/proofs/inclusion",
                         params={"index": index, "tree_size": proof["tree_size"]}).json()
    assert theirs["hashes"] == proof["hashes"]
    note = auditor.get("/v1/audit/checkpoint").text
    latest = NoteVerifier.from_pem(name, pem).verify(note)
    assert latest.size >= proof["tree_size"]
    at_latest = auditor.get("/v1/audit/proofs/inclusion",
                            params={"index": index, "tree_size": latest.size}).json()
    again = verify_proof({**proof, "tree_size": latest.size, "checkpoint": note,
                          "hashes": at_latest["hashes"]}, pem, key_name=name)
    assert again.root == latest.root


def _tamper(proof: dict[str, Any], how: str) -> dict[str, Any]:
    bad = copy.deepcopy(proof)
    if how == "event purpose":
        bad["event"]["purpose"] = "Một lý do khác"
    elif how == "event details":
        bad["event"]["details"]["extra"] = 1
    elif how == "leaf index":
        bad["leaf_index"] += 1
        bad["event"]["index"] += 1
    elif how == "path hash":
        first = bytearray(base64.b64decode(bad["hashes"][0]))
        first[0] ^= 1
        bad["hashes"][0] = base64.b64encode(bytes(first)).decode()
    elif how == "path truncated":
        bad["hashes"] = bad["hashes"][:-1]
    elif how == "path extended":
        bad["hashes"].append(bad["hashes"][-1])
    elif how == "checkpoint root":
        lines = bad["checkpoint"].split("\n")
        lines[2] = base64.b64encode(bytes(32)).decode()
        bad["checkpoint"] = "\n".join(lines)
    elif how == "checkpoint size":
        lines = bad["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        bad["checkpoint"] = "\n".join(lines)
        bad["tree_size"] += 1
    elif how == "tree size":
        bad["tree_size"] -= 1
    return bad


@pytest.mark.parametrize("how", ["event purpose", "event details", "leaf index", "path hash",
                                 "path truncated", "path extended", "checkpoint root",
                                 "checkpoint size", "tree size"])
def test_tampered_proof_fails(portal: httpx.Client, usage: tuple[str, int],
                              log_key: tuple[str, bytes], how: str) -> None:
    citizen, index = usage
    proof = get_proof(portal, citizen, index).json()
    name, pem = log_key
    verify_proof(proof, pem, key_name=name)  # the untampered one passes
    with pytest.raises(ProofError):
        verify_proof(_tamper(proof, how), pem, key_name=name)


def test_proof_fails_with_another_key_or_for_another_pin(
        portal: httpx.Client, usage: tuple[str, int], log_key: tuple[str, bytes]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    citizen, index = usage
    proof = get_proof(portal, citizen, index).json()
    name, _ = log_key
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ProofError, match="not signed by key"):
        verify_proof(proof, other, key_name=name)
    with pytest.raises(ProofError, match="not about this PIN"):
        verify_proof(proof, log_key[1], key_name=name, pin="001299999999")


def test_proof_of_someone_elses_usage_is_forbidden(tracker: TrackerEnv, portal: httpx.Client,
                                                   usage: tuple[str, int]) -> None:
    _, index = usage
    stranger = adult(tracker)
    response = get_proof(portal, stranger, index)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    named = get_proof(portal, stranger, index, userCode=stranger)
    assert named.status_code == 404 and named.json()["code"] == "not_found"


def test_proof_of_what_is_not_a_usage_is_not_found(tracker: TrackerEnv, portal: httpx.Client,
                                                   usage: tuple[str, int]) -> None:
    citizen, _ = usage
    report = tracker.sql("SELECT l.index FROM audit_log l JOIN audit_event e ON e.id = "
                         "l.event_id WHERE e.action = 'citizen.report' AND e.pin = $1 "
                         "LIMIT 1", citizen)
    for index in (report[0]["index"], 2**53 - 1):
        response = get_proof(portal, citizen, index)
        assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.parametrize("index", ["-1", "x", "9007199254740992", ""])
def test_malformed_audit_index_is_400(portal: httpx.Client, usage: tuple[str, int],
                                      index: str) -> None:
    citizen, _ = usage
    response = portal.get(PROOF, params={"auditIndex": index}, headers=usage_headers(citizen))
    assert response.status_code == 400 and response.json()["field"] == "auditIndex"


def test_parent_gets_the_proof_of_a_minors_usage_and_it_is_audited(
        tracker: TrackerEnv, portal: httpx.Client, tracker_officer: httpx.Client,
        log_key: tuple[str, bytes]) -> None:
    mother = adult(tracker)
    child = tracker.person(years_before(tracker.clock.today(), 3), mother=mother)
    read(tracker_officer, child, "Tiêm chủng")
    tracker.flush()
    index = usages(portal, mother, child)["usages"][0]["auditIndex"]
    for params in ({}, {"userCode": child}):
        response = get_proof(portal, mother, index, **params)
        assert response.status_code == 200, response.text
        verify_proof(response.json(), log_key[1], pin=child)
    recorded = tracker.sql("SELECT details FROM audit_event WHERE action = 'citizen.report' "
                           "AND pin = $1 AND details->>'what' = 'proof'", child)
    assert [(r["details"]["relation"], r["details"]["index"]) for r in recorded] == \
        [("mother", index), ("mother", index)]


def test_covert_usage_has_no_proof_until_shown(tracker_clock: TrackerEnv,
                                               portal: httpx.Client) -> None:
    tracker = tracker_clock
    citizen = adult(tracker)
    with tracker.operator(("officer", "investigator")) as investigator:
        until = tracker.clock.today() + timedelta(days=1)
        assert read(investigator, citizen, "điều tra", hidden_until=until.isoformat(),
                    legal_basis="Điều 88").status_code == 200
    tracker.flush()
    index = tracker.sql("SELECT l.index FROM audit_log l JOIN audit_event e ON e.id = "
                        "l.event_id WHERE e.action = 'person.read' AND e.pin = $1", citizen)
    assert get_proof(portal, citizen, index[0]["index"]).status_code == 404


# -- idservice audit prove -----------------------------------------------------------------


def _prove(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if token is not None:
        env["IDSERVICE_ACCESS_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "idservice.cli", "audit", "prove", *args],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_audit_prove_cli_verifies_online_and_refuses_a_tampered_file(
        tracker: TrackerEnv, portal: httpx.Client, usage: tuple[str, int],
        log_key: tuple[str, bytes], tmp_path: Path) -> None:
    citizen, index = usage
    key = tmp_path / "audit-key.pem"
    key.write_bytes(log_key[1])
    token = portal.headers["Authorization"].removeprefix("Bearer ")
    online = _prove("--index", str(index), "--server", tracker.base_url, "--key", str(key),
                    "--user", citizen, token=token)
    assert online.returncode == 0, online.stderr
    assert online.stdout.startswith(f"OK: usage {index} (person.read")

    def proof() -> dict[str, Any]:
        body: dict[str, Any] = get_proof(portal, citizen, index).json()
        return body

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(proof()))
    bad.write_text(json.dumps(_tamper(proof(), "event purpose")))
    assert _prove("--file", str(good), "--key", str(key)).returncode == 0
    refused = _prove("--file", str(bad), "--key", str(key))
    assert refused.returncode == 1
    assert "the path does not lead to the checkpoint's root" in " ".join(refused.stderr.split())
    no_token = _prove("--index", str(index), "--server", tracker.base_url, "--key", str(key),
                      "--user", citizen)
    assert no_token.returncode == 2 and "IDSERVICE_ACCESS_TOKEN" in no_token.stderr

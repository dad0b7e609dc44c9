"""`idservice audit prove`: check that one usage of a citizen's record is in the signed audit
log (contract 11), as a portal or anyone holding a proof can: leaf -> inclusion -> checkpoint
signature, by `datatracker/verifier.py` (standard library + cryptography, nothing trusted from
the server but what it proves).

Online, with a portal's access token in `IDSERVICE_ACCESS_TOKEN`:
    idservice audit prove --index N --server URL --key audit-key.pem --user PIN
Offline, a proof downloaded from the citizen's page:
    idservice audit prove --file bang-chung-N.json --key audit-key.pem
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from idservice.cli.common import fail
from idservice.datatracker.verifier import ProofError, verify_proof

__all__ = ["prove"]

TOKEN_ENV = "IDSERVICE_ACCESS_TOKEN"
_MAX_PROOF_BYTES = 1024 * 1024


def _fetch(server: str, index: int, user: str, user_code: str | None) -> Any:
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise fail(f"--server needs a portal's access token in {TOKEN_ENV}", 2)
    params: dict[str, str | int] = {"auditIndex": index}
    if user_code:
        params["userCode"] = user_code
    headers = {"Authorization": f"Bearer {token}", "X-Road-UserId": f"VN{user}"}
    try:
        with httpx.Client(base_url=server.rstrip("/"), timeout=30, follow_redirects=False) \
                as client, client.stream("GET", "/datatracker/v2/proof", params=params,
                                         headers=headers) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _MAX_PROOF_BYTES:
                    raise fail("the server's answer is larger than any proof", 2)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {server}: {exc}", 2) from exc
    if response.status_code != 200:
        raise fail(f"{response.status_code}: {body.decode('utf-8', 'replace')[:500]}", 2)
    return json.loads(body)


def prove(
    key: Annotated[Path, typer.Option(help="the log's public key (PEM, GET /v1/audit/key)",
                                      exists=True, dir_okay=False)],
    index: Annotated[int | None, typer.Option(min=0, help="the usage's auditIndex")] = None,
    server: Annotated[str | None, typer.Option(
        help=f"ask this service for the proof (portal token in {TOKEN_ENV})")] = None,
    user: Annotated[str | None, typer.Option(
        help="the citizen's PIN (sent as X-Road-UserId: VN<PIN>)")] = None,
    user_code: Annotated[str | None, typer.Option(
        help="the data subject's PIN, when a parent asks about a child")] = None,
    file: Annotated[Path | None, typer.Option(
        help="a proof already downloaded (JSON), instead of --server", exists=True,
        dir_okay=False)] = None,
    key_name: Annotated[str | None, typer.Option(
        help="signed-note key name (default: the checkpoint's origin line)")] = None,
) -> None:
    """Verify one usage's proof: leaf hash, inclusion in the tree, checkpoint signature."""
    if file is not None:
        proof = json.loads(file.read_text("utf-8"))
    elif server is not None and index is not None and user is not None:
        proof = _fetch(server, index, user, user_code)
    else:
        raise fail("give --file, or --server with --index and --user", 2)
    if index is not None and proof.get("leaf_index") != index:
        raise fail(f"the proof is for index {proof.get('leaf_index')}, not {index}")
    try:
        checked = verify_proof(proof, key.read_bytes(), key_name=key_name,
                               pin=user_code or user)
    except ProofError as exc:
        raise fail(f"proof does not verify: {exc}") from exc
    event = checked.event
    typer.echo(
        f"OK: usage {checked.leaf_index} ({event.get('action')} at {event.get('at')}, "
        f"purpose {event.get('purpose')!r}) is leaf {checked.leaf_index} of the tree of "
        f"{checked.tree_size} whose checkpoint {checked.origin} is signed by key "
        f"{checked.key_id.hex()}")

"""`idservice login` (contract 6.2): the officer-side login with a USB token.

Asks the server for a challenge, signs `H(origin) || H(nonce)` with the token's certificate key
(`hsm/client.py`), sends the web-eid:1.0 token and prints the access token. The origin is the
server URL's scheme://host[:port] unless `--origin` says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import typer

from hsm.client import sign_with_token
from hsm.errors import HsmError
from idservice.auth.webeid import auth_token, signed_data
from idservice.cli.common import fail

__all__ = ["login"]


def login(
    module: Annotated[str, typer.Option(help="PKCS#11 module (.so) of the USB token")],
    token_label: Annotated[str, typer.Option(help="label of the token")],
    server: Annotated[str, typer.Option(help="service URL, e.g. https://id.example.gov.vn")],
    pin_file: Annotated[Path | None, typer.Option(
        help="file holding the user PIN (default: prompt)", exists=True, dir_okay=False)] = None,
    origin: Annotated[str | None, typer.Option(
        help="origin the signature is bound to (default: from --server)")] = None,
    key_id: Annotated[str | None, typer.Option(
        help="CKA_ID (hex) of the certificate/key pair, if the token holds several")] = None,
) -> None:
    """Log in with the certificate on a USB token; prints an access token."""
    base = server.rstrip("/")
    parts = urlsplit(base)
    bound_origin = (origin or f"{parts.scheme}://{parts.netloc}").rstrip("/")
    pin = pin_file.read_text("utf-8").strip() if pin_file else typer.prompt(
        "token PIN", hide_input=True)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            challenge = client.post("/v1/auth/challenge")
            if challenge.status_code != 200:
                raise fail(f"challenge: {challenge.status_code}: {challenge.text}")
            nonce = challenge.json()["nonce"]
            signed = sign_with_token(
                module, token_label, pin, lambda alg: signed_data(bound_origin, nonce, alg),
                key_id=bytes.fromhex(key_id) if key_id else None)
            response = client.post("/v1/auth/token", json={
                "nonce": nonce,
                "auth_token": auth_token(signed.certificate_der, signed.algorithm,
                                         signed.signature)})
    except HsmError as exc:
        raise fail(f"token: {exc}") from exc
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {base}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise fail(f"login refused: {response.status_code}: {response.text}")
    typer.echo(response.json()["access_token"])

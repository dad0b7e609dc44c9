"""`idservice agent` (contract 6.2): the officer-side loopback signing agent (`hsm/agent.py`).

Asks for the token PIN once (or reads `--pin-file`), checks it by reading the certificate, then
serves `POST http://127.0.0.1:PORT/sign` for the one `--allow-origin`: each call signs
`H(origin) || H(nonce)` with the token (`hsm/client.py`) and answers the web-eid:1.0 token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509

from hsm.agent import SignChallenge, SigningAgent
from hsm.client import sign_with_token, token_certificate
from hsm.errors import HsmError
from idservice.auth.webeid import auth_token, signed_data
from idservice.cli.common import console, fail

__all__ = ["DEFAULT_PORT", "agent", "token_signer"]

DEFAULT_PORT = 8765


def token_signer(module: str, token_label: str, pin: str,
                 key_id: bytes | None = None) -> SignChallenge:
    """`(origin, nonce) -> web-eid:1.0 token`, signing `H(origin) || H(nonce)` on the token."""

    def sign_challenge(origin: str, nonce: str) -> Mapping[str, Any]:
        signed = sign_with_token(module, token_label, pin,
                                 lambda alg: signed_data(origin, nonce, alg), key_id=key_id)
        return auth_token(signed.certificate_der, signed.algorithm, signed.signature,
                          app_version="idservice-agent/1.0")

    return sign_challenge


def agent(
    module: Annotated[str, typer.Option(help="PKCS#11 module (.so) of the USB token")],
    token_label: Annotated[str, typer.Option(help="label of the token")],
    allow_origin: Annotated[str, typer.Option(
        help="the web UI's origin (scheme://host[:port]); the only one the agent signs for")],
    port: Annotated[int, typer.Option(min=0, max=65535,
                                      help="loopback port (0: any free port)")] = DEFAULT_PORT,
    pin_file: Annotated[Path | None, typer.Option(
        help="file holding the user PIN (default: prompt)", exists=True, dir_okay=False)] = None,
    key_id: Annotated[str | None, typer.Option(
        help="CKA_ID (hex) of the certificate/key pair, if the token holds several")] = None,
) -> None:
    """Loopback signing agent the web UI calls to sign a login challenge."""
    pin = pin_file.read_text("utf-8").strip() if pin_file else typer.prompt(
        "token PIN", hide_input=True)
    try:
        kid = bytes.fromhex(key_id) if key_id else None
    except ValueError as exc:
        raise fail("--key-id must be hex", 2) from exc
    try:
        cert = x509.load_der_x509_certificate(
            token_certificate(module, token_label, pin, key_id=kid))
    except HsmError as exc:
        raise fail(f"token: {exc}") from exc

    try:
        server = SigningAgent(allowed_origin=allow_origin,
                              sign_challenge=token_signer(module, token_label, pin, kid),
                              port=port)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    console.print(f"signing agent for [bold]{allow_origin}[/bold] at "
                  f"[bold]{server.url}/sign[/bold]\n"
                  f"  certificate: {cert.subject.rfc4514_string()}", markup=True,
                  highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

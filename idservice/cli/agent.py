"""`idservice agent` (contract 6.2, 7): the officer-side loopback signing agent (`hsm/agent.py`).

Serves `POST http://127.0.0.1:PORT/sign` for the one `--allow-origin`: each call signs
`H(origin) || H(nonce)` with the token (`hsm/client.py`) and answers the web-eid:1.0 token.

By default every signature is confirmed on the agent's terminal: it shows the origin asking
and waits for the token PIN (typed without echo; an empty line, or no answer within
`--confirm-timeout` seconds, refuses). The PIN is used for that one signature (log in, sign,
log out) and not kept: no variable outlives the request, and the token session is closed with
it. A web page that reaches the agent while the officer is away therefore gets nothing signed.
`--pin-file` is for tests and kiosks: the file is read at each signature, nothing is asked, and
the agent says so with a warning at start.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import termios
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from cryptography import x509

from hsm.agent import SignChallenge, SigningAgent, SigningRefused
from hsm.client import sign_with_token, token_certificate
from hsm.errors import HsmError
from idservice.auth.webeid import auth_token, signed_data
from idservice.cli.common import console, err_console, fail

__all__ = ["DEFAULT_PORT", "PinSource", "agent", "pin_file_source", "terminal_pin_source",
           "token_signer"]

DEFAULT_PORT = 8765
DEFAULT_CONFIRM_TIMEOUT = 60.0

PinSource = Callable[[str, str], str]
"""`(origin, nonce) -> PIN` for one signature; raises `SigningRefused` when there is none."""


def token_signer(module: str, token_label: str, pin_source: PinSource,
                 key_id: bytes | None = None) -> SignChallenge:
    """`(origin, nonce) -> web-eid:1.0 token`, signing `H(origin) || H(nonce)` on the token
    with a PIN asked of `pin_source` for this signature only."""

    def sign_challenge(origin: str, nonce: str) -> Mapping[str, Any]:
        signed = sign_with_token(module, token_label, pin_source(origin, nonce),
                                 lambda alg: signed_data(origin, nonce, alg), key_id=key_id)
        return auth_token(signed.certificate_der, signed.algorithm, signed.signature,
                          app_version="idservice-agent/1.0")

    return sign_challenge


def pin_file_source(path: Path) -> PinSource:
    """Unattended: the PIN from `path`, read afresh at each signature."""

    def pin(origin: str, nonce: str) -> str:
        try:
            return path.read_text("utf-8").strip()
        except OSError as exc:
            raise SigningRefused(f"cannot read the PIN file: {exc.strerror}") from exc

    return pin


def _ask_secret(fd: int, out: TextIO, question: str, timeout: float) -> str | None:
    """Ask `question`, then read one line typed on the terminal `fd` without echo; None on
    timeout or end of input. Echo goes off and earlier input is discarded (TCSAFLUSH) before
    the question shows: only an answer to it counts, and none is echoed."""
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
    try:
        out.write(question)
        out.flush()
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1024)
            if not chunk:
                return None
            data += chunk
        return data.decode("utf-8", "replace").rstrip("\r\n")
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
        out.write("\n")
        out.flush()


def terminal_pin_source(stdin: TextIO, out: TextIO,
                        timeout: float = DEFAULT_CONFIRM_TIMEOUT) -> PinSource:
    """Ask on the terminal for each signature: the origin asking, then the PIN (no echo)."""
    fd = stdin.fileno()

    def pin(origin: str, nonce: str) -> str:
        answer = _ask_secret(fd, out, f"\nLogin request from {origin} (challenge "
                             f"{nonce[:8]}...)\nEnter the token PIN to sign it, or press "
                             f"Enter to refuse ({timeout:.0f} s): ", timeout)
        if not answer:
            out.write("refused: nothing was signed\n")
            out.flush()
            raise SigningRefused("the officer did not confirm this login on the agent's "
                                 "terminal" if answer is None else
                                 "the officer refused this login on the agent's terminal")
        return answer

    return pin


def agent(
    module: Annotated[str, typer.Option(help="PKCS#11 module (.so) of the USB token")],
    token_label: Annotated[str, typer.Option(help="label of the token")],
    allow_origin: Annotated[str, typer.Option(
        help="the web UI's origin (scheme://host[:port]); the only one the agent signs for")],
    port: Annotated[int, typer.Option(min=0, max=65535,
                                      help="loopback port (0: any free port)")] = DEFAULT_PORT,
    pin_file: Annotated[Path | None, typer.Option(
        help="UNATTENDED (tests, kiosks): sign every request with the PIN in this file, "
             "without asking (default: confirm each signature on this terminal)",
        exists=True, dir_okay=False)] = None,
    key_id: Annotated[str | None, typer.Option(
        help="CKA_ID (hex) of the certificate/key pair, if the token holds several")] = None,
    confirm_timeout: Annotated[float, typer.Option(
        min=1, help="seconds to wait for the officer's answer before refusing")
    ] = DEFAULT_CONFIRM_TIMEOUT,
) -> None:
    """Loopback signing agent the web UI calls to sign a login challenge."""
    try:
        kid = bytes.fromhex(key_id) if key_id else None
    except ValueError as exc:
        raise fail("--key-id must be hex", 2) from exc
    if pin_file is None and not sys.stdin.isatty():
        raise fail("the agent asks for the token PIN on its terminal for each signature: run "
                   "it in a terminal (or, unattended, give --pin-file)", 2)
    try:
        cert = x509.load_der_x509_certificate(token_certificate(module, token_label, None,
                                                                key_id=kid))
    except HsmError as exc:
        raise fail(f"token: {exc}") from exc
    source = pin_file_source(pin_file) if pin_file else terminal_pin_source(
        sys.stdin, sys.stdout, confirm_timeout)
    try:
        server = SigningAgent(allowed_origin=allow_origin,
                              sign_challenge=token_signer(module, token_label, source, kid),
                              port=port)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if pin_file:
        err_console.print(f"[bold red]WARNING[/bold red]: --pin-file: every login request from "
                          f"{allow_origin} is signed without asking anyone. Use it only for "
                          "tests and kiosks; an officer's agent runs without it.",
                          highlight=False, soft_wrap=True)
    console.print(f"signing agent for [bold]{allow_origin}[/bold] at "
                  f"[bold]{server.url}/sign[/bold]\n"
                  f"  certificate: {cert.subject.rfc4514_string()}\n"
                  + ("  each login is confirmed here with the token PIN" if not pin_file
                     else "  unattended (--pin-file)"), markup=True, highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()

"""SoftHSM2 helpers for development and tests (never used against a production HSM).

* SoftHSM reads its configuration from ``$SOFTHSM2_CONF`` when the module is
  initialised (``C_Initialize``), and that variable is process-global: **a process can
  use only one SoftHSM configuration**. :func:`ensure_softhsm_token` points it at
  ``base_dir/softhsm2.conf``; several tokens can live in that one token directory.
  Switching to another configuration once SoftHSM is loaded is refused (HsmError):
  SoftHSM re-reads the variable on every re-initialisation, so open stores would lose
  their tokens. :func:`active_softhsm_dir` tells fixtures which directory is in use.
* Debian's default token directory is ``root:softhsm 2770``, so dev/test always use a
  private configuration.
* A token created after this process loaded the module is invisible until
  ``C_Finalize``/``C_Initialize``; :meth:`hsm.KeyStore.open` re-initialises and retries
  once when the label is not found, so callers need not care.
* PINs: ``softhsm2-util`` only accepts them as arguments (it reads prompts from a
  terminal), so they are passed in argv to a short-lived child process, never logged,
  and scrubbed from any error output. Dev-mode PINs are random and kept in
  ``base_dir/pins.json`` (mode 0600).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import secrets
import shutil
import string
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hsm._library import loaded_module_paths
from hsm.errors import HsmError

__all__ = [
    "SoftHsmToken",
    "active_softhsm_dir",
    "ensure_softhsm_token",
    "file_lock",
    "find_softhsm_module",
    "generate_so_pin",
    "generate_user_pin",
    "load_or_create_pins",
]

log = logging.getLogger(__name__)

_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/*-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
_INSTALL_HINT = "install SoftHSM2 (Debian/Ubuntu: apt-get install softhsm2 opensc)"
_PIN_ALPHABET = string.ascii_letters + string.digits
_active_base_dir: Path | None = None


@dataclass(frozen=True)
class SoftHsmToken:
    """Everything a :class:`hsm.KeyStore` needs to use one SoftHSM token."""

    module_path: str
    conf_path: Path
    token_label: str
    user_pin: str = field(repr=False)


def find_softhsm_module() -> str:
    """Path of ``libsofthsm2.so`` in the usual Debian/Ubuntu/Fedora/Homebrew places."""
    for pattern in _MODULE_CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    raise HsmError(f"SoftHSM2 PKCS#11 module not found; {_INSTALL_HINT}")


def generate_user_pin() -> str:
    """Random 24-character alphanumeric user PIN (SoftHSM accepts 4-255 characters)."""
    return "".join(secrets.choice(_PIN_ALPHABET) for _ in range(24))


def generate_so_pin() -> str:
    """Random 32-character alphanumeric security-officer PIN."""
    return "".join(secrets.choice(_PIN_ALPHABET) for _ in range(32))


def load_or_create_pins(base_dir: Path) -> tuple[str, str]:
    """``(user_pin, so_pin)`` from ``base_dir/pins.json``, created (0600) on first use."""
    base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = base_dir / "pins.json"
    if not path.exists():
        payload = json.dumps({"user_pin": generate_user_pin(), "so_pin": generate_so_pin()})
        fd, tmp = tempfile.mkstemp(dir=base_dir, prefix=".pins-")  # mkstemp creates 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; restricting it to 0600", path)
        path.chmod(0o600)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        user_pin, so_pin = data["user_pin"], data["so_pin"]
    except (ValueError, KeyError, TypeError) as exc:
        raise HsmError(f"{path} is not a valid PIN file") from exc
    if not (isinstance(user_pin, str) and isinstance(so_pin, str) and user_pin and so_pin):
        raise HsmError(f"{path} is not a valid PIN file")
    return user_pin, so_pin


def _softhsm_util() -> str:
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise HsmError(f"softhsm2-util not found; {_INSTALL_HINT}")
    return tool


def _write_conf(base_dir: Path) -> Path:
    tokens = base_dir / "tokens"
    tokens.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = base_dir / "softhsm2.conf"
    text = (
        "# written by hsm.softhsm.ensure_softhsm_token\n"
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "slots.removable = false\n"
        "log.level = ERROR\n"
    )
    if not conf.exists() or conf.read_text(encoding="utf-8") != text:
        tmp = conf.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(conf)
    return conf


def active_softhsm_dir() -> Path | None:
    """``base_dir`` of the SoftHSM configuration this process activated, if any.

    Test fixtures use it to put their tokens into the configuration another part of the
    suite already set up, instead of switching ``SOFTHSM2_CONF`` under it.
    """
    return _active_base_dir


def _softhsm_loaded() -> bool:
    return any("softhsm" in os.path.basename(path) for path in loaded_module_paths())


def _activate_conf(conf: Path) -> None:
    global _active_base_dir
    previous = os.environ.get("SOFTHSM2_CONF")
    if previous is not None and Path(previous).resolve() != conf.resolve() and _softhsm_loaded():
        # SoftHSM re-reads the variable on every C_Initialize: switching it now would make
        # every open KeyStore lose its tokens at the next module re-initialisation.
        raise HsmError(
            f"this process already uses SoftHSM configuration {previous}; "
            f"a process can only use one (wanted {conf})"
        )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    _active_base_dir = conf.parent


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created if missing): serialises set-up across processes."""
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_util(args: list[str], env: dict[str, str], secrets_: tuple[str, ...]) -> str:
    # The command line holds PINs: never log it, never let CalledProcessError format it.
    proc = subprocess.run(  # noqa: S603 - fixed tool path, no shell
        [_softhsm_util(), *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        for secret in secrets_:
            output = output.replace(secret, "***")
        raise HsmError(f"softhsm2-util {args[0]} failed (exit {proc.returncode}): {output}")
    return proc.stdout


def _token_labels(env: dict[str, str]) -> set[str]:
    out = _run_util(["--show-slots"], env, ())
    labels = set()
    for line in out.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key == "Label" and value.strip():
            labels.add(value.strip())
    return labels


def ensure_softhsm_token(
    base_dir: Path, token_label: str, user_pin: str, so_pin: str
) -> SoftHsmToken:
    """Write ``base_dir/softhsm2.conf``, activate it and create the token if missing.

    Idempotent and safe against concurrent callers (file lock): an existing token with
    that label is reused as is (its PINs are not changed).
    """
    if not token_label or len(token_label.encode("utf-8")) > 32:
        raise HsmError("token label must be 1-32 bytes (CK_TOKEN_INFO.label)")
    module_path = find_softhsm_module()
    base_dir = base_dir.resolve()
    base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with file_lock(base_dir / ".init.lock"):
        conf = _write_conf(base_dir)
        _activate_conf(conf)
        env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
        if token_label not in _token_labels(env):
            args = ["--init-token", "--free", "--label", token_label]
            args += ["--pin", user_pin, "--so-pin", so_pin]
            _run_util(args, env, (user_pin, so_pin))
            log.info("initialised SoftHSM token %r in %s", token_label, base_dir / "tokens")
    return SoftHsmToken(
        module_path=module_path, conf_path=conf, token_label=token_label, user_pin=user_pin
    )

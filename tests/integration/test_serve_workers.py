"""`idservice serve --workers 2` on a fresh data dir: the parent creates the embedded cluster and
the signing keys once, both workers share them, and SIGTERM stops everything it started.

`serve` runs on those zero-setup parts (embedded PostgreSQL, a SoftHSM token) only with
IDSERVICE_ALLOW_DEV_PARTS=1, and says so in its log; without it, it refuses to start."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

pytestmark = pytest.mark.embedded_only  # the embedded cluster itself (fixtures_db.py)


@pytest.fixture
def fresh_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="idservice-workers-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_two_workers_start_on_a_fresh_data_dir_and_share_keys(fresh_dir: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDSERVICE_", "SOFTHSM2"))}
    env.update({"IDSERVICE_DATA_DIR": str(fresh_dir), "IDSERVICE_ALLOW_DEV_PARTS": "1",
                "IDSERVICE_ORIGIN": f"http://127.0.0.1:{port}"})
    process = subprocess.Popen(
        [sys.executable, "-m", "idservice.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        kids: set[str] = set()
        ready = 0
        while time.monotonic() < deadline and ready < 20:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    ready += 1
                    jwks = httpx.get(f"{base}/.well-known/jwks.json", timeout=2).json()
                    kids.update(k["kid"] for k in jwks["keys"])
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.1)
        assert ready == 20, "workers did not become ready"
        assert len(kids) == 1  # both workers sign with the one key made before they started
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert "stopped embedded PostgreSQL" in output, output[-3000:]
    assert not (fresh_dir / "pg" / "postmaster.pid").exists()
    assert '"event": "dev_parts_allowed"' in output, output[-3000:]


def _serve_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDSERVICE_", "SOFTHSM2"))}
    env.update({"IDSERVICE_DATA_DIR": str(data_dir),
                "IDSERVICE_ORIGIN": f"http://127.0.0.1:{port}", **extra})
    return env


def _refusal(env: dict[str, str], port: int) -> str:
    """`serve` must exit by itself, with status 2, before starting anything."""
    process = subprocess.run(
        [sys.executable, "-m", "idservice.cli", "serve", "--port", str(port)], env=env,
        capture_output=True, text=True, timeout=60, check=False)
    assert process.returncode == 2, process.stdout + process.stderr
    return process.stdout + process.stderr


def test_serve_on_embedded_parts_without_allow_dev_parts_exits_2(fresh_dir: Path) -> None:
    port = free_port()
    output = _refusal(_serve_env(fresh_dir, port), port)
    assert "dev_parts_refused" in output and "IDSERVICE_ALLOW_DEV_PARTS=1" in output
    assert "embedded PostgreSQL" in output and "SoftHSM" in output
    assert not (fresh_dir / "pg").exists()  # nothing was started or created


def test_serve_on_a_configured_softhsm_module_exits_2(fresh_dir: Path) -> None:
    """A configured database but SoftHSM's module as "the HSM": still a dev part."""
    port = free_port()
    output = _refusal(_serve_env(
        fresh_dir, port, IDSERVICE_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        IDSERVICE_PKCS11_MODULE="/usr/lib/softhsm/libsofthsm2.so",
        IDSERVICE_PKCS11_TOKEN_LABEL="x", IDSERVICE_PKCS11_PIN="1234"), port)
    assert "SoftHSM (/usr/lib/softhsm/libsofthsm2.so)" in output
    assert "embedded PostgreSQL" not in output

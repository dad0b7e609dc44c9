"""`idservice serve --workers 2` on a fresh data dir: the parent creates the embedded cluster and
the signing keys once, both workers share them, and SIGTERM stops everything it started."""

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
    env.update({"IDSERVICE_DATA_DIR": str(fresh_dir),
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

"""The README's first command, end to end: `idservice dev` in a fresh data dir starts embedded
PostgreSQL, SoftHSM and the API; the README's steps get a registrar token and issue a PIN; a
SIGTERM stops the service and the cluster it started."""

from __future__ import annotations

import json
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

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dev_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="idservice-dev-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_dev_mode_follows_readme_and_stops_cleanly(dev_dir: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDSERVICE_", "SOFTHSM2"))}
    env.update({"IDSERVICE_DATA_DIR": str(dev_dir)})
    cli = [sys.executable, "-m", "idservice.cli"]
    server = subprocess.Popen([*cli, "dev", "--port", str(port)], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            time.sleep(0.3)
        else:
            pytest.fail("dev server not ready in 120 s")
        assert httpx.get(f"{base}/docs").status_code == 200

        key = dev_dir / "demo" / "registrar-052.key.pem"
        env["IDSERVICE_ORIGIN"] = base
        token = subprocess.run([*cli, "clients", "token", "--id", "demo-registrar-052",
                                "--key", str(key)], env=env, capture_output=True, text=True,
                               timeout=60, check=True).stdout.strip()
        body = json.loads((REPO / "examples" / "issue.json").read_text())
        issued = httpx.post(f"{base}/v1/pins", json=body,
                            headers={"Authorization": f"Bearer {token}"})
        assert issued.status_code == 201, issued.text
        assert issued.json()["pin"].startswith("052")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert "stopped embedded PostgreSQL" in output
    assert not (dev_dir / "pg" / "postmaster.pid").exists()

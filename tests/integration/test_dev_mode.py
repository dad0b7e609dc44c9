"""The README's first command, end to end: `idservice dev` in a fresh data dir starts embedded
PostgreSQL, SoftHSM and the API; the README's steps get a registrar token and issue a PIN, log
an officer in with the demo token (`idservice login`, and through `idservice agent` as the
README's curl calls do), and the revoked demo officer is refused; a SIGTERM stops the service
and the cluster it started, and a restart reuses the demo PKI with a re-signed CRL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from idservice.auth.crl_cache import load_crl
from tests.support.server import free_port

pytestmark = pytest.mark.embedded_only  # the embedded cluster itself (fixtures_db.py)

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "idservice.cli"]


@dataclass
class DevServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def demo(self) -> Path:
        return self.data_dir / "demo"

    def env(self) -> dict[str, str]:
        """What a user's shell has after the README's exports."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IDSERVICE_", "SOFTHSM2"))}
        env.update({"IDSERVICE_DATA_DIR": str(self.data_dir), "IDSERVICE_ORIGIN": self.base,
                    "SOFTHSM2_CONF": str(self.data_dir / "softhsm" / "softhsm2.conf")})
        return env

    def start(self) -> DevServer:
        env = {k: v for k, v in self.env().items() if k not in ("IDSERVICE_ORIGIN",
                                                                   "SOFTHSM2_CONF")}
        self.process = subprocess.Popen([*CLI, "dev", "--port", str(self.port)], env=env,
                                        cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                pytest.fail(self.process.stdout.read() if self.process.stdout else "dev died")
            time.sleep(0.3)
        pytest.fail("dev server not ready in 120 s")

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        self.process = None
        return output

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=self.env(), cwd=REPO, capture_output=True,
                              text=True, timeout=60, check=check)

    def login(self, label: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli("login", "--module", "/usr/lib/softhsm/libsofthsm2.so",
                        "--token-label", label, "--pin-file", str(self.demo / f"{label}.pin"),
                        "--server", self.base, check=check)

    def issue_pin(self) -> str:
        key = self.demo / "registrar-052.key.pem"
        token = self.cli("clients", "token", "--id", "demo-registrar-052",
                         "--key", str(key)).stdout.strip()
        body = json.loads((REPO / "examples" / "issue.json").read_text())
        issued = httpx.post(f"{self.base}/v1/pins", json=body,
                            headers={"Authorization": f"Bearer {token}"})
        assert issued.status_code in (200, 201), issued.text
        pin: str = issued.json()["pin"]
        return pin


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    # The README's commands name Debian's SoftHSM module; scripts/bootstrap.sh installs it.
    assert Path("/usr/lib/softhsm/libsofthsm2.so").exists(), "run scripts/bootstrap.sh"
    server = DevServer(Path(tempfile.mkdtemp(prefix="idservice-dev-test-"))).start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def test_registrar_issues_a_pin_as_the_readme_shows(dev: DevServer) -> None:
    assert httpx.get(f"{dev.base}/docs").status_code == 200
    assert dev.issue_pin().startswith("052")


def test_officer_logs_in_with_the_dev_token_and_reads_a_person(dev: DevServer) -> None:
    pin = dev.issue_pin()
    assert (dev.demo / "officer1.pin").stat().st_mode & 0o777 == 0o600
    token = dev.login("officer1").stdout.strip()
    person = httpx.get(f"{dev.base}/v1/persons/{pin}", params={"purpose": "dev-mode test"},
                       headers={"Authorization": f"Bearer {token}"})
    assert person.status_code == 200, person.text
    assert person.json()["pin"] == pin


def test_revoked_demo_officer_is_refused_with_cert_revoked(dev: DevServer) -> None:
    refused = dev.login("revoked1", check=False)
    assert refused.returncode != 0
    assert "cert_revoked" in refused.stderr


def test_auditor_token_logs_in(dev: DevServer) -> None:
    assert dev.login("auditor1").stdout.strip().count(".") == 2


def test_agent_flow_as_the_readme_curl_calls(dev: DevServer) -> None:
    port = free_port()
    agent = subprocess.Popen(
        [*CLI, "agent", "--module", "/usr/lib/softhsm/libsofthsm2.so", "--token-label",
         "officer1", "--pin-file", str(dev.demo / "officer1.pin"), "--allow-origin", dev.base,
         "--port", str(port)], env=dev.env(), cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        sign_url = f"http://127.0.0.1:{port}/sign"
        nonce = httpx.post(f"{dev.base}/v1/auth/challenge").json()["nonce"]
        deadline = time.monotonic() + 30
        while True:
            try:
                signed = httpx.post(sign_url, json={"nonce": nonce, "origin": dev.base},
                                    headers={"Origin": dev.base}, timeout=30)
                break
            except httpx.ConnectError:
                assert agent.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert signed.status_code == 200, signed.text
        login = httpx.post(f"{dev.base}/v1/auth/token",
                           json={"nonce": nonce, "auth_token": signed.json()})
        assert login.status_code == 200, login.text
        pin = dev.issue_pin()
        person = httpx.get(f"{dev.base}/v1/persons/{pin}", params={"purpose": "agent test"},
                           headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert person.status_code == 200, person.text
    finally:
        agent.terminate()
        output, _ = agent.communicate(timeout=30)
    assert (dev.demo / "officer1.pin").read_text().strip() not in output


def test_readme_batch_example_issues_every_line(dev: DevServer) -> None:
    """The README's and the banner's batch example sends `examples/births.ndjson`, which
    ships with the project (issue 9 item 17)."""
    key = dev.demo / "registrar-052.key.pem"
    token = dev.cli("clients", "token", "--id", "demo-registrar-052",
                    "--key", str(key)).stdout.strip()
    births = (REPO / "examples" / "births.ndjson").read_bytes()
    response = httpx.post(f"{dev.base}/v1/pins:batch", content=births,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": "application/x-ndjson"})
    assert response.status_code == 200
    answers = [json.loads(line) for line in response.text.splitlines()]
    assert len(answers) == len(births.splitlines()) >= 3
    assert all(a["pin"].startswith("052") for a in answers), answers


def test_dev_ignores_x_forwarded_for_unless_configured(dev: DevServer) -> None:
    """Dev mode trusts no proxy unless IDSERVICE_FORWARDED_ALLOW_IPS says so (issue 9 item
    16): a local caller claiming another address is still the loopback caller, who sees the
    readiness details."""
    spoofed = httpx.get(f"{dev.base}/readyz", headers={"X-Forwarded-For": "203.0.113.9"})
    assert spoofed.status_code == 200
    assert set(spoofed.json()["checks"]) >= {"database", "hsm"}


def test_banner_examples_work_as_printed(dev: DevServer) -> None:
    """The banner's read example carries `?purpose=` (without it a read is 400) and it works
    when copied; it names the web UI and the signing agent (issue 9 item 17)."""
    output = dev.stop()
    dev.start()
    assert f"{dev.base}/ui/" in output and "idservice agent" in output
    assert "examples/births.ndjson" in output
    [read_url] = re.findall(r'curl -s "(\S+/v1/persons/<PIN>\?purpose=\S+)"', output)
    officer = dev.login("officer1").stdout.strip()
    pin = dev.issue_pin()
    person = httpx.get(read_url.replace("<PIN>", pin),
                       headers={"Authorization": f"Bearer {officer}"})
    assert person.status_code == 200, person.text


def test_sigterm_stops_cleanly_and_restart_reuses_the_demo_pki(dev: DevServer) -> None:
    certs = {p.name: p.read_bytes() for p in (dev.demo / "pki").glob("*.pem")}
    certs |= {p.name: p.read_bytes() for p in dev.demo.glob("*.cert.pem")}
    crl_path = dev.demo / "pki" / "officer-ca.crl"
    first_crl = load_crl(crl_path.read_bytes())
    output = dev.stop()
    assert "stopped embedded PostgreSQL" in output
    assert not (dev.data_dir / "pg" / "postmaster.pid").exists()

    time.sleep(1.1)  # CRL numbers and lastUpdate have one-second resolution
    dev.start()
    assert certs == {p.name: p.read_bytes() for p in (dev.demo / "pki").glob("*.pem")} | {
        p.name: p.read_bytes() for p in dev.demo.glob("*.cert.pem")}
    crl = load_crl(crl_path.read_bytes())
    assert crl.last_update_utc > first_crl.last_update_utc
    revoked = x509.load_pem_x509_certificate((dev.demo / "revoked1.cert.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(revoked.serial_number) is not None
    assert dev.login("officer1").stdout.strip()
    assert "cert_revoked" in dev.login("revoked1", check=False).stderr

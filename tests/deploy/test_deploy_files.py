"""The deployment files are checked by the tools that will read them: `bash -n` for the shell
scripts, `docker-compose config -q` (Debian's 1.29, offline) for the compose file, `nginx -t` in
a temporary prefix with a self-signed certificate for the site, `systemd-analyze verify` for the
unit. Each check is first shown to reject a broken copy, so none can pass vacuously.
`scripts/bootstrap.sh` installs nginx and docker-compose; the tests fail (not skip) without."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPTS = sorted([*DEPLOY.rglob("*.sh"), ROOT / "scripts" / "bootstrap.sh"])


def run(*args: str | Path, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd)


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                  else None)
    assert path, f"{name} not installed: run scripts/bootstrap.sh"
    return path


# --- shell -------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_scripts_parse(script: Path) -> None:
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    result = run("bash", "-n", script)
    assert result.returncode == 0, result.stderr


def test_bash_n_rejects_a_broken_script(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sh"
    broken.write_text((DEPLOY / "install-debian.sh").read_text().replace("fi\n", "\n", 1))
    assert run("bash", "-n", broken).returncode != 0


def test_install_script_is_strict_and_idempotent_by_construction() -> None:
    text = (DEPLOY / "install-debian.sh").read_text()
    assert "set -euo pipefail" in text
    # roles and database only created when missing; secrets only generated when missing
    assert text.count("WHERE NOT EXISTS") == 5
    assert 'grep -q "^$name=" "$secrets"' in text
    assert 'install -m 0600 -o root -g root "$tmp" "$envfile"' in text
    assert "GRANT idservice_service TO $APP" in text and "GRANT idservice_auditor TO $AUDIT" in text
    assert "GRANT idservice_administrator TO $ADMIN" in text  # the operators/clients commands
    assert 'install -m 0600 -o root -g root "$tmp" "$admin_env"' in text
    assert "idservice\" db migrate" in text


# --- docker-compose ----------------------------------------------------------------------

COMPOSE_ENV = {"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "p", "OWNER_DB_PASSWORD": "o",
               "SERVICE_DB_PASSWORD": "s", "AUDITOR_DB_PASSWORD": "a", "ADMIN_DB_PASSWORD": "d"}


def compose_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(tool("docker-compose"), "-f", path, "config", "-q", env=env, cwd=path.parent)


def test_compose_file_is_valid() -> None:
    result = compose_config(DEPLOY / "docker-compose.yml", COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    example = run(tool("docker-compose"), "-f", DEPLOY / "docker-compose.yml", "--env-file",
                  DEPLOY / "compose" / "example.env", "config", "-q",
                  env={"PATH": "/usr/bin:/bin"})
    assert example.returncode == 0, example.stderr


def test_compose_check_rejects_broken_files(tmp_path: Path) -> None:
    source = (DEPLOY / "docker-compose.yml").read_text()
    # the secrets are required
    assert compose_config(DEPLOY / "docker-compose.yml", {"PATH": "/usr/bin:/bin"}).returncode
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(source.replace("condition: service_healthy", "condition: when_ready"))
    assert compose_config(broken, COMPOSE_ENV).returncode != 0


def test_compose_services() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    for needle in ("image: postgres:15", "dockerfile: deploy/Dockerfile",
                   "condition: service_completed_successfully", "./nginx/idservice.conf"):
        assert needle in text
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim-bookworm" in dockerfile
    assert "softhsm2 opensc" in dockerfile and "USER idservice" in dockerfile


# --- nginx -------------------------------------------------------------------------------


def nginx_test(tmp_path: Path, site: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "logs").mkdir(exist_ok=True)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if not cert.exists():
        made = run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=test",
                   "-keyout", key, "-out", cert)
        assert made.returncode == 0, made.stderr
    site = site.replace("/etc/idservice/tls/fullchain.pem", str(cert)) \
               .replace("/etc/idservice/tls/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n")
    return run(tool("nginx"), "-t", "-q", "-p", tmp_path, "-c", tmp_path / "nginx.conf")


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    result = nginx_test(tmp_path, (DEPLOY / "nginx" / "idservice.conf").read_text())
    assert result.returncode == 0, result.stderr


def test_nginx_t_rejects_a_broken_config(tmp_path: Path) -> None:
    site = (DEPLOY / "nginx" / "idservice.conf").read_text()
    assert nginx_test(tmp_path, site.replace("client_max_body_size 1m;",
                                             "client_max_body_size one-megabyte;")).returncode
    assert nginx_test(tmp_path, site.replace("proxy_buffering off;", "proxy_buffering")).returncode


def _block(text: str, opening: str) -> str:
    start = text.index(opening)
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    raise AssertionError(f"unbalanced block {opening}")


def test_nginx_config_content() -> None:
    text = (DEPLOY / "nginx" / "idservice.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    tls = _block(text, "server {\n    listen 443")
    for header in ("Strict-Transport-Security", "X-Content-Type-Options \"nosniff\"",
                   "X-Frame-Options \"DENY\"", "Referrer-Policy"):
        assert f"add_header {header}" in tls
    assert re.search(r"^    client_max_body_size 1m;$", tls, re.M)
    assert "proxy_set_header X-Request-Id" in tls and "proxy_set_header X-Forwarded-For" in tls
    assert "server 127.0.0.1:8000;" in _block(text, "upstream idservice {")
    batch = _block(tls, "location = /v1/pins:batch {")
    assert "client_max_body_size 1g;" in batch and "proxy_buffering off;" in batch
    assert "proxy_request_buffering off;" in batch
    ui = _block(tls, "location /ui {")
    assert "Content-Security-Policy" in ui and "frame-ancestors 'none'" in ui
    assert "X-Frame-Options \"DENY\"" in ui  # add_header in a location drops the server's
    assert "deny all;" in _block(tls, "location = /metrics {")


# --- systemd -----------------------------------------------------------------------------


def verify_unit(tmp_path: Path, unit: str) -> subprocess.CompletedProcess[str]:
    # The unit names the installed venv; point it at this checkout's for the check.
    idservice = ROOT / ".venv" / "bin" / "idservice"
    assert idservice.exists()
    path = tmp_path / "idservice.service"
    path.write_text(unit.replace("/opt/idservice/venv/bin/idservice", str(idservice)))
    return run(tool("systemd-analyze"), "verify", path)


def test_systemd_unit_verifies_cleanly(tmp_path: Path) -> None:
    result = verify_unit(tmp_path, (DEPLOY / "systemd" / "idservice.service").read_text())
    # verify exits 0 on ignored (unknown or unparsable) settings: any output is a failure too
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), \
        result.stdout + result.stderr


def test_systemd_check_rejects_broken_units(tmp_path: Path) -> None:
    unit = (DEPLOY / "systemd" / "idservice.service").read_text()
    bad_value = verify_unit(tmp_path, unit.replace("ProtectSystem=strict", "ProtectSystem=x"))
    assert "Failed to parse" in bad_value.stderr
    fatal = verify_unit(tmp_path, unit.replace("ExecStart=", "ExecStart=relative/idservice "))
    assert fatal.returncode != 0


def test_systemd_unit_hardening() -> None:
    unit = (DEPLOY / "systemd" / "idservice.service").read_text()
    for line in ("User=idservice", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "ReadWritePaths=/var/lib/idservice",
                 "EnvironmentFile=/etc/idservice/idservice.env", "StandardOutput=journal"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    assert re.search(r"^ExecStart=/opt/idservice/venv/bin/idservice serve .*--workers "
                     r"\$\{IDSERVICE_WORKERS\}$", unit, re.M)

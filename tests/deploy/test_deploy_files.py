"""The deployment files are checked by the tools that will read them: `bash -n` for the shell
scripts, `docker-compose config -q` (Debian's 1.29, offline) for the compose file, `nginx -t` in
a temporary prefix with a self-signed certificate for the site, `systemd-analyze verify` for the
unit. Each check is first shown to reject a broken copy, so none can pass vacuously.
`scripts/bootstrap.sh` installs nginx and docker-compose; the tests fail (not skip) without."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.server import ServerThread, free_port

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
    assert "X-Frame-Options \"DENY\"" in ui  # add_header in a location drops the server's
    # The service's Content-Security-Policy (one per kind of page) is passed on, not replaced.
    assert "proxy_hide_header Content-Security-Policy" not in text
    assert "add_header Content-Security-Policy" not in text
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


# --- no secret on a command line (issue 9 item 16) -----------------------------------------

SECRET_NAMES = ("OWNER_DB_PASSWORD", "SERVICE_DB_PASSWORD", "AUDITOR_DB_PASSWORD",
                "HSM_USER_PIN", "HSM_SO_PIN", "POSTGRES_PASSWORD", "owner_url", "app_url")
_SECRET_REF = re.compile(r"\$\{?(" + "|".join(SECRET_NAMES) + r")\b")
# Shell builtins: their arguments never become a process's command line (ps, /proc/*/cmdline).
_BUILTINS = {"echo", "printf", "export", "local", "read", ".", "source", ":", "[[", "test", "["}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """The script's commands outside comments and here-documents (whose bodies are standard
    input), continuation lines joined; (first line number, text)."""
    out: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if line.lstrip().startswith("#"):
            continue
        out.append((number, line))
        heredoc = _HEREDOC.search(line)
        if heredoc:
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                i += 1
            i += 1
    return out


def secrets_on_command_lines(text: str) -> list[str]:
    """Commands that would put a secret in a process's arguments: a secret variable anywhere
    but in a builtin's arguments or a leading `NAME=value` environment assignment."""
    found = []
    for number, line in _logical_lines(text):
        for segment in re.split(r";|&&|\|\||\||\$\(|`|\bthen\b|\bdo\b|\belse\b|(?<!\$)\{|[}()]",
                            line):
            if not _SECRET_REF.search(segment):
                continue
            words = segment.split()
            while words and _ASSIGNMENT.match(words[0]):
                words = words[1:]  # environment of the command (or a plain assignment)
            rest = " ".join(words)
            if words and words[0] not in _BUILTINS and _SECRET_REF.search(rest):
                found.append(f"line {number}: {segment.strip()}")
        if re.search(r"\$\([^)]*\$\{?(envfile|secrets)\b", line):
            found.append(f"line {number}: a secrets file expanded into arguments")
    return found


SECRET_SCRIPTS = [DEPLOY / "install-debian.sh", DEPLOY / "check-install.sh",
                  DEPLOY / "compose" / "initdb.sh"]


@pytest.mark.parametrize("script", SECRET_SCRIPTS, ids=lambda p: p.name)
def test_no_password_or_pin_on_a_command_line(script: Path) -> None:
    assert secrets_on_command_lines(script.read_text()) == []


def test_command_line_check_finds_each_way_a_secret_leaks() -> None:
    """The checker is shown to catch what the installer once did."""
    leaks = [
        'psql_su -v owner_pw="$OWNER_DB_PASSWORD" <<SQL\nALTER ROLE x;\nSQL\n',
        'env -i PATH=/usr/bin IDSERVICE_DATABASE_URL="$owner_url" idservice db migrate\n',
        'softhsm2-util --init-token --free --label L \\\n  --pin "$HSM_USER_PIN" --so-pin x\n',
        "runuser -u idservice -- env -i $(grep -v '^#' \"$envfile\" | xargs) python -c 1\n",
        'if true; then curl -u "admin:${AUDITOR_DB_PASSWORD}" http://x; fi\n',
    ]
    for leak in leaks:
        assert secrets_on_command_lines(leak), leak
    fine = ('echo "PIN=$HSM_USER_PIN" >> f\n'
            'HSM_SO_PIN="$HSM_SO_PIN" p11 --so-pin env:HSM_SO_PIN\n'
            'printf \'%s\' "$owner_url" > "$cfg"\n'
            'psql <<SQL\n\\set x \'$OWNER_DB_PASSWORD\'\nSQL\n')
    assert secrets_on_command_lines(fine) == []


# --- Docker image supply chain (issue 9 item 16) -------------------------------------------

LOCK = DEPLOY / "requirements.lock"


def _locked() -> dict[str, list[str]]:
    """name -> hashes of every `name==version` in the lock."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9._-]+)==[^ ]+", line)
        if pinned:
            current = canonicalize_name(pinned.group(1))
            entries[current] = []
        elif current and (digest := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            entries[current].append(digest.group(1))
        elif not line.startswith(" "):
            current = None
    return entries


def _runtime_closure() -> set[str]:
    """The distributions the project needs at run time: pyproject's `dependencies` (no dev
    extras) and, as installed here, everything they require, extras and markers evaluated."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [(Requirement(d), ("",)) for d in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e})
                                          for e in extras):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            todo.append((Requirement(line), ("", *requirement.extras)))
    return {key.split("[")[0] for key in seen}


def test_dockerfile_pins_its_base_by_digest_and_installs_by_hash() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert froms and all(re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", f) for f in froms), froms
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile
    assert "COPY deploy/requirements.lock" in dockerfile
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert all("--require-hashes" in i or "--no-deps" in i for i in installs), installs


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    locked = _locked()
    missing = _runtime_closure() - set(locked)
    assert not missing, f"not in deploy/requirements.lock (see deploy/README.md): {missing}"
    assert all(locked.values()), [name for name, hashes in locked.items() if not hashes]
    assert {"setuptools", "wheel"} <= set(locked)  # the build backend, for --no-build-isolation


# --- nginx in front of the real service (issue 9 item 16) -----------------------------------


@pytest.fixture
def nginx_front(tmp_path: Path, server: ServerThread) -> Iterator[tuple[str, Path]]:
    """The site as installed, run by nginx in a temporary prefix: TLS on a free loopback port,
    proxying to the test server, logs in the prefix."""
    site = (DEPLOY / "nginx" / "idservice.conf").read_text()
    https, http = free_port(), free_port()
    site = (site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;")
                .replace("listen [::]:443 ssl http2;", "")
                .replace("listen 80;", f"listen 127.0.0.1:{http};")
                .replace("listen [::]:80;", "")
                .replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{server.port};")
                .replace("/var/log/nginx/", f"{tmp_path}/logs/"))
    assert nginx_test(tmp_path, site).returncode == 0
    # nginx_test wrote nginx.conf with `access_log off` at the http level: log there too, in
    # nginx's default format, so that any location the site forgot shows up.
    conf = tmp_path / "nginx.conf"
    conf.write_text(conf.read_text().replace(
        "access_log off;", f"access_log {tmp_path}/logs/default.log combined;"))
    process = subprocess.Popen([tool("nginx"), "-p", tmp_path, "-c", conf, "-g",
                                "daemon off; user root;"], stderr=subprocess.PIPE, text=True)
    base = f"https://127.0.0.1:{https}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/healthz", verify=False, timeout=2)
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        yield base, tmp_path / "logs"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_nginx_logs_no_query_strings_and_passes_the_services_csp(
        nginx_front: tuple[str, Path]) -> None:
    base, logs = nginx_front
    with httpx.Client(base_url=base, verify=False, timeout=30) as client:
        search = client.get("/v1/persons", params={
            "full_name": "Nguyễn Thị Minh Anh", "date_of_birth": "2024-03-02",
            "purpose": "xác minh hồ sơ"}, headers={"Referer": f"{base}/ui/events?pin=052"})
        assert search.status_code == 401  # no token; the query was sent all the same
        read = client.get("/v1/persons/052324000001", params={"purpose": "kiem-tra"})
        assert read.status_code == 401
        ui = client.get("/ui/login")
        for response in (search, ui):
            assert len(response.headers.get_list("content-security-policy")) == 1
            assert response.headers["x-frame-options"] == "DENY"
        assert search.headers["content-security-policy"] == "default-src 'none'; " \
            "frame-ancestors 'none'"
        assert "script-src 'self'" in ui.headers["content-security-policy"]
    time.sleep(0.2)  # nginx writes the log line after the response
    written = "".join(p.read_text() for p in logs.glob("*.log"))
    assert '"GET /v1/persons HTTP/1.1" 401' in written, written
    assert "/v1/persons/052324000001 " in written
    for secret in ("full_name", "Nguy", "purpose", "kiem-tra", "?", "pin=052"):
        assert secret not in written, (secret, written)

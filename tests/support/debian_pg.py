"""Debian's PostgreSQL server (package `postgresql`, /usr/lib/postgresql/<major>/bin), run by
the tests themselves: a throw-away cluster in a temp dir on a loopback TCP port.

This is the production path the embedded cluster does not exercise: TCP, scram-sha-256
password authentication (no trust anywhere), URLs that carry credentials, fsync on, and the
server's own version (15 on Debian 12). The same class builds the primary and the synchronous
standby of the failover test (`tests/ha/`).

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user
the package creates, and every server program runs as that user; otherwise as ourselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from idservice.db.embedded import EmbeddedPostgres
from idservice.db.roles import (
    ADMIN_ROLE,
    APP_ROLE,
    AUDIT_ROLE,
    OWNER_ROLE,
    DatabaseUrls,
    ensure_database,
)

__all__ = [
    "ENV_VAR",
    "DebianCluster",
    "EmbeddedServer",
    "PgServer",
    "debian_bin",
    "make_cluster_dir",
    "remove_cluster_dir",
    "selected_server",
    "with_password",
]

ENV_VAR = "IDSERVICE_TEST_PG"
SERVERS = ("embedded", "debian")
SUPERUSER = "postgres"
REPLICATION_ROLE = "replicator"
LOGIN_ROLES = (OWNER_ROLE, APP_ROLE, AUDIT_ROLE, ADMIN_ROLE)


def selected_server() -> str:
    """`embedded` (default) or `debian`, from IDSERVICE_TEST_PG."""
    value = os.environ.get(ENV_VAR, "").strip().lower() or "embedded"
    if value not in SERVERS:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of {', '.join(SERVERS)}")
    return value


def debian_bin(program: str) -> Path:
    """A server program of the newest Debian PostgreSQL installed (`apt-get install postgresql`)."""
    base = Path("/usr/lib/postgresql")
    majors = sorted((p for p in base.glob("*") if (p / "bin" / program).exists()),
                    key=lambda p: int(p.name) if p.name.isdigit() else 0)
    if not majors:
        raise RuntimeError(f"{program} not found under {base}: run scripts/bootstrap.sh "
                           "(installs Debian's postgresql)")
    return majors[-1] / "bin" / program


def with_password(url: str, password: str) -> str:
    """`url` with `password` for the user it names."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


class PgServer(Protocol):
    """What the test fixtures need from a PostgreSQL server, embedded or Debian's."""

    @property
    def superuser_url(self) -> str: ...

    async def credentials(self, urls: DatabaseUrls) -> DatabaseUrls:
        """`urls` (as `ensure_database` returns them) made usable against this server."""

    async def ensure_database(self, database: str = "idservice") -> DatabaseUrls:
        """Roles and `database` (idempotent), with URLs that log in."""

    def stop(self) -> None: ...


class EmbeddedServer:
    """The embedded cluster: trust on its private unix socket, so URLs need no password."""

    def __init__(self, embedded: EmbeddedPostgres) -> None:
        self.embedded = embedded
        self._url = embedded.ensure_running()

    @property
    def superuser_url(self) -> str:
        return self._url

    async def credentials(self, urls: DatabaseUrls) -> DatabaseUrls:
        return urls

    async def ensure_database(self, database: str = "idservice") -> DatabaseUrls:
        return await ensure_database(self._url, database)

    def stop(self) -> None:
        self.embedded.stop()


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gid: int
    switch: bool


def _account() -> _Account:
    if os.geteuid() != 0:
        return _Account(pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), os.getegid(), False)
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("no `postgres` system user: install Debian's postgresql") from exc
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid, True)


class DebianCluster:
    """One cluster (initdb + pg_ctl) in `directory`, listening on 127.0.0.1:`port` only."""

    def __init__(self, directory: Path, port: int, *, name: str = "pg") -> None:
        self.directory = directory
        self.port = port
        self.name = name
        self.pgdata = directory / name
        self.logfile = directory / f"{name}.log"
        self.account = _account()
        self.superuser_password = secrets.token_hex(16)
        self.role_passwords = {role: secrets.token_hex(16) for role in LOGIN_ROLES}
        self.replication_password = secrets.token_hex(16)
        self._passwords_set = False

    # -- URLs ------------------------------------------------------------------------------

    @property
    def superuser_url(self) -> str:
        return self.url(SUPERUSER, self.superuser_password, "postgres")

    def url(self, user: str, password: str, database: str) -> str:
        return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
                f"@127.0.0.1:{self.port}/{quote(database, safe='')}")

    def dsn(self, user: str, password: str, database: str = "postgres") -> str:
        """A libpq keyword/value connection string (pg_basebackup, primary_conninfo)."""
        return (f"host=127.0.0.1 port={self.port} user={user} password={password} "
                f"dbname={database}")

    async def credentials(self, urls: DatabaseUrls) -> DatabaseUrls:
        """Give the login roles their scram passwords (once) and put them in the URLs."""
        if not self._passwords_set:
            conn = await asyncpg.connect(self.superuser_url)
            try:
                for role, password in self.role_passwords.items():
                    # the password as a literal: ALTER ROLE takes no parameters
                    literal = await conn.fetchval("SELECT quote_literal($1::text)", password)
                    ident = await conn.fetchval("SELECT quote_ident($1::text)", role)
                    await conn.execute(f"ALTER ROLE {ident} PASSWORD {literal}")
            finally:
                await conn.close()
            self._passwords_set = True
        return replace(
            urls,
            owner=with_password(urls.owner, self.role_passwords[OWNER_ROLE]),
            service=with_password(urls.service, self.role_passwords[APP_ROLE]),
            auditor=with_password(urls.auditor, self.role_passwords[AUDIT_ROLE]),
            admin=with_password(urls.admin, self.role_passwords[ADMIN_ROLE]),
        )

    async def ensure_database(self, database: str = "idservice") -> DatabaseUrls:
        return await self.credentials(await ensure_database(self.superuser_url, database))

    # -- lifecycle -------------------------------------------------------------------------

    def _run(self, args: list[str], *, timeout: float = 120,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.account.switch:
            kwargs = {"user": self.account.uid, "group": self.account.gid, "extra_groups": []}
            env["HOME"] = str(self.directory)
        result = subprocess.run(args, cwd=self.directory, env=env, capture_output=True,
                                text=True, timeout=timeout, check=False,
                                **kwargs)  # type: ignore[call-overload]
        if check and result.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() \
                else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}\n{log}")
        return result

    def _own(self, path: Path) -> None:
        if self.account.switch:
            os.chown(path, self.account.uid, self.account.gid)

    def _prepare_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self._own(self.directory)

    def init(self, *, settings: dict[str, str] | None = None,
             replication: bool = False) -> DebianCluster:
        """initdb with scram-sha-256 for TCP (peer on the private socket), then our settings."""
        self._prepare_directory()
        pwfile = self.directory / "superuser.pw"
        pwfile.write_text(self.superuser_password + "\n")
        pwfile.chmod(0o600)
        self._own(pwfile)
        try:
            self._run([str(debian_bin("initdb")), "-D", str(self.pgdata), "-U", SUPERUSER,
                       f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer",
                       "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"])
        finally:
            pwfile.unlink()
        hba = ["local all all peer",
               "host all all 127.0.0.1/32 scram-sha-256"]
        if replication:
            hba.append(f"host replication {REPLICATION_ROLE} 127.0.0.1/32 scram-sha-256")
        (self.pgdata / "pg_hba.conf").write_text("\n".join(hba) + "\n")
        self.configure({
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "logging_collector": "off",
            **(settings or {}),
        })
        return self

    def configure(self, settings: dict[str, str]) -> None:
        """Append settings to postgresql.conf (a later line wins over an earlier one)."""
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as f:
            f.write("\n# tests/support/debian_pg.py\n")
            for key, value in settings.items():
                f.write(f"{key} = {value}\n")

    def start(self) -> DebianCluster:
        self._run([str(debian_bin("pg_ctl")), "start", "-D", str(self.pgdata), "-w",
                   "-t", "60", "-l", str(self.logfile)])
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run([str(debian_bin("pg_ctl")), "stop", "-D", str(self.pgdata), "-m", mode,
                       "-w", "-t", "60"], check=False)

    def promote(self) -> None:
        self._run([str(debian_bin("pg_ctl")), "promote", "-D", str(self.pgdata), "-w",
                   "-t", "60"])

    def postmaster_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash or a lost machine would: no shutdown checkpoint,
        no goodbye to clients. Its backends notice the dead postmaster and exit on their own;
        the server's port is refused from now on."""
        pid = self.postmaster_pid()
        assert pid is not None, "server is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise TimeoutError(f"postmaster {pid} survived SIGKILL")

    def kill_orphans(self) -> None:
        """After `kill`: SIGKILL backends still holding the data dir (they exit by themselves
        within moments; this makes clean-up independent of that)."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if Path(proc / "cwd").resolve() == self.pgdata.resolve():
                    os.kill(int(proc.name), signal.SIGKILL)

    # -- replication -----------------------------------------------------------------------

    def create_replication_role(self, slot: str) -> None:
        async def main() -> None:
            conn = await asyncpg.connect(self.superuser_url)
            try:
                literal = await conn.fetchval("SELECT quote_literal($1::text)",
                                              self.replication_password)
                await conn.execute(f"CREATE ROLE {REPLICATION_ROLE} LOGIN REPLICATION "
                                   f"PASSWORD {literal}")
                await conn.execute("SELECT pg_create_physical_replication_slot($1)", slot)
            finally:
                await conn.close()

        asyncio.run(main())

    def base_backup_to(self, standby: DebianCluster, *, slot: str,
                       application_name: str) -> None:
        """`standby` becomes a streaming standby of this cluster, from pg_basebackup, using
        `slot` and announcing itself as `application_name` (synchronous_standby_names)."""
        standby._prepare_directory()
        standby._run([str(debian_bin("pg_basebackup")), "-D", str(standby.pgdata),
                      "-d", self.dsn(REPLICATION_ROLE, self.replication_password),
                      "-X", "stream", "-S", slot, "-c", "fast", "--no-sync"], timeout=120)
        (standby.pgdata / "standby.signal").touch()
        standby._own(standby.pgdata / "standby.signal")
        conninfo = (f"{self.dsn(REPLICATION_ROLE, self.replication_password)} "
                    f"application_name={application_name}")
        standby.superuser_password = self.superuser_password
        standby.role_passwords = dict(self.role_passwords)
        standby._passwords_set = self._passwords_set
        standby.configure({
            "port": str(standby.port),
            "unix_socket_directories": f"'{standby.directory}'",
            "primary_conninfo": f"'{conninfo}'",
            "primary_slot_name": f"'{slot}'",
            "hot_standby": "on",
            # once promoted it is alone: it must not wait for a standby of its own
            "synchronous_standby_names": "''",
        })


def make_cluster_dir(prefix: str) -> Path:
    """A private temp dir for clusters, owned by the servers' account (they cannot reach into
    a root-only dir); removed by the caller with `remove_cluster_dir`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    account = _account()
    if account.switch:
        os.chown(path, account.uid, account.gid)
    return path


def remove_cluster_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

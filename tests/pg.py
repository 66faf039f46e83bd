"""A throwaway PostgreSQL cluster for the tests: its own folder, its own port, gone afterwards.

``start_cluster(base)`` runs ``initdb`` into a fresh folder under ``base``, starts the server on
127.0.0.1 at a free port (its unix socket in that folder too), creates the database ``conveyor``
and returns a :class:`Cluster`; ``Cluster.stop()`` stops the server and removes the folder.

As root (CI), PostgreSQL refuses to run, so ``initdb`` and ``pg_ctl`` run as the ``postgres``
system user that Debian's package creates; anyone else runs them as themselves. Every start takes
a new folder and a new port, and first clears away the folders of earlier runs whose test
process is gone (killed before it could stop its cluster), so a dead cluster never gets in the
way of the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PREFIX = "conveyor-pg-"
USER = "postgres"
DBNAME = "conveyor"
OWNER_FILE = "owner.pid"
# Settings for a server whose data is thrown away: no durability, only loopback.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
INSTALL_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; "
    "macOS: `brew install postgresql`), set CONVEYOR_PG_BINDIR to the folder holding initdb "
    "and pg_ctl, or set CONVEYOR_TEST_PG to the URL of a server to test against"
)
START_ATTEMPTS = 5
STALE_UNOWNED_SECONDS = 3600.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be started here; the message says why and what to do."""


@dataclass
class Cluster:
    """A running throwaway server. ``url`` is a SQLAlchemy URL of its database ``conveyor``."""

    folder: Path
    port: int
    bindir: Path
    run_as: pwd.struct_passwd | None
    user: str = USER
    dbname: str = DBNAME
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def conninfo(self) -> str:
        """The same database as a libpq connection string, for psycopg."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def logfile(self) -> Path:
        return self.folder / "server.log"

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove its folder. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _stop_server(self.bindir, self.data, self.run_as)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.logfile, lines)


def start_cluster(base: Path) -> Cluster:
    """Start a fresh cluster in a new folder under ``base`` (which the server's user must reach).

    Raises :class:`PostgresUnavailable` with the reason (and the server's log) if it can't.
    """
    bindir = find_bindir()
    run_as = _server_user()
    reap_stale(base)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    try:
        (folder / OWNER_FILE).write_text(f"{os.getpid()}\n")
        folder.chmod(0o755)
        if run_as is not None:
            os.chown(folder, run_as.pw_uid, run_as.pw_gid)
        cluster = _init_and_start(folder, bindir, run_as)
    except BaseException:
        if (folder / "data" / "postmaster.pid").exists():
            _stop_server(bindir, folder / "data", run_as)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    # A backstop for a session that ends without its fixture's teardown.
    atexit.register(cluster.stop)
    return cluster


def default_base() -> Path:
    """Where clusters go: /tmp (short, so the unix socket's path fits; reachable by postgres)."""
    tmp = Path("/tmp")
    return tmp if tmp.is_dir() else Path(tempfile.gettempdir())


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: $CONVEYOR_PG_BINDIR, PATH, or Debian's."""
    candidates: list[Path] = []
    env = os.environ.get("CONVEYOR_PG_BINDIR")
    if env:
        candidates.append(Path(env))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    # Debian/Ubuntu keep the server's programs off PATH, one folder per major version.
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)],
        reverse=True,
    )
    candidates.extend(debian)
    for cand in candidates:
        if all(os.access(cand / prog, os.X_OK) for prog in ("initdb", "pg_ctl", "postgres")):
            return cand
    raise PostgresUnavailable(f"PostgreSQL's initdb and pg_ctl were not found: {INSTALL_HINT}")


def reap_stale(base: Path) -> None:
    """Stop and remove clusters under ``base`` left by test processes that are gone."""
    bindir: Path | None = None
    for folder in base.glob(f"{PREFIX}*"):
        try:
            if not folder.is_dir() or not _is_stale(folder):
                continue
            data = folder / "data"
            if (data / "postmaster.pid").exists():
                bindir = bindir or find_bindir()
                _stop_server(bindir, data, _server_user())
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue  # another process is reaping it, or it is not ours to touch


def _is_stale(folder: Path) -> bool:
    try:
        pid = int((folder / OWNER_FILE).read_text().strip())
    except FileNotFoundError:
        # Made by mkdtemp a moment ago and not yet marked, or by something older than us.
        return time.time() - folder.stat().st_mtime > STALE_UNOWNED_SECONDS
    except ValueError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def _server_user() -> pwd.struct_passwd | None:
    """The system user to run the server as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root, and PostgreSQL refuses to run as root, but there is no {USER!r} "
            f"system user to run it as: {INSTALL_HINT}"
        ) from None


def _run(
    args: Sequence[str | Path], run_as: pwd.struct_passwd | None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    # libpq's variables from the caller's environment must not steer our own server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if run_as is None:
        return subprocess.run(
            [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    env.update(HOME=run_as.pw_dir, USER=run_as.pw_name, LOGNAME=run_as.pw_name)
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        user=run_as.pw_uid,
        group=run_as.pw_gid,
        extra_groups=[],
    )


def _init_and_start(folder: Path, bindir: Path, run_as: pwd.struct_passwd | None) -> Cluster:
    data = folder / "data"
    proc = _run(
        [
            bindir / "initdb",
            "-D",
            data,
            "-U",
            USER,
            "-A",
            "trust",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        run_as,
        cwd=folder,
    )
    if proc.returncode != 0:
        who = f" as {run_as.pw_name}" if run_as else ""
        raise PostgresUnavailable(
            f"initdb{who} into {data} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\n# conveyor tests: a throwaway server\n")
        for key, value in {**SETTINGS, "unix_socket_directories": f"'{folder}'"}.items():
            conf.write(f"{key} = {value}\n")

    cluster = Cluster(folder=folder, port=0, bindir=bindir, run_as=run_as)
    for _attempt in range(START_ATTEMPTS):
        # Free now; another process may take it before the server binds it, hence the retries.
        cluster.port = _free_port()
        proc = _run(
            [
                bindir / "pg_ctl",
                "-D",
                data,
                "-w",
                "-t",
                "60",
                "-l",
                cluster.logfile,
                "-o",
                f"-p {cluster.port}",
                "start",
            ],
            run_as,
            cwd=folder,
        )
        if proc.returncode == 0:
            break
        log = cluster.log_tail()
        if "could not bind" in log or "already in use" in log:
            continue
        raise PostgresUnavailable(
            f"pg_ctl start failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}\n"
            f"server log {cluster.logfile}:\n{log}"
        )
    else:
        raise PostgresUnavailable(
            f"no free port after {START_ATTEMPTS} tries; server log:\n{cluster.log_tail()}"
        )

    try:
        with psycopg.connect(
            host=cluster.host, port=cluster.port, user=USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{DBNAME}"')
    except psycopg.Error as exc:
        raise PostgresUnavailable(
            f"the server started but CREATE DATABASE failed: {exc}\n{cluster.log_tail()}"
        ) from exc
    return cluster


def _stop_server(bindir: Path, data: Path, run_as: pwd.struct_passwd | None) -> None:
    # Immediate: nothing to save. A server that is not running makes pg_ctl fail; that's fine.
    cwd = data.parent if data.parent.is_dir() else Path("/")
    with contextlib.suppress(OSError):
        _run([bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], run_as, cwd=cwd)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"

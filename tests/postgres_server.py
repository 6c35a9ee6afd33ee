"""A throwaway PostgreSQL server for the tests: its own cluster, folder and loopback port.

It never touches a system cluster (such as the one Debian's package starts on 5432): initdb
makes a fresh data folder and the server listens on a free port that we pick.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import quote

PASSWORD = "s3cret-pw"
SUPERUSER = "epochal"
INSTALL_HINT = "PostgreSQL's server binaries (initdb, pg_ctl) are needed: apt-get install postgresql"


class PostgresMissing(RuntimeError):
    """No initdb/pg_ctl on this machine; a distinct type so that callers can skip on it and on nothing else."""


def find_server_binaries() -> tuple[Path, Path]:
    """Finds initdb and pg_ctl.

    Debian keeps them off PATH, under /usr/lib/postgresql/VERSION/bin; the newest version there wins,
    then PATH.

    Returns:
        The paths of initdb and pg_ctl.

    Raises:
        PostgresMissing: neither place has both.
    """

    def version(initdb: str) -> tuple[int, ...]:
        # Sort "9.6" < "15" numerically, not as strings.
        return tuple(int(part) for part in re.findall(r"\d+", Path(initdb).parent.parent.name))

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in map(Path, candidates):
        pg_ctl = initdb.with_name("pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    raise PostgresMissing(INSTALL_HINT)


def _free_port() -> int:
    # The kernel hands out a free port for port 0; we release it and let PostgreSQL bind it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """A PostgreSQL cluster in ``folder``: data in ``folder/data``, log in ``folder/log``.

    As root, initdb and pg_ctl refuse to run, so they run as the ``postgres`` user and the folder
    is handed to that user; otherwise they run as ourselves.

    Args:
        folder: where the cluster lives; removed by :meth:`close`. As root, the ``postgres`` user
            must be able to reach it (pytest's own temp folders are private to root).

    Raises:
        PostgresMissing: the server binaries are not installed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.log = self.folder / "log"
        self.initdb, self.pg_ctl = find_server_binaries()
        self.port: int | None = None
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [os.fspath(part) for part in command]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # cwd: the postgres user may not be allowed into our working directory.
        result = subprocess.run(argv, check=False, cwd=self.folder, capture_output=True, text=True)
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
                f"server log {self.log}:\n{log}"
            )
        return result

    def _init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        pwfile = self.folder / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            self._run(
                self.initdb,
                "-D", self.data,
                "-U", SUPERUSER,
                "--pwfile", pwfile,
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",  # a throwaway cluster: no need to wait for the disk
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        self.port = _free_port()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            # Our own socket folder: Debian's default /var/run/postgresql belongs to the system cluster.
            "unix_socket_directories": f"'{self.folder}'",
            # Durability costs time and a test database is thrown away; a crash test uses
            # stop("immediate"), which still recovers from the WAL as the OS keeps the writes.
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "128MB",
        }
        # Appended, so these win over initdb's defaults; appending keeps the file's owner.
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# epochal tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        """Starts the server, making the cluster on the first call; a no-op while it runs."""
        if self.port is None:
            self._init()
        if self.running:
            return
        self._run(self.pg_ctl, "-D", self.data, "-l", self.log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stops the server and waits for it to go.

        Args:
            mode: pg_ctl's shutdown mode: "smart", "fast", or "immediate", which simulates a crash
                (no checkpoint; the next start recovers from the WAL).
        """
        if self.running:
            self._run(self.pg_ctl, "-D", self.data, "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        """Whether the server is up, as pg_ctl sees it."""
        if self.port is None or not self.data.exists():
            return False
        # pg_ctl status: 0 running, 3 not running, 4 no data folder.
        return self._run(self.pg_ctl, "-D", self.data, "status", check=False).returncode == 0

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str = PASSWORD) -> str:
        """A connection URL over TCP to this server.

        Args:
            database: the database to connect to.
            user: the role to log in as.
            password: its password.

        Returns:
            ``postgresql://USER:PASSWORD@127.0.0.1:PORT/DATABASE``.
        """
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{quote(database)}"

    def _admin(self, statement: str, name: str) -> None:
        # Imported here: the root conftest imports this module, and psycopg is only a [postgres] extra.
        import psycopg
        from psycopg import sql

        # Autocommit: CREATE/DROP DATABASE cannot run inside a transaction.
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    def create_database(self, name: str) -> None:
        """Creates an empty database ``name``."""
        self._admin("CREATE DATABASE {}", name)

    def drop_database(self, name: str) -> None:
        """Drops database ``name`` if it exists, ending any sessions still connected to it."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    def close(self) -> None:
        """Stops the server (fast, else immediate) and removes its folder."""
        try:
            self.stop("fast")
        except RuntimeError:
            self.stop("immediate")
        finally:
            # As root we may remove the postgres user's files; otherwise they are ours.
            shutil.rmtree(self.folder, ignore_errors=True)

"""A throwaway real PostgreSQL (Debian's package) on loopback: one server per test session,
a fresh database per test."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.smtp import free_port


def _bin() -> Path:
    """Debian's PostgreSQL binaries (the newest installed version), or $PG_BIN."""
    if "PG_BIN" in os.environ:
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    return found[-1] if found else Path("/usr/lib/postgresql/15/bin")


BIN = _bin()
USER = "router"
_numbers = itertools.count(1)


def postgres_available() -> bool:
    """True when Debian's PostgreSQL binaries are installed here."""
    return (BIN / "initdb").is_file() and (BIN / "pg_ctl").is_file()


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1:`port`.

    Run as the `postgres` user when we are root (initdb refuses root), else as ourselves.
    `fsync`: as production runs it (every commit waits for its WAL flush to disk); off by
    default for the functional tests' speed, on wherever a figure is taken. `settings`:
    more `-c` settings for the server.
    """

    def __init__(
        self,
        *,
        fsync: bool = False,
        settings: dict[str, str] | None = None,
        standby_of: PostgresServer | None = None,
    ) -> None:
        self.fsync = fsync
        self.settings = dict(settings or {})
        self.root = Path(tempfile.mkdtemp(prefix="router-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
        if standby_of is None:
            self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"
            )
        else:  # a streaming standby (`standby.signal` and the primary's address written by -R)
            self._run(
                "pg_basebackup", "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", USER,
                "-D", str(self.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
            )  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(BIN / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        """Start (or restart after `crash`) on the same port and data."""
        durability = "" if self.fsync else " -c fsync=off -c full_page_writes=off"
        more = "".join(f" -c {name}={value}" for name, value in self.settings.items())
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            f" -c max_connections=200{durability}{more}"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def promote(self) -> None:
        """Make a standby the primary (waits until it takes writes)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def synchronous(self) -> None:
        """Commit only once a standby has the WAL (`synchronous_standby_names = '*'`)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            connection.execute("SELECT pg_reload_conf()")

    @property
    def log(self) -> str:
        """The server's log so far."""
        path = self.root / "log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def crash(self) -> None:
        """Stop at once, as a power cut would (`-m immediate`: the next start replays WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"journal_{os.getpid()}_{next(_numbers)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, whoever is still connected."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.crash()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skips when the package is not installed)."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server (dropped after the test,
    so a long session does not fill the disk)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)

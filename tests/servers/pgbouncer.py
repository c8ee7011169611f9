"""A real PgBouncer (Debian's package) on loopback in front of a test PostgreSQL server, in
transaction (or session) pooling mode, with SCRAM authentication as managed services run it."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers.postgres import USER, PostgresServer
from tests.servers.smtp import free_port

PASSWORD = "pooled-secret"


def pgbouncer_available() -> bool:
    """True when Debian's pgbouncer is installed here."""
    return shutil.which("pgbouncer") is not None or Path("/usr/sbin/pgbouncer").is_file()


class PgBouncer:
    """One PgBouncer in a temporary directory, every database name passed on to `server`."""

    def __init__(self, server: PostgresServer, *, pool_mode: str = "transaction") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="router-pgbouncer-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.password = PASSWORD
        (self.root / "userlist.txt").write_text(f'"{USER}" "{PASSWORD}"\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            f"logfile = {self.root}/pgbouncer.log\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {self.root}/userlist.txt\n"
            f"pool_mode = {pool_mode}\n"
            "max_client_conn = 200\n"
            "default_pool_size = 20\n"
        )
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]
            account = pwd.getpwnam("postgres")
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.process = subprocess.Popen(
            [*self._as, binary, str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)  # polling a port that is not open yet
        raise AssertionError("pgbouncer did not start listening")

    def url(self, database_url: str) -> str:
        """The URL of the database `database_url` names on the server, through PgBouncer."""
        name = database_url.rsplit("/", 1)[1]
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    @property
    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)

"""No secret in the log, even when a library's exception quotes one; every line is JSON."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.serve import ServeProcess
from tests.servers.smtp import free_port

PASSWORD = "Pw-canary-5b1e-never-logged"


class WrongTagImapServer:
    """An IMAP server that answers LOGIN with another command's tag (a broken proxy does),
    which makes aioimaplib raise an `Abort` quoting the LOGIN command inside
    `data_received`. `logins` is set once it has seen two LOGINs (the router retried)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.login_count = 0
        self.logins = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> WrongTagImapServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 IDLE MOVE UIDPLUS] ready\r\n")
            for line in lines:
                tag, _, rest = line.decode().partition(" ")
                command = rest.split(" ", 1)[0].upper().strip()
                if command == "CAPABILITY":
                    conn.sendall(
                        f"* CAPABILITY IMAP4rev1 IDLE MOVE UIDPLUS\r\n{tag} OK\r\n".encode()
                    )
                elif command == "LOGIN":
                    conn.sendall(b"ZZZZ9 OK LOGIN completed\r\n")  # not the LOGIN's tag
                    self.login_count += 1
                    if self.login_count >= 2:
                        self.logins.set()
                else:
                    conn.sendall(f"{tag} BAD unexpected\r\n".encode())


@pytest.fixture
def imap_router(
    tmp_path: Path, rules_dir: Path
) -> Iterator[tuple[ServeProcess, WrongTagImapServer]]:
    """`serve` watching the wrong-tag IMAP server with a password that must stay secret."""
    shutil.copytree(rules_dir, tmp_path / "rules", dirs_exist_ok=True)
    with WrongTagImapServer() as imap:
        http_port = free_port()
        router = ServeProcess(
            tmp_path,
            {
                "ROUTER_INBOX": f"imap://officer@127.0.0.1:{imap.port}/INBOX",
                "ROUTER_INBOX_PASSWORD": PASSWORD,
                "ROUTER_HTTP": f"127.0.0.1:{http_port}",
                "ROUTER_STATE_DIR": str(tmp_path / "state"),
                "ROUTER_RULES_DIR": str(tmp_path / "rules"),
                "ROUTER_LOG_LEVEL": "debug",
            },
            http_port,
            http_port,
        )
        try:
            yield router, imap
        finally:
            router.stop()


def test_password_quoted_by_a_library_exception_is_not_logged(
    imap_router: tuple[ServeProcess, WrongTagImapServer],
) -> None:
    """A LOGIN answered with a wrong tag leaves no trace of the password on standard error."""
    router, imap = imap_router
    router.start()
    assert imap.logins.wait(60), router.log_text()
    assert router.terminate(15) == 0
    router.stop()
    text = router.log_text()
    assert PASSWORD not in text
    assert PASSWORD.replace("-", "") not in text.replace("-", "")
    assert "loop_exception" in text  # the handler logged the failure it was given


def test_library_records_are_one_json_object_per_line(tmp_path: Path) -> None:
    """A third-party multi-line warning with an exception is one masked JSON line."""
    import io

    from router.logs import configure_logging

    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    try:
        try:
            raise ValueError(f"LOGIN officer {PASSWORD}")
        except ValueError:
            logging.getLogger("psycopg.pool").warning(
                "error connecting:\nconnection to person@example.org failed", exc_info=True
            )
    finally:
        configure_logging("info", "json")
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["logger"] == "psycopg.pool"
    assert record["error"] == "ValueError"
    assert "person@" not in lines[0]
    assert PASSWORD not in lines[0]

"""A throwaway real Dovecot IMAP server on loopback, with trustme TLS, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.servers.ports import free_port
from tests.servers.token import TokenServer

_NOBODY = "nobody"
_NOGROUP = "nogroup"
_START_SECONDS = 10.0

_CONFIG = """\
base_dir = {run}
state_dir = {state}
instance_name = dovecot-test-{port}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechanisms}
mail_location = maildir:{root}/mail/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
{oauth_passdb}
{extra}
"""

# SASL XOAUTH2 / OAUTHBEARER with JWTs validated by Dovecot itself (RECIPES.md).
_OAUTH_PASSDB = """\
auth_failure_delay = 0
# No growing per-IP delay after refused logins (tests refuse tokens on purpose).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
"""
_OAUTH_EXT = """\
introspection_mode = local
local_validation_key_dict = fs:posix:prefix={root}/keys/
username_attribute = sub
issuers = {issuer}
"""


def dovecot_binary() -> str:
    """Dovecot's path: on PATH, or where Debian puts it (root's PATH has sbin; others may not)."""
    return shutil.which("dovecot") or "/usr/sbin/dovecot"


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Dovecot:
    """One Dovecot instance: `start()`, `stop()`, `restart()` keep the ports and the mail.

    Args:
        extra_config: more Dovecot settings appended to the config (e.g. `imap_capability`).
        oauth_key: an HS256 key (base64) to accept XOAUTH2 bearer JWTs signed with, issued by
            `oauth_issuer` with `sub` = the user (tests.servers.token); LOGIN still works.
    """

    user = "testuser"
    password = "secret"  # a throwaway test account

    def __init__(
        self,
        extra_config: str = "",
        *,
        oauth_key: str | None = None,
        oauth_issuer: str = "https://idp.test.local",
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.root.chmod(0o755)  # the unprivileged mail processes must traverse it
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self._extra = extra_config
        self._proc: subprocess.Popen[bytes] | None = None
        self._runs = 0
        self._deliveries = 0
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = self.root / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert.private_key_pem.write_to_path(str(self.root / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        self._oauth = oauth_key is not None
        if oauth_key is not None:
            keys = self.root / "keys" / "default" / "HS256"
            keys.mkdir(parents=True)
            (keys / "default").write_text(oauth_key)
            (self.root / "oauth2.conf.ext").write_text(
                _OAUTH_EXT.format(root=self.root, issuer=oauth_issuer)
            )
        mail = self.root / "mail"
        mail.mkdir()
        shutil.chown(mail, _NOBODY, _NOGROUP)

    @property
    def maildir(self) -> Path:
        """The user's Maildir (INBOX) on disk."""
        return self.root / "mail" / self.user / "Maildir"

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start with fresh run/ and state/ directories and wait until both ports accept."""
        self._runs += 1
        run, state = self.root / f"run{self._runs}", self.root / f"state{self._runs}"
        run.mkdir()
        state.mkdir()
        config = self.root / "dovecot.conf"
        config.write_text(
            _CONFIG.format(
                root=self.root,
                run=run,
                state=state,
                port=self.imap_port,
                tls_port=self.imaps_port,
                uid=_NOBODY,
                gid=_NOGROUP,
                extra=self._extra,
                oauth_mechanisms=" xoauth2 oauthbearer" if self._oauth else "",
                oauth_passdb=_OAUTH_PASSDB.format(root=self.root) if self._oauth else "",
            )
        )
        self._config = config
        self._proc = subprocess.Popen(
            [dovecot_binary(), "-F", "-c", str(config)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_port(self.imap_port)
        self._wait_port(self.imaps_port)

    def _wait_port(self, port: int) -> None:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return
            time.sleep(0.01)
        raise RuntimeError(f"dovecot did not listen on {port}: {self.log()}")

    def stop(self) -> None:
        """Kill the whole process group at once (clients see the connection drop)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(5)
        self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same ports and mail directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete every file."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        """Dovecot's own log, for failure messages."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib IMAP client on the plain port."""
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            imap.login(self.user, self.password)
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def append(
        self, raw: bytes, folder: str = "INBOX", *, arrived: float | None = None, flags: str = ""
    ) -> int:
        """Deliver `raw` into `folder` (created if missing) with APPEND; return its UID.

        Args:
            arrived: its INTERNALDATE (epoch seconds); now by default.
            flags: e.g. `(\\Seen \\Flagged)`.
        """
        with self.client() as imap:
            if folder.upper() != "INBOX":
                imap.create(_quote(folder))  # NO [ALREADYEXISTS] is fine
            when = imaplib.Time2Internaldate(arrived) if arrived is not None else None
            status, data = imap.append(_quote(folder), flags or None, when, raw)
            assert status == "OK", data
            match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert match, data
            return int(match.group(1))

    def deliver(self, raw: bytes) -> None:
        """Deliver `raw` into the INBOX's Maildir directly, as a local delivery agent would.

        Works while the server is stopped.
        """
        self._deliveries += 1
        name = f"{time.time_ns()}.test{self._deliveries}.localhost"
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        for path in (self.maildir.parent, self.maildir, *self.maildir.iterdir()):
            if path.is_dir():
                shutil.chown(path, _NOBODY, _NOGROUP)
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        shutil.chown(tmp, _NOBODY, _NOGROUP)
        tmp.rename(self.maildir / "new" / name)

    def uids(self, folder: str = "INBOX") -> list[int]:
        """The UIDs now in `folder` (empty if it does not exist)."""
        with self.client() as imap:
            status, _ = imap.select(_quote(folder), readonly=True)
            if status != "OK":
                return []
            _, data = imap.uid("SEARCH", "ALL")
            return [int(uid) for uid in (data[0] or b"").split()]

    def list_folder(self, folder: str = "INBOX") -> list[bytes]:
        """The raw messages in `folder`, in UID order (empty if it does not exist)."""
        messages = []
        with self.client() as imap:
            status, _ = imap.select(_quote(folder), readonly=True)
            if status != "OK":
                return []
            _, data = imap.uid("SEARCH", "ALL")
            for uid in (data[0] or b"").split():
                _, parts = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                messages.extend(part[1] for part in parts if isinstance(part, tuple))
        return messages

    def flags(self, folder: str = "INBOX") -> dict[str, str]:
        """Each message's FLAGS by Message-ID, without the per-session \\Recent (read-only)."""
        found = {}
        with self.client() as imap:
            imap.select(_quote(folder), readonly=True)
            _, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for part in data:
                if isinstance(part, tuple):
                    flags = re.search(rb"FLAGS \(([^)]*)\)", part[0])
                    message_id = part[1].decode().split(":", 1)[-1].strip()
                    names = flags.group(1).decode().split() if flags else []
                    found[message_id] = " ".join(n for n in names if n != "\\Recent")
        return found

    def recreate(self, folder: str) -> None:
        """DELETE and CREATE `folder` (it comes back empty, with a new UIDVALIDITY)."""
        with self.client() as imap:
            imap.delete(_quote(folder))
            imap.create(_quote(folder))

    def uidvalidity(self, folder: str = "INBOX") -> int:
        """The folder's current UIDVALIDITY."""
        with self.client() as imap:
            _, data = imap.status(_quote(folder), "(UIDVALIDITY)")
            match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert match, data
            return int(match.group(1))

    def reset_uidvalidity(self) -> int:
        """Make Dovecot forget the INBOX's UIDs (as after a mailbox rebuild); return the new value.

        Raises:
            AssertionError: if the UIDVALIDITY did not change.
        """
        was_running = self.running
        before = self.uidvalidity() if was_running else None
        self.stop()
        for path in self.maildir.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()
        self.start()
        after = self.uidvalidity()
        assert after != before, "UIDVALIDITY did not change"
        if not was_running:
            self.stop()
        return after

    def kill_connections(self) -> None:
        """Drop every client session while the server stays up."""
        subprocess.run(
            ["doveadm", "-c", str(self._config), "kick", self.user],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )


class StallingProxy:
    """A TCP proxy on loopback that can go silent, like a connection whose peer vanished.

    `stall()` makes every open connection swallow what it is sent without closing: the
    client's next command is never answered (a half-open connection). New connections made
    afterwards work normally.
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._open: list[dict[str, bool]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> int:
        """Listen on a free loopback port; return it."""
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def stall(self) -> None:
        """Make every open connection silent from now on."""
        for connection in self._open:
            connection["stalled"] = True

    async def say_bye(self, text: bytes) -> None:
        """Send `* BYE <text>` to every open client and close (Exchange Online's token expiry)."""
        clients = [w for w in self._writers[::2] if not w.is_closing()]  # (client, upstream)
        for writer in clients:
            writer.write(b"* BYE " + text + b"\r\n")
            await writer.drain()
            writer.close()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self._target_port
        )
        self._writers += [writer, upstream_writer]
        state = {"stalled": False}
        self._open.append(state)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, state))
            self._tasks.add(task)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, state: dict[str, bool]
    ) -> None:
        while data := await source.read(65536):
            if not state["stalled"]:
                sink.write(data)
                await sink.drain()
        sink.close()


def require_dovecot() -> None:
    """Skip the calling test when the dovecot binary is not installed."""
    if not Path(dovecot_binary()).exists():
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")


@pytest.fixture
def oauth_dovecot(token_server: TokenServer) -> Iterator[Dovecot]:
    """A started Dovecot that accepts XOAUTH2 with the `token_server`'s tokens (and LOGIN)."""
    require_dovecot()
    server = Dovecot(oauth_key=token_server.key_base64)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A started Dovecot with an empty mailbox; skipped when the binary is not installed."""
    require_dovecot()
    server = Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.close()

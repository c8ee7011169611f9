"""One logged-in IMAP connection on the inbox folder: the aioimaplib calls the IMAP inbox needs."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import aioimaplib
import structlog

from router.inbox.imap_support import encode_mailbox

log = structlog.get_logger(__name__)
# aioimaplib logs each command at debug; its XOAUTH2 line is base64 with the token inside.
logging.getLogger("aioimaplib").setLevel(logging.INFO)

T = TypeVar("T")

# Longest wait for any one answer before the connection is taken for dead (half-open).
COMMAND_TIMEOUT = 15.0
# A body download may take longer: allow at least this many bytes per second on top.
_MIN_BYTES_PER_SECOND = 200_000
_FETCH_LINE = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_SEARCH_LINE = re.compile(rb"(?:SEARCH)?[\d ]*")
_LITERAL = re.compile(rb"\{(\d+)\}$")


class ImapConnectionError(Exception):
    """The connection failed, was lost, timed out or answered something unusable: reconnect."""


class ImapAuthError(ImapConnectionError):
    """The server refused the user name and password, or the access token."""


class ImapTokenExpired(ImapConnectionError):
    """The server ended the session because the access token expired (Exchange Online's BYE)."""


class ImapFolderError(ImapConnectionError):
    """The inbox folder cannot be selected (missing, or no permission)."""


def _keepalive(transport: asyncio.BaseTransport | None) -> None:
    """Let the kernel notice a dead peer within a few minutes, even between IDLE re-issues."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class ImapSession:
    """A connection that is logged in and has the inbox folder selected.

    Every call either answers or raises `ImapConnectionError` within a bounded time; after
    that error the session is unusable and the caller closes it and reconnects.
    """

    def __init__(
        self, client: aioimaplib.IMAP4, lost: asyncio.Event, command_timeout: float
    ) -> None:
        self._client = client
        self._lost = lost
        self._timeout = command_timeout
        self._folders: set[str] = set()
        self._idle: asyncio.Future[Any] | None = None
        self.uidvalidity = 0
        self.uidnext = 0  # 0 when the server did not say
        self.bye = b""  # the server's last BYE line, if any
        # Set when a command's answer carried an untagged EXISTS: new mail announced outside
        # IDLE (e.g. during a MOVE) is not announced again, so the inbox must look for it.
        self.exists_seen = False

    @classmethod
    async def open(
        cls,
        *,
        host: str,
        port: int,
        user: str,
        password: str | None = None,
        token: str | None = None,
        folder: str,
        ssl_context: ssl.SSLContext | None,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> ImapSession:
        """Connect, log in (LOGIN with `password`, or XOAUTH2 with `token`) and select `folder`.

        Args:
            command_timeout: how long any one answer may take before the connection is taken
                for dead (a half-open TCP connection never answers).

        Raises:
            ImapAuthError: the login was refused.
            ImapFolderError: the folder cannot be selected.
            ImapConnectionError: anything else went wrong.
        """
        lost = asyncio.Event()
        client: aioimaplib.IMAP4
        if ssl_context is not None:
            client = aioimaplib.IMAP4_SSL(
                host, port, timeout=command_timeout, ssl_context=ssl_context
            )
        else:
            client = aioimaplib.IMAP4(host, port, timeout=command_timeout)
        # IMAP4_SSL does not take the callback; the protocol exists before the connection does.
        client.protocol.conn_lost_cb = lambda _exc: lost.set()
        session = cls(client, lost, command_timeout)
        session._watch_untagged()
        try:
            await session._guard(client.wait_hello_from_server())
            _keepalive(client.protocol.transport)
            if token is not None:
                response = await session._guard(client.xoauth2(user, token))
            else:
                response = await session._guard(client.login(user, password or ""))
            if response.result != "OK":
                raise ImapAuthError("login refused")
            await session._guard(client.protocol.capability())  # the post-login list has MOVE
            await session._select(folder)
        except BaseException:
            session.abort()
            raise
        return session

    async def _select(self, folder: str) -> None:
        response = await self._guard(self._client.select(encode_mailbox(folder)))
        if response.result != "OK":
            raise ImapFolderError(f"cannot select the inbox folder: {response.result}")
        for line in response.lines:
            uidnext = _UIDNEXT.search(bytes(line))
            if uidnext:
                self.uidnext = int(uidnext.group(1))
            match = _UIDVALIDITY.search(bytes(line))
            if match:
                self.uidvalidity = int(match.group(1))
        if not self.uidvalidity:
            raise ImapConnectionError("the server sent no UIDVALIDITY")

    async def _guard(self, awaitable: Awaitable[T], limit: float | None = None) -> T:
        """Await one client call, racing it against connection loss and a time limit."""
        limit = self._timeout if limit is None else limit
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if task in done:
            try:
                return task.result()
            except (aioimaplib.AioImapException, OSError, TimeoutError, EOFError) as exc:
                raise ImapConnectionError(f"{type(exc).__name__}: {exc}") from exc
        if lost in done:
            raise self._lost_error()
        raise ImapConnectionError(f"no answer within {limit:.0f} s")

    def _watch_untagged(self) -> None:
        """See every untagged line, including those aioimaplib drops.

        aioimaplib 2.0.3 discards an untagged `* n EXISTS` that arrives during a UID
        command ("ignored untagged response"). Dovecot does not announce that mail again
        when IDLE starts, so without this the message would wait for the next IDLE re-issue.
        """
        protocol = self._client.protocol
        original = protocol._untagged_response

        def untagged(line: bytes) -> Any:
            if line.endswith(b" EXISTS"):
                self.exists_seen = True
            if line.startswith(b"BYE"):
                self.bye = line
            return original(line)

        protocol._untagged_response = untagged
        continuation = protocol._continuation

        def answer_challenge(line: bytes) -> Any:
            # A refused XOAUTH2 gets a `+ <base64 error>` challenge; the client must answer
            # with an empty line to get the final NO (aioimaplib would wait for ever).
            pending = protocol.pending_sync_command
            if pending is not None and pending.name == "AUTHENTICATE":
                protocol.transport.write(b"\r\n")
                return None
            return continuation(line)

        protocol._continuation = answer_challenge

    def _check(self, response: Any, what: str) -> Any:
        if response.result != "OK":
            raise ImapConnectionError(f"{what} answered {response.result}")
        return response

    def has_capability(self, name: str) -> bool:
        """Whether the server announced `name` (e.g. MOVE, UIDPLUS)."""
        return bool(self._client.has_capability(name))

    async def search(self, *criteria: str) -> list[int]:
        """UIDs matching a UID SEARCH, ascending."""
        response = self._check(
            await self._guard(self._client.uid_search(*criteria, charset=None)), "UID SEARCH"
        )
        uids: set[int] = set()
        for line in response.lines[:-1]:
            if _SEARCH_LINE.fullmatch(bytes(line)):
                uids.update(int(token) for token in bytes(line).split() if token.isdigit())
        return sorted(uids)

    async def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID still present."""
        if not uids:
            return {}
        response = self._check(
            await self._guard(self._client.uid("fetch", _uid_set(uids), "(RFC822.SIZE)")),
            "UID FETCH",
        )
        sizes: dict[int, int] = {}
        for line in response.lines:
            if isinstance(line, bytes) and _FETCH_LINE.match(line):
                uid, size = _UID.search(line), _SIZE.search(line)
                if uid and size:
                    sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    async def fetch_lines(self, uids: Sequence[int], items: str) -> list[Any]:
        """The raw answer lines of a UID FETCH of `items` (literals arrive as bytearray)."""
        if not uids:
            return []
        response = self._check(
            await self._guard(self._client.uid("fetch", _uid_set(uids), items)), "UID FETCH"
        )
        return list(response.lines)

    async def fetch_part(self, uid: int, part: str, size_hint: int = 0) -> bytes | None:
        """One BODY.PEEK section of one message (never sets \\Seen); None if the UID is gone."""
        timeout = self._timeout + size_hint / _MIN_BYTES_PER_SECOND
        response = self._check(
            await self._guard(
                self._client.uid("fetch", str(uid), f"(UID BODY.PEEK[{part}])"), limit=timeout
            ),
            "UID FETCH",
        )
        lines = response.lines
        for index, line in enumerate(lines):
            if not (isinstance(line, bytes) and _FETCH_LINE.match(line) and b"BODY[" in line):
                continue
            match_uid = _UID.search(line)
            if match_uid and int(match_uid.group(1)) != uid:
                continue
            literal = _LITERAL.search(line)
            if literal and int(literal.group(1)) == 0:
                return b""
            if literal and index + 1 < len(lines) and isinstance(lines[index + 1], bytearray):
                return bytes(lines[index + 1])
        return None

    async def folders(self) -> set[str]:
        """The names of every folder (as the server spells them on the wire, unquoted)."""
        response = self._check(await self._guard(self._client.list('""', "*")), "LIST")
        names: set[str] = set()
        for line in response.lines[:-1]:
            text = bytes(line).decode("utf-8", "replace")
            if text.startswith("("):
                names.add(text.rsplit(" ", 1)[-1].strip('"'))
        return names

    async def ensure_folder(self, folder: str) -> None:
        """CREATE `folder` once per session; an existing folder is fine."""
        if folder in self._folders:
            return
        response = await self._guard(self._client.create(encode_mailbox(folder)))
        if response.result != "OK":
            # NO [ALREADYEXISTS] is the usual answer; anything else shows up on the MOVE.
            log.debug("imap.create_answered", result=response.result)
        self._folders.add(folder)

    async def move(self, uids: Sequence[int], folder: str) -> bool:
        """Move messages to `folder`. UIDs already gone count as moved.

        Returns:
            False if the server refused (the messages stay where they are).
        """
        uid_set, mailbox = _uid_set(uids), encode_mailbox(folder)
        if self.has_capability("MOVE"):
            response = await self._guard(self._client.uid("move", uid_set, mailbox))
            return bool(response.result == "OK")
        response = await self._guard(self._client.uid("copy", uid_set, mailbox))
        if response.result != "OK":
            return False
        self._check(
            await self._guard(self._client.uid("store", uid_set, "+FLAGS.SILENT", r"(\Deleted)")),
            "UID STORE",
        )
        if self.has_capability("UIDPLUS"):
            self._check(await self._guard(self._client.uid("expunge", uid_set)), "UID EXPUNGE")
        else:
            # Without UIDPLUS only a plain EXPUNGE exists; it also removes other \Deleted mail,
            # as any mail client's "compact" would.
            self._check(await self._guard(self._client.expunge()), "EXPUNGE")
        return True

    async def idle(
        self,
        seconds: float,
        wake: Iterable[asyncio.Event],
        on_started: Callable[[], None] = lambda: None,
    ) -> bool:
        """IDLE until new mail (True), a `wake` event, or `seconds` pass (False).

        Calls `on_started` once the server has accepted the IDLE. Ends the IDLE before
        returning, so the session can take commands again.
        """
        client = self._client
        self._idle = idle = await self._guard(client.idle_start(timeout=seconds + 5))
        on_started()
        new_mail = await self._wait_push(seconds, list(wake))
        client.idle_done()
        # aioimaplib issue #110: the IDLE future may never complete after a BYE; bounded wait.
        await self._guard(asyncio.shield(idle))
        self._idle = None
        return new_mail

    async def _wait_push(self, seconds: float, wake: list[asyncio.Event]) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not any(event.is_set() for event in wake):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            push = asyncio.ensure_future(self._client.wait_server_push(timeout=remaining))
            waiters = {push, *(asyncio.ensure_future(e.wait()) for e in [*wake, self._lost])}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if push.done() and not push.cancelled() and push.exception() is None:
                lines = [bytes(line) for line in push.result()]
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    return False
                bye = [line for line in lines if line.startswith(b"BYE")]
                if bye:
                    self.bye = bye[0]
                    raise self._lost_error()
                if any(line.endswith(b" EXISTS") for line in lines):
                    return True
            if self._lost.is_set():
                raise self._lost_error()
        return False

    def _lost_error(self) -> ImapConnectionError:
        """Why the session ended: an expired token (re-authenticate at once) or anything else."""
        if b"AccessTokenExpired" in self.bye or b"token expired" in self.bye.lower():
            return ImapTokenExpired("the server ended the session: access token expired")
        if self.bye:
            return ImapConnectionError("the server said BYE")
        return ImapConnectionError("connection lost")

    async def logout(self) -> None:
        """End politely (bounded), then drop the connection."""
        try:
            if self._idle is not None:
                self._client.idle_done()
                await self._guard(asyncio.shield(self._idle), limit=2.0)
            await self._guard(self._client.logout(), limit=2.0)
        except ImapConnectionError as exc:
            log.debug("imap.logout_failed", error=str(exc))
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection now and cancel the client's own pending tasks."""
        protocol = self._client.protocol
        for task in [*self._client.tasks, *protocol.tasks]:
            task.cancel()
        if self._idle is not None:
            self._idle.cancel()
        if protocol.transport is not None:
            protocol.transport.abort()
        self._client._client_task.cancel()


def _uid_set(uids: Iterable[int]) -> str:
    return ",".join(str(uid) for uid in uids)

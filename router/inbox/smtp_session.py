"""One SMTP session of the listener, bounded: who may connect, how long a command line or an
idle spell may be, how many recipients a message may have, and DATA read in one buffer."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, syntax

from router.core.mail.headers import DOT_ATOM_ADDRESS
from router.inbox.admission import Admission
from router.metrics import Metrics

log = structlog.get_logger(__name__)

# The stream reader's limit: a command line is at most this long before it is discarded
# unread. RFC 5321 allows 512 octets (aiosmtpd checks that per command); RFC 4954 lets an
# AUTH line reach 12288. DATA is read in pieces of this size, whatever its line lengths.
COMMAND_READ_LIMIT = 16384
# Outside DATA, this many octets without a line end is no SMTP client: the connection is
# closed rather than read to the end (a 24 MB EHLO would otherwise be drained through Python).
_COMMAND_LINE_CUTOFF = 1024 * 1024
# After this many refused RCPTs in one session the client is cut off: it is not a mail
# server delivering a message, and answering it costs the daemon time.
_EXCESS_RCPT_LIMIT = 1000
# DATA is answered 451 while less than this is left of the budget for all sessions.
_DATA_ROOM_MIN = 64 * 1024
_OVER_BUDGET = b"\x00over budget"  # `_read_data`'s answer when the budget is spent
# A plain `<local-part@domain>` (dot-atoms), with any parameters after a space: what mail
# servers send. Parsed here; anything else goes to aiosmtpd's parser (email's header token
# tree, which also defines a class at every call: costly on the event loop in a burst).
_PLAIN_ADDRESS = re.compile(rf"[ \t]*<({DOT_ATOM_ADDRESS})>(?:[ \t]+([^\s(].*))?\Z", re.DOTALL)


@dataclass(frozen=True)
class ListenerOptions:
    """Bounds and security of the embedded listener (see `router.inbox.smtp`)."""

    max_message_bytes: int
    max_sessions: int = 100
    # A tenth of the sessions: ten addresses, not five, to hold them all (issue 26).
    max_sessions_per_client: int = 10
    # DATA bytes all sessions hold at once; None: 4 x max_message_bytes (100 sessions of
    # 25 MB would otherwise be several GB, each message read into about three copies).
    data_budget_bytes: int | None = None
    max_recipients: int = 100  # RFC 5321 4.5.3.1.8: a server must take at least 100
    idle_seconds: float = 120.0  # between commands, and between pieces of DATA
    data_seconds: float = 900.0  # a whole DATA transfer
    session_seconds: float = 3600.0
    tls_context: ssl.SSLContext | None = None
    require_starttls: bool = False
    self_signed: Path | None = None  # the certificate made in the state directory, if one


class ListenerSMTP(SMTP):
    """aiosmtpd's SMTP session with the listener's bounds.

    DATA lines may be longer than RFC 5321's 1000 octets (some clients write HTML without
    breaks, and a 500 would bounce the referral): the message size cap bounds DATA, and
    it is collected in one buffer, never one object per line.
    """

    def __init__(
        self,
        handler: Any,
        *,
        options: ListenerOptions,
        admission: Admission,
        metrics: Metrics | None = None,
        **kwargs: Any,
    ) -> None:
        # Read by SMTP.__init__ when it builds the stream reader: set it first.
        self.line_length_limit = COMMAND_READ_LIMIT
        super().__init__(
            handler,
            data_size_limit=options.max_message_bytes,
            timeout=options.idle_seconds,
            tls_context=options.tls_context,
            require_starttls=options.require_starttls,
            **kwargs,
        )
        self.options = options
        self.admission = admission
        self.metrics = metrics
        self._admitted_peer: Any = None
        self._refused = False
        self._excess_rcpt = 0
        self._in_data = False
        self._line_octets = 0  # outside DATA: octets received since the last line end
        self._lifetime: asyncio.TimerHandle | None = None
        self._storing = False  # the handler is storing a message: let it answer
        self._held = 0  # DATA bytes counted against the admission's budget

    def __dir__(self) -> list[str]:
        """Only the command and AUTH methods. aiosmtpd builds its tables of them from `dir()`
        (and `inspect.getmembers`, which looks up every name) at every connection: a full
        `dir()` of a session showed in the daemon's profile in a burst."""
        return _session_methods(type(self))

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parsing (address, parameters), a plain address without it."""
        plain = plain_address(arg)
        if plain is None:
            return super()._getaddr(arg)
        address, rest = plain
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    # --- admission ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted_peer is None and self._original_transport is None:
            peer = transport.get_extra_info("peername")
            refusal = self.admission.admit(peer)
            if refusal is not None:
                self._refused = True
                if self.metrics is not None:
                    self.metrics.smtp_refused.labels(refusal.reason).inc()
                log.warning("smtp_refused", reason=refusal.reason)
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(refusal.reply)
                transport.close()
                return
            self._admitted_peer = peer
            self.admission.sessions.add(self)
            loop = asyncio.get_running_loop()
            self._lifetime = loop.call_later(self.options.session_seconds, transport.close)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._admitted_peer is not None:
            self.admission.release(self._admitted_peer)
            self.admission.sessions.discard(self)
            self._admitted_peer = None
        if self._lifetime is not None:
            self._lifetime.cancel()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_data:
            line_end = data.rfind(b"\n")
            self._line_octets = (
                len(data) - line_end - 1 if line_end >= 0 else self._line_octets + len(data)
            )
            if self._line_octets > _COMMAND_LINE_CUTOFF and self.transport is not None:
                log.warning("smtp_line_too_long", octets=self._line_octets)
                assert isinstance(self.transport, asyncio.WriteTransport)
                self.transport.write(b"500 5.5.2 Line too long; closing the connection\r\n")
                self.transport.close()
                return
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    # --- recipients ---------------------------------------------------------------------

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        envelope = self.envelope
        if envelope is not None and len(envelope.rcpt_tos) >= self.options.max_recipients:
            self._excess_rcpt += 1
            if self._excess_rcpt > _EXCESS_RCPT_LIMIT:
                log.warning("smtp_too_many_recipients", refused=self._excess_rcpt)
                await self.push("421 4.7.0 Too many recipients; closing the connection")
                self._close()
                return
            await self.push("452 4.5.3 Too many recipients")
            return
        await super().smtp_RCPT(arg)

    # --- DATA ---------------------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        room = self.admission.data_room()
        if room is not None and room < min(_DATA_ROOM_MIN, self.options.max_message_bytes):
            log.warning("smtp_data_budget", stage="DATA", held=self.admission.data_held)
            await self.push("451 4.3.1 Too much mail in transit; try again later")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._in_data = True
        try:
            content = await self._read_data()
            if content is _OVER_BUDGET:
                log.warning("smtp_data_budget", stage="transfer", held=self.admission.data_held)
                await self.push("421 4.3.1 Too much mail in transit; try again later")
                self._close()
                return
            if content is None:
                await self.push("552 5.3.4 Message too big for this system")
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                return
            self.envelope.content = content
            self.envelope.original_content = content
            self._storing = True
            status = await self._call_handler_hook("DATA")
        finally:
            self._in_data, self._line_octets, self._storing = False, 0, False
            self.admission.give_data(self._held)
            self._held = 0
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status if isinstance(status, str) else "250 OK")

    def shut_down(self) -> None:
        """The listener stops: tell the client 421 and close, unless a message is being
        stored (it gets its answer, then the connection closes with the server)."""
        if self._storing or self.transport is None or self.transport.is_closing():
            return
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(b"421 4.3.2 Service shutting down; try again later\r\n")
        self._close()

    async def _read_data(self) -> bytes | None:
        """Read DATA up to the lone dot; undo dot-stuffing (RFC 5321 4.5.2).

        Returns:
            The message, or None when it is over the size cap (read to its end, not kept),
            or `_OVER_BUDGET` when all sessions together hold too much DATA already.

        Raises:
            TimeoutError: the whole transfer took longer than `data_seconds` (the session
                is closed).
        """
        limit = self.options.max_message_bytes
        deadline = time.monotonic() + self.options.data_seconds
        data = bytearray()
        too_big = False
        tail = b"\r\n"  # what precedes the next piece: DATA starts at the start of a line
        while True:
            if time.monotonic() > deadline:
                self._close()
                raise TimeoutError("DATA transfer too slow")
            try:
                piece = await self._reader.readuntil(b".\r\n")
                ended = (tail + piece[:-3])[-2:] == b"\r\n"
            except asyncio.LimitOverrunError as exc:
                piece = await self._reader.read(exc.consumed)
                ended = False
            self._reset_timeout()  # progress: the idle clock starts again
            if ended:
                piece = piece[:-3]
            if not too_big:
                if not self.admission.take_data(len(piece)):
                    return _OVER_BUDGET
                self._held += len(piece)
                data += piece
                too_big = len(data) > limit
                if too_big:
                    data = bytearray()
                    self.admission.give_data(self._held)
                    self._held = 0
            tail = (tail + piece)[-2:]
            if ended:
                break
        if too_big:
            return None
        if data.startswith(b"."):
            del data[0]
        return bytes(data).replace(b"\r\n.", b"\r\n")

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


_METHODS: dict[type, list[str]] = {}


def _session_methods(cls: type) -> list[str]:
    names = _METHODS.get(cls)
    if names is None:
        names = _METHODS[cls] = [n for n in dir(cls) if n.startswith(("smtp_", "auth_"))]
    return names


def plain_address(arg: str) -> tuple[str, str] | None:
    """A MAIL or RCPT argument that is a plain `<local-part@domain>` (dot-atoms) with any
    parameters after a space, as (address, parameters); None for anything else."""
    plain = _PLAIN_ADDRESS.match(arg)
    return None if plain is None else (plain.group(1), plain.group(2) or "")

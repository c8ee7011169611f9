"""Real aiosmtpd capture servers on loopback, with trustme TLS and faults injected on purpose.

Use from a conftest.py (`pytest_plugins = ["tests.servers.smtp"]` in the root one, or
`from tests.servers.smtp import smtp_capture, tls_ca`), then in a test::

    async def test_x(smtp_capture):
        server = smtp_capture(tls="starttls")
        server.fail_with(451, "try later", at="DATA", times=1)
        ...  # send to ("127.0.0.1", server.port), trusting tls_ca.ca_file
        [captured] = server.wait_for(1, timeout=5)

Each connection builds its SMTP session from the server's current settings, so
faults and AUTH can be changed while the server runs (they apply to the next command
or connection). The server runs in its own thread; `wait_for` blocks on a
`threading.Condition`, and `wait_for_async` does the same from a running event loop
without blocking it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import email
import email.policy
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.ports import free_port  # aiosmtpd cannot bind port 0

TlsMode = Literal["none", "starttls", "smtps"]
Stage = Literal["connect", "MAIL", "RCPT", "DATA"]


@dataclass(frozen=True)
class TlsAuthority:
    """A trustme CA, a server context with a cert for localhost/127.0.0.1, and the CA file."""

    ca: trustme.CA
    server_context: ssl.SSLContext
    ca_file: Path

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA only."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def make_tls_authority(directory: Path) -> TlsAuthority:
    """Create a fresh CA and write its PEM to `directory/ca.pem`."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsAuthority(ca=ca, server_context=server_context, ca_file=ca_file)


@dataclass(frozen=True)
class Captured:
    """One message the server accepted with 250."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]  # e.g. ("BODY=8BITMIME",)
    data: bytes
    message: EmailMessage
    tls: bool
    auth_user: str | None


class Hold:
    """A message held at DATA, once, before its 250: `held` is set when it arrives, and the
    server answers only after `release()` (other sessions carry on meanwhile)."""

    def __init__(self, matches: Callable[[bytes], bool]) -> None:
        self.matches = matches
        self.held = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        """Let the held message be accepted."""
        self._released.set()

    async def wait_released(self) -> None:
        await asyncio.to_thread(self._released.wait, 120)


@dataclass
class _Fault:
    kind: Literal["reply", "drop", "stall"]
    stage: Stage
    remaining: int | None  # None: every time
    reply: str = ""
    seconds: float = 0.0
    recipients: frozenset[str] | None = None  # RCPT faults: only these addresses

    def matches(self, stage: Stage, address: str | None) -> bool:
        if stage != self.stage:
            return False
        return self.recipients is None or (address or "").lower() in self.recipients


class _FaultySMTP(SMTP):
    """An aiosmtpd session that can misbehave before its greeting."""

    def __init__(self, capture: CaptureServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._capture = capture

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self._capture._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._capture._closed(self)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        """The client went away (a killed router among them): close this side too. aiosmtpd
        keeps a plain connection half-open and relies on its session task to close it, which
        a task cancelled before it ran (EOF right after connecting) never does: the transport
        was left for the garbage collector (a ResourceWarning in whichever test it hit)."""
        super().eof_received()
        return False

    async def _handle_client(self) -> None:
        reply = await self._capture._misbehave("connect", self, None)
        if reply is not None:
            if reply:
                await self.push(reply)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()


class _CaptureController(Controller):
    def __init__(self, capture: CaptureServer, **kwargs: Any) -> None:
        super().__init__(capture, **kwargs)
        self._capture = capture

    def factory(self) -> SMTP:
        return self._capture._new_session()


class CaptureServer:
    """A real SMTP server on 127.0.0.1 that records what it accepts and fails on demand."""

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        require_starttls: bool = False,
        server_context: ssl.SSLContext | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure (not start) a server.

        Args:
            tls: "none", "starttls" (offered after EHLO) or "smtps" (implicit TLS).
            require_starttls: refuse mail until the client has done STARTTLS.
            server_context: the server's certificate; needed unless tls is "none".
            port: a fixed port (to restart on the same one); a free one by default.
            host: the address to listen on; loopback unless a test needs otherwise.
        """
        if tls != "none" and server_context is None:
            raise ValueError(f"tls={tls!r} needs a server_context")
        self.tls = tls
        self.host = host
        self.port = port or free_port()
        self._require_starttls = require_starttls
        self._server_context = server_context
        self._cond = threading.Condition()
        self._messages: list[Captured] = []
        self._faults: list[_Fault] = []
        self._holds: list[Hold] = []
        self._auth: tuple[str, str, bool] | None = None
        self._xoauth2: tuple[str, Callable[[str], bool]] | None = None
        self.xoauth2_refusals = 0
        self._sessions: set[SMTP] = set()
        self._controller: _CaptureController | None = None
        self.connections = 0

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> CaptureServer:
        """Start listening; returns self."""
        controller = _CaptureController(
            self,
            hostname=self.host,
            port=self.port,
            ssl_context=self._server_context if self.tls == "smtps" else None,
        )
        controller.start()
        self._controller = controller
        with self._cond:
            self.connections = 0  # the Controller's own readiness probe does not count
        return self

    def stop(self) -> None:
        """Close every client connection and stop the server thread. Safe to call twice."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        # Stop listening first: a client that connects again (a restarted router's pool)
        # while the sessions close would otherwise get a connection nobody closes.
        controller.loop.call_soon_threadsafe(self._stop_listening, controller)
        with self._cond:  # a client may keep its connection open (a pool): wait until it is gone
            self._cond.wait_for(lambda: not self._sessions, timeout=5)
        controller.stop()

    def _stop_listening(self, controller: Controller) -> None:
        if controller.server is not None:
            controller.server.close()
        self._close_sessions()

    def disconnect_all(self) -> None:
        """Close every client connection now (a client's kept connections included) and
        wait until they are gone; the server goes on listening."""
        assert self._controller is not None
        self._controller.loop.call_soon_threadsafe(self._close_sessions)
        with self._cond:
            self._cond.wait_for(lambda: not self._sessions, timeout=5)

    @property
    def url(self) -> str:
        """The relay setting for this server, e.g. `smtp://127.0.0.1:2525`."""
        scheme = "smtps" if self.tls == "smtps" else "smtp"
        return f"{scheme}://{self.host}:{self.port}"

    # -- what arrived -------------------------------------------------------------------

    @property
    def messages(self) -> list[Captured]:
        """A copy of the messages accepted so far."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Captured]:
        """Block until at least `count` messages arrived; returns them all.

        Raises:
            TimeoutError: fewer arrived within `timeout` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._messages)} of {count} messages arrived within {timeout}s"
                )
            return list(self._messages)

    def wait_beyond(self, seen: int, timeout: float) -> bool:
        """Block until more than `seen` messages arrived; False if `timeout` passed first.

        Pass the length of the `messages` copy just examined, never a fresh `len(messages)`:
        a message arriving between the two would be counted as seen and never waited for.
        """
        with self._cond:
            return self._cond.wait_for(lambda: len(self._messages) > seen, timeout)

    # The wait runs in a thread, which asyncio.timeout could not stop: it takes its own timeout.
    async def wait_for_async(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[Captured]:
        """`wait_for` without blocking the running event loop."""
        return await asyncio.to_thread(self.wait_for, count, timeout)

    # -- misbehaviour, settable at runtime ----------------------------------------------

    def fail_with(
        self,
        code: int,
        text: str,
        *,
        at: Stage = "DATA",
        times: int | None = None,
        recipients: set[str] | None = None,
    ) -> None:
        """Answer `code text` at a stage (`times` times, or always when None).

        At "connect" it replaces the greeting and closes the connection (e.g. 421).
        At "RCPT", `recipients` limits the refusal to those addresses.
        """
        wanted = frozenset(r.lower() for r in recipients) if recipients is not None else None
        self._add(_Fault("reply", at, times, reply=f"{code} {text}", recipients=wanted))

    def drop_connection_mid_data(self, times: int | None = 1) -> None:
        """Close the connection after the message data arrived, before any reply."""
        self._add(_Fault("drop", "DATA", times))

    def stall(self, seconds: float, *, at: Stage = "DATA", times: int | None = 1) -> None:
        """Wait `seconds` before answering at a stage, then carry on normally."""
        self._add(_Fault("stall", at, times, seconds=seconds))

    def hold(self, matches: Callable[[bytes], bool]) -> Hold:
        """Hold the next message whose bytes `matches` at DATA until the test releases it."""
        hold = Hold(matches)
        with self._cond:
            self._holds.append(hold)
        return hold

    def require_auth(self, user: str, password: str, *, require_tls: bool = True) -> None:
        """Offer AUTH PLAIN/LOGIN and refuse MAIL (530) until the client logged in."""
        with self._cond:
            self._auth = (user, password, require_tls)

    def require_xoauth2(self, user: str, verify: Callable[[str], bool]) -> None:
        """Offer AUTH XOAUTH2 and refuse MAIL (530) until the client authenticated as `user`
        with a token `verify` accepts (e.g. `TokenServer.verify`)."""
        with self._cond:
            self._xoauth2 = (user, verify)

    def reset(self) -> None:
        """Forget every fault and AUTH requirement (messages are kept)."""
        with self._cond:
            self._faults.clear()
            self._holds.clear()
            self._auth = None
            self._xoauth2 = None

    # -- aiosmtpd plumbing (server thread) ----------------------------------------------

    def _add(self, fault: _Fault) -> None:
        with self._cond:
            self._faults.append(fault)

    def _take(self, stage: Stage, address: str | None) -> _Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.matches(stage, address):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    async def _misbehave(self, stage: Stage, server: SMTP, address: str | None) -> str | None:
        """None to carry on; "" after dropping the connection; else the reply to send."""
        fault = self._take(stage, address)
        if fault is None:
            return None
        if fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            if server.transport is not None:
                cast(asyncio.Transport, server.transport).abort()
            return ""
        return fault.reply

    def _new_session(self) -> SMTP:
        with self._cond:
            auth = self._auth
        session = _FaultySMTP(
            self,
            self,
            hostname="localhost",
            tls_context=self._server_context if self.tls == "starttls" else None,
            require_starttls=self._require_starttls and self.tls == "starttls",
            authenticator=self._authenticate if auth else None,
            auth_require_tls=auth[2] if auth else True,
        )
        # A real token makes the AUTH line longer than aiosmtpd's 512 bytes (RECIPES.md).
        session.command_size_limits = collections.defaultdict(lambda: 8192)
        return session

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 (`user=U^Aauth=Bearer T^A^A`), checked with `require_xoauth2`'s verify."""
        with self._cond:
            expected = self._xoauth2
        try:
            fields = base64.b64decode(args[1]).decode().split("\x01")
            user = fields[0].removeprefix("user=")
            token = fields[1].removeprefix("auth=Bearer ")
        except (IndexError, ValueError):
            return AuthResult(success=False, handled=False)
        if expected is None or user != expected[0] or not expected[1](token):
            with self._cond:
                self.xoauth2_refusals += 1
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user)

    def _opened(self, session: SMTP) -> None:
        with self._cond:
            self.connections += 1
            self._sessions.add(session)

    def _closed(self, session: SMTP) -> None:
        with self._cond:
            self._sessions.discard(session)
            self._cond.notify_all()

    def _close_sessions(self) -> None:
        with self._cond:
            sessions = list(self._sessions)
        for session in sessions:
            if session.transport is not None:
                cast(asyncio.Transport, session.transport).abort()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        with self._cond:
            auth = self._auth
        if auth is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = data.login.decode() == auth[0] and data.password.decode() == auth[1]
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode() if ok else None)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self._cond:
            auth_needed = self._auth is not None or self._xoauth2 is not None
        if auth_needed and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = await self._misbehave("MAIL", server, address)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._misbehave("RCPT", server, address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await self._misbehave("DATA", server, None)
        if reply is not None:
            return reply or "451 4.3.0 dropped"  # a dropped connection sends nothing
        data = cast(bytes, envelope.original_content)
        with self._cond:
            hold = next((h for h in self._holds if h.matches(data)), None)
            if hold is not None:
                self._holds.remove(hold)
        if hold is not None:
            hold.held.set()
            await hold.wait_released()
        transport = server.transport
        captured = Captured(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            data=data,
            message=email.message_from_bytes(data, policy=email.policy.default),
            tls=transport is not None and transport.get_extra_info("sslcontext") is not None,
            auth_user=session.auth_data if session.authenticated else None,
        )
        with self._cond:
            self._messages.append(captured)
            self._cond.notify_all()
        return f"250 OK queued as {len(self._messages)}"


# -- pytest fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsAuthority:
    """The session's trustme CA, its server context, and `ca_file` for clients."""
    return make_tls_authority(tmp_path_factory.mktemp("tls-ca"))


CaptureFactory = Callable[..., CaptureServer]


@pytest.fixture
def smtp_capture(tls_ca: TlsAuthority) -> Iterator[CaptureFactory]:
    """A factory of started CaptureServers (tls_ca's certificate by default), all stopped after."""
    servers: list[CaptureServer] = []

    def create(
        *,
        tls: TlsMode = "none",
        require_starttls: bool = False,
        server_context: ssl.SSLContext | None = None,
        port: int | None = None,
    ) -> CaptureServer:
        context = server_context or (tls_ca.server_context if tls != "none" else None)
        server = CaptureServer(
            tls=tls, require_starttls=require_starttls, server_context=context, port=port
        )
        servers.append(server)
        return server.start()

    yield create
    for server in servers:
        server.stop()


__all__ = [
    "CaptureFactory",
    "CaptureServer",
    "Captured",
    "Hold",
    "TlsAuthority",
    "free_port",
    "make_tls_authority",
    "smtp_capture",
    "tls_ca",
]

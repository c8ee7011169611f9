"""Debian's Postfix as a private instance on loopback (RECIPES.md "Postfix as a private
instance"): in front of the router's listener, or as its relay with STARTTLS, SASL AUTH
through a Dovecot auth socket, `reject_non_fqdn_helo_hostname` and a 10 MB size limit.

Delivered mail lands in one Maildir, a copy per recipient (`mailbox(address)`); queue times are
short, so a deferred mail is retried within a second or two.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme

from tests.servers.dovecot import Dovecot

MASTER = Path("/usr/lib/postfix/sbin/master")
SIZE_LIMIT = 10 * 1024 * 1024  # the relay's message_size_limit (a common setting)
_START_SECONDS = 20.0

_MAIN = """\
compatibility_level = 3.6
config_directory = {conf}
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = {name}.postfix.test
mydomain = postfix.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
disable_dns_lookups = yes
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
delay_warning_time = 0
smtpd_banner = $myhostname ESMTP
biff = no
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
# One session per smtpd process: a table changed by a test holds from the next session on.
max_use = 1
{role}
"""

# In front of the router: whatever loopback clients send is passed to the listener.
_FRONT = """\
relayhost = [127.0.0.1]:{downstream}
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = may
smtp_helo_name = front.postfix.test
message_size_limit = 52428800
"""

# The router's relay: STARTTLS and AUTH required, HELO policy, size limit, per-address
# refusals, and delivery of every domain into one Maildir (virtual(8) adds Delivered-To:
# with the recipient to each copy; a map may not substitute $1 into a path).
_RELAY = """\
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = {root}/cert.pem
smtpd_tls_key_file = {root}/key.pem
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth_socket}
smtpd_helo_required = yes
smtpd_helo_restrictions = reject_non_fqdn_helo_hostname
smtpd_sender_restrictions = check_sender_access regexp:{conf}/senders
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access regexp:{conf}/refused, permit
message_size_limit = {size_limit}
virtual_mailbox_domains = static:all
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:all/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_mailbox_limit = 0
"""

# The services a private instance needs (chroot off: the instance lives in a temp dir).
_MASTER_CF = """\
{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def postfix_available() -> bool:
    """Whether Debian's postfix is installed (`.ci/run` installs it)."""
    return MASTER.exists() and shutil.which("postfix") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Postfix:
    """One private Postfix instance: `start()`, `stop()`.

    Args:
        name: `front` (passes all mail on to `downstream`) or `relay` (STARTTLS + AUTH
            through `auth`, the policies above, delivery into Maildirs).
    """

    def __init__(
        self, name: str, *, downstream: int | None = None, auth: Dovecot | None = None
    ) -> None:
        self.name = name
        self.root = Path(tempfile.mkdtemp(prefix=f"postfix-{name}-"))
        self.root.chmod(0o755)  # postfix's unprivileged processes must traverse it
        self.conf = self.root / "conf"
        self.conf.mkdir()
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        nobody = pwd.getpwnam("nobody")
        if name == "front":
            role = _FRONT.format(downstream=downstream)
        else:
            assert auth is not None, "a relay needs Dovecot's auth socket"
            role = _RELAY.format(
                root=self.root,
                conf=self.conf,
                auth_socket=auth.root / "auth-postfix",
                size_limit=SIZE_LIMIT,
                uid=nobody.pw_uid,
                gid=nobody.pw_gid,
            )
            ca = trustme.CA()
            cert = ca.issue_cert("localhost", "127.0.0.1")
            self.ca_file = self.root / "ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_file))
            cert.private_key_pem.write_to_path(str(self.root / "key.pem"))
            cert.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
            self.refuse_recipients()
            self.refuse_senders()
            mail = self.root / "mail"
            mail.mkdir()
            os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        (self.conf / "main.cf").write_text(
            _MAIN.format(conf=self.conf, root=self.root, name=name, role=role)
        )
        (self.conf / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        (self.root / "queue").mkdir()
        data = self.root / "data"
        data.mkdir()
        shutil.chown(data, "postfix")
        subprocess.run(
            ["postfix", "-c", str(self.conf), "check"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def refuse_recipients(self, *addresses: str) -> None:
        """Answer RCPT TO for these addresses with 554 (from the next session on)."""
        lines = [f"/^{_escape(a)}$/ REJECT 5.1.1 mailbox unavailable" for a in addresses]
        (self.conf / "refused").write_text("\n".join([*lines, "/^$/ DUNNO", ""]))

    def refuse_senders(self, *addresses: str) -> None:
        """Answer MAIL FROM these addresses with 553 (evaluated at RCPT, as Postfix does)."""
        lines = [f"/^{_escape(a)}$/ REJECT 5.7.1 sender not permitted" for a in addresses]
        (self.conf / "senders").write_text("\n".join([*lines, "/^$/ DUNNO", ""]))

    def start(self) -> Postfix:
        """Run the master in the foreground of its own process group; wait for the port."""
        self._proc = subprocess.Popen(
            [str(MASTER), "-c", str(self.conf), "-d"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_SECONDS
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postfix exited with {self._proc.returncode}: {self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix did not listen on {self.port}: {self.log()}")
            time.sleep(0.01)  # the port opens within a few tens of ms

    def stop(self) -> None:
        """SIGTERM to the master (it stops its children), then wait; SIGKILL as a fallback."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the master

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def mailbox(self, address: str) -> list[EmailMessage]:
        """The messages delivered to `address` (by their Delivered-To), oldest first."""
        new = self.root / "mail" / "all" / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda path: path.stat().st_mtime_ns)
        messages = [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in files
        ]
        wanted = address.lower()
        return [m for m in messages if str(m["Delivered-To"] or "").lower() == wanted]  # type: ignore[misc]

    def wait_for(self, address: str, count: int, timeout: float = 60.0) -> list[EmailMessage]:
        """Wait until `address` has at least `count` messages; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.mailbox(address)
            if len(messages) >= count:
                return messages
            assert time.monotonic() < deadline, f"{address}: {len(messages)} of {count}"
            time.sleep(0.05)  # Maildir delivery has no event to wait on

    def queue_is_empty(self) -> bool:
        """Nothing waiting in the instance's queue (all delivered or bounced)."""
        queue = self.root / "queue"
        return not any(
            path.is_file()
            for folder in ("incoming", "active", "deferred", "hold", "maildrop")
            for path in (queue / folder).rglob("*")
        )

    def send(self, raw: bytes, *, sender: str, recipients: list[str]) -> None:
        """Submit one message over SMTP from loopback (as a school's mail server would)."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo("school.example.org")
            client.sendmail(sender, recipients, raw)


def _escape(address: str) -> str:
    return "".join(f"\\{c}" if not c.isalnum() else c for c in address)


def relay_auth_dovecot() -> Dovecot:
    """A Dovecot whose auth service listens on `root/auth-postfix` for Postfix's SASL."""
    dovecot = Dovecot(
        "service auth {\n  unix_listener ROOT/auth-postfix {\n    mode = 0666\n  }\n}\n"
    )
    # The socket's path is only known once the directory exists.
    dovecot._extra = dovecot._extra.replace("ROOT", str(dovecot.root))
    return dovecot


@pytest.fixture(scope="module")
def postfix_relay() -> Iterator[tuple[Postfix, Dovecot]]:
    """One relay per test module (start-up is about a second): Postfix with SASL through
    Dovecot. Tests reset its refusal lists when they change them."""
    if not postfix_available():
        pytest.skip("postfix is not installed (see .ci/run)")
    dovecot = relay_auth_dovecot()
    dovecot.start()
    relay = Postfix("relay", auth=dovecot).start()
    try:
        yield relay, dovecot
    finally:
        relay.close()
        dovecot.close()

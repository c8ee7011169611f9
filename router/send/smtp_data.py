"""aiosmtplib's preparation of DATA and of addresses, with short cuts for mail that needs
no preparing.

Before DATA, aiosmtplib turns every lone CR or LF into CRLF and doubles every dot that
starts a line, with two regular expressions over the whole message
(`aiosmtplib.protocol.normalize_message_line_endings` and `PERIOD_REGEX`). The router's
own mail is already CRLF throughout and a line starting with a dot is rare (base64 never has
one), yet the expressions ran over every byte of every forward on the event loop (the figures
are in docs/benchmarks.md and the commit history). `install` gives aiosmtplib versions of both that
first check, in a few passes at C speed, whether there is anything to change; when there is,
aiosmtplib's own code does it. So what is sent is byte for byte what aiosmtplib sends
(`tests/send/test_smtp_data.py` compares them).

Likewise each MAIL and RCPT address goes through `email.utils.parseaddr` and two checks
(`aiosmtplib.email.quote_address`), several times a referral; an address that is a plain
dot-atom (`name.surname@example.gov.uk`, all the router ever writes in practice) is the
same after that, so it is quoted at once and anything else is left to aiosmtplib.
"""

from __future__ import annotations

import re

from aiosmtplib import email as aiosmtplib_email
from aiosmtplib import protocol, smtp

from router.core.mail.headers import DOT_ATOM_ADDRESS

_normalize = protocol.normalize_message_line_endings
_PERIOD = protocol.PERIOD_REGEX
_quote = aiosmtplib_email.quote_address

_PLAIN = re.compile(DOT_ATOM_ADDRESS)


def normalized(message: bytes) -> bytes:
    """`normalize_message_line_endings`: unchanged when every CR and LF is a CRLF pair and
    the message ends with one."""
    if message.endswith(b"\r\n"):
        pairs = message.count(b"\r\n")
        if message.count(b"\r") == pairs and message.count(b"\n") == pairs:
            return message
    return _normalize(message)


def quote_address(address: str) -> str:
    """`aiosmtplib.email.quote_address`: a plain dot-atom address in angle brackets."""
    if _PLAIN.fullmatch(address):
        return f"<{address}>"
    return _quote(address)


class _LeadingDots:
    """`PERIOD_REGEX`'s `sub`: unchanged when no line starts with a dot."""

    def sub(self, replacement: bytes, message: bytes) -> bytes:
        if message.startswith(b".") or b"\n." in message:
            return _PERIOD.sub(replacement, message)
        return message


def install() -> None:
    """Put the short cuts in place of aiosmtplib's three (once; idempotent)."""
    protocol.normalize_message_line_endings = normalized
    smtp.quote_address = quote_address  # type: ignore[attr-defined]  # smtp.py's own name
    protocol.PERIOD_REGEX = _LeadingDots()  # type: ignore[assignment]  # only `sub` is used

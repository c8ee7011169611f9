"""What goes after DATA is byte for byte what aiosmtplib's own preparation makes of the
message, whether or not the short cut applies; and a relay really sends it so."""

from __future__ import annotations

import random

import pytest
from aiosmtplib import protocol, smtp

from router.send import smtp_data
from tests.send.conftest import RelayMaker
from tests.servers.smtp import CaptureFactory

_ORIGINAL_NORMALIZE = smtp_data._normalize
_ORIGINAL_PERIOD = smtp_data._PERIOD
_ORIGINAL_QUOTE = smtp_data._quote


def _aiosmtplib(message: bytes) -> bytes:
    return _ORIGINAL_PERIOD.sub(b"..", _ORIGINAL_NORMALIZE(message))


def _installed(message: bytes) -> bytes:
    return protocol.PERIOD_REGEX.sub(b"..", protocol.normalize_message_line_endings(message))


_MESSAGES = [
    b"Subject: x\r\n\r\nbody\r\n",
    b"Subject: x\r\n\r\nbody",  # no final line end
    b"Subject: x\n\nbare line feeds\n",
    b"Subject: x\r\rbare returns\r",
    b"Subject: x\r\n\r\nmixed\nline\rends\r\n",
    b"Subject: x\r\n\r\n.leading dot\r\n..two\r\n",
    b".first line is a dot\r\n",
    b"Subject: x\r\n\r\nends with a dot line\r\n.\r\n",
    b"Subject: x\r\n\r\n\r.after a bare CR\r\n",
    b"Subject: x\r\n\r\nlast CR alone\r",
    b"Subject: x\r\n\r\nlast LF alone\n",
    b"",
    b"\r\n",
    b"\n",
    b"\r",
    b".",
]


def test_the_short_cut_changes_nothing() -> None:
    """Fixed cases and random messages made of CR, LF, dots and text: the same bytes."""
    smtp_data.install()
    rng = random.Random(13)
    pieces = [b"\r\n", b"\r", b"\n", b".", b"a", b"line of text", b"\r\n.", b"\n."]
    randoms = [b"".join(rng.choices(pieces, k=rng.randint(0, 40))) for _ in range(3000)]
    for message in _MESSAGES + randoms:
        assert _installed(message) == _aiosmtplib(message), message


def test_a_message_that_needs_nothing_is_not_copied() -> None:
    """The short cut is taken: a ready message comes back as the very same object."""
    smtp_data.install()
    ready = b"Subject: x\r\n\r\n" + b"QUJD\r\n" * 400
    assert protocol.normalize_message_line_endings(ready) is ready
    assert protocol.PERIOD_REGEX.sub(b"..", ready) is ready


@pytest.mark.parametrize("message", _MESSAGES[:9])
async def test_the_relay_sends_what_aiosmtplib_would(
    message: bytes, smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """Through a real SMTP server: the message arrives with its line ends made CRLF and
    every dot that starts a line intact (stuffed by the relay, undone by the server)."""
    server = smtp_capture()
    await relay_for(server).send(message, sender="r@router.example", recipients=["p@x.example"])
    [captured] = server.wait_for(1)
    assert captured.data == _ORIGINAL_NORMALIZE(message)


_ADDRESSES = [
    "preventreferrals@met.pnn.police.uk",
    "Sam.Referrer+tag@example.org",
    "o'brien@school.example",
    "a!#$%&*/=?^_`{|}~-b@x-y.example",
    "user@localhost",
    "Sam <sam@example.org>",
    "<sam@example.org>",
    '"quoted local"@example.org',
    "sam@example.org (comment)",
    "a..b@example.org",
    ".a@example.org",
    "a.@example.org",
    "a@-x.example",
    "a@x-.example",
    "a@x..example",
    "a@[192.0.2.1]",
    "émile@exemple.fr",
    "a@b.example> SIZE=1",
    "a@b.example\r\nRSET",
    "",
    "no-at-sign",
    "two@at@signs.example",
]


def _quoted(quote: object, address: str) -> str:
    try:
        return str(quote(address))  # type: ignore[operator]
    except ValueError as exc:
        return f"ValueError: {exc}"


def test_addresses_are_quoted_as_aiosmtplib_quotes_them() -> None:
    """Fixed and random addresses (plain, display names, quoting, brackets, comments, bad
    dots and hyphens, injection attempts): the short cut gives what aiosmtplib gives, or
    the same refusal."""
    smtp_data.install()
    assert smtp.quote_address is smtp_data.quote_address  # type: ignore[attr-defined]
    rng = random.Random(14)
    pieces = ["a", "Zq", "0", ".", "@", "-", "+", "'", "`", "{", "<", ">", " ", '"', "(", ")", ","]
    randoms = ["".join(rng.choices(pieces, k=rng.randint(1, 14))) for _ in range(5000)]
    for address in _ADDRESSES + randoms:
        assert _quoted(smtp.quote_address, address)  # type: ignore[attr-defined] == _quoted(_ORIGINAL_QUOTE, address), address


def test_a_plain_address_takes_the_short_cut() -> None:
    """The short cut is taken for what the router writes (aiosmtplib's parser not called)."""
    assert smtp_data._PLAIN.fullmatch("preventreferrals@met.pnn.police.uk")
    assert smtp_data._PLAIN.fullmatch("Sam <sam@example.org>") is None

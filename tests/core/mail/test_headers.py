"""Tests of raw header reading and decoding."""

from __future__ import annotations

import email
import email.policy

import pytest

from router.core.mail.headers import RawHeaders, addresses, decode_words, message_ids


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("=?utf-8?B?UsOpZsOpcnJhbA==?=", "Référral"),
        ("=?ISO-8859-1?Q?Fouch=E9_says?= hi", "Fouché says hi"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # space between encoded-words is dropped
        ("=?utf-8?q?a?= plain =?utf-8?q?b?=", "a plain b"),
        ("=?utf-8*en?Q?lang?=", "lang"),
        ("=?no-such-charset?Q?x=41?=", "xA"),
        ("=?utf-8?B?not base64?=", "=?utf-8?B?not base64?="),
        ("=?utf-8?B?!!!?=", ""),
        ("no words here", "no words here"),
    ],
)
def test_decode_words(raw: str, text: str) -> None:
    """RFC 2047 encoded-words decode; broken ones never raise."""
    assert decode_words(raw) == text


def test_addresses_bare_lower_dedup() -> None:
    """Addresses come out bare, lower-case, valid only, deduplicated in order."""
    values = ['"Smith, J" <J@X.org>, k@y.org', "undisclosed-recipients:;", "j@x.org, <>, @@"]
    assert addresses(values) == ["j@x.org", "k@y.org"]


def test_message_ids() -> None:
    """Message-ID tokens are found in folded lists, deduplicated."""
    assert message_ids(["<a@b>\r\n <c@d> junk <a@b>"]) == ["<a@b>", "<c@d>"]


def test_raw_headers_read_utf8_and_never_parse() -> None:
    """Raw 8-bit header bytes read as UTF-8; garbage the modern policy chokes on is returned."""
    raw = "From: Zoë <zoe@x.example>\r\nTo: <<<@@>>>\r\nSubject: Ünïcode\r\n\r\nbody".encode()
    for policy in (email.policy.compat32, email.policy.default):
        top = RawHeaders(email.message_from_bytes(raw, policy=policy))
        assert top.first("from") == "Zoë <zoe@x.example>"
        assert top.decoded("Subject") == "Ünïcode"
        assert top.values("To") == ["<<<@@>>>"]
        assert not top.has("Cc")

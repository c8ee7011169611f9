"""Read header values from any parsed message without ever raising on garbage headers.

The modern `email.policy.default` parses a header when it is accessed and can raise on
hostile values, so everything here works from the raw stored strings (`raw_items()`),
decodes RFC 2047 encoded-words itself, and turns undecodable bytes into text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterable
from email.message import Message
from email.utils import getaddresses

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")
_SPACE_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\r\n]+(?==\?[^?\s]{1,64}\?[bBqQ]\?)")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,990}>")
# A quoted pair (kept as its character) or a double quote (dropped), in a local part.
_QUOTE_OR_PAIR = re.compile(r'\\(.)|"')
_ADDR_FORBIDDEN = re.compile(r"[\s<>(),;:\"\[\]\\\x00-\x1f\x7f]")
_MAX_IDS = 200
# A plain address, `local-part@domain` of dot-atoms (RFC 5322 3.2.3, host-name labels): what
# mail servers and the router itself write. The SMTP listener and the relay each parse or
# quote such an address directly and leave anything else to their library.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
DOT_ATOM_ADDRESS = rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*"
_MAX_HEADER_CHARS = 64 * 1024  # longer values are cut: no real header needs more


class RawHeaders:
    """The headers of one message part, indexed once by lower-case name.

    Values are raw (undecoded, folding kept) text: bytes that are not ASCII are read as
    UTF-8 (RFC 6532), else Windows-1252. Indexing once keeps lookups linear even for a
    hostile message with hundreds of thousands of header lines.
    """

    def __init__(self, msg: Message) -> None:
        self._index: dict[str, list[str]] = {}
        try:
            items = list(msg.raw_items())
        except (TypeError, AttributeError, ValueError):
            items = []
        for key, value in items:
            self._index.setdefault(str(key).lower(), []).append(str(value))

    def __bool__(self) -> bool:
        """True when there is at least one header."""
        return bool(self._index)

    def values(self, name: str) -> list[str]:
        """Every value of header `name` (any case), in order of appearance."""
        return [to_text(value)[:_MAX_HEADER_CHARS] for value in self._index.get(name.lower(), [])]

    def first(self, name: str) -> str | None:
        """The first value of header `name`, or None when absent."""
        values = self._index.get(name.lower())
        return to_text(values[0])[:_MAX_HEADER_CHARS] if values else None

    def has(self, name: str) -> bool:
        """True when the header is present at all (even empty)."""
        return name.lower() in self._index

    def decoded(self, name: str) -> str:
        """The first value of a text header (e.g. Subject), decoded, on one line; "" if absent."""
        value = self.first(name)
        if value is None:
            return ""
        return clean_text(decode_words(clean_text(value)))


def to_text(value: str) -> str:
    """Turn surrogate-escaped raw bytes back into readable text (UTF-8, else cp1252)."""
    if value.isascii() or not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def clean_text(value: str) -> str:
    """Unfold a header value and drop control characters (CR and LF included)."""
    return _CONTROL.sub("", _FOLD.sub("", value)).replace("\t", " ").strip()


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded-words; a malformed word is left as it was.

    Args:
        value: raw header text.

    Returns:
        The decoded text. Unknown charsets fall back to UTF-8 with replacement characters.
    """
    if "=?" not in value:
        return value
    # Whitespace between two adjacent encoded-words is not part of the text (RFC 2047 6.2).
    joined = _SPACE_BETWEEN_WORDS.sub(r"\1", value)
    return _ENCODED_WORD.sub(_decode_word, joined)


def _decode_word(match: re.Match[str]) -> str:
    """Decode one encoded-word match."""
    charset, encoding, text = match.group(1), match.group(2).lower(), match.group(3)
    charset = charset.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
    try:
        if encoding == "b":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = binascii.a2b_qp(text.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return decode_bytes(data, charset)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode bytes in a declared charset; unknown or wrong charsets never raise."""
    name = (charset or "utf-8").strip().strip('"').lower() or "utf-8"
    if name in ("unknown-8bit", "x-unknown", "us-ascii", "ascii"):
        name = "utf-8"  # mislabeled 8-bit text is far more often UTF-8 than anything else
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        name = "utf-8"
    try:
        return data.decode(name, "replace")
    except (LookupError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


def addresses(values: Iterable[str]) -> list[str]:
    """Bare lower-case addr-specs from address header values, deduplicated in order.

    Args:
        values: raw header values (To, Cc, ...) or bare addresses.

    Returns:
        The valid addresses; groups, empty entries and garbage are dropped.
    """
    found: dict[str, None] = {}  # ordered and de-duplicated in linear time
    for value in values:
        try:
            pairs = getaddresses([clean_text(value)])
        except (ValueError, TypeError, IndexError, RecursionError):  # nested comments recurse
            continue
        for _name, addr in pairs:
            bare = normalise_address(addr)
            if bare is not None:
                found[bare] = None
    return list(found)


def normalise_address(addr: str) -> str | None:
    """A bare lower-case addr-spec, or None when `addr` is not one."""
    bare = addr.strip().strip("<>").strip().lower()
    local, at, domain = bare.rpartition("@")
    if not at or not local or not domain or len(bare) > 320:
        return None
    if _ADDR_FORBIDDEN.search(local) and not local.startswith('"'):
        return None
    if _ADDR_FORBIDDEN.search(domain) or domain.startswith(".") or ".." in domain:
        return None
    return bare


def mailbox_key(address: str) -> str:
    """One spelling per mailbox, for counting what goes to it (the acknowledgment cap):
    the local part unquoted (`"victim"@x` and `" victim"@x` are `victim@x`), all lower case.
    """
    local, _, domain = address.strip().strip("<>").rpartition("@")
    local = _QUOTE_OR_PAIR.sub(lambda match: match.group(1) or "", local)
    return f"{local.strip()}@{domain.strip()}".lower()


def message_ids(values: Iterable[str]) -> list[str]:
    """The `<id>` tokens of Message-ID-like headers, deduplicated, in order (bounded)."""
    found: list[str] = []
    for value in values:
        for token in _MESSAGE_ID.findall(clean_text(value)):
            if token not in found:
                found.append(token)
                if len(found) >= _MAX_IDS:
                    return found
    return found

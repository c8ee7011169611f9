"""Writes outgoing MIME from templates: headers encoded only where needed, parts copied as bytes.

Nothing here parses the incoming message. Every value that came from outside (an address,
a file name, a Message-ID) is sanitised first, so one odd character can change how a value
is written (or leave it out) but never stop a mail from being composed.
"""

from __future__ import annotations

import base64
import quopri
import re
import secrets
from collections.abc import Iterable, Sequence
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP

CRLF = b"\r\n"
_MAX_LINE = 998  # RFC 5322 2.1.1, without the CRLF
_LONG_LINE = re.compile(rb"^[^\r\n]{999}", re.MULTILINE)
_SPLIT_LINES = 100_000  # lines up to which `_verbatim_ok` splits rather than searches
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}>")  # printable ASCII, no < > or spaces inside
_FILENAME_MAX = 200
# Characters a header value must never carry: line breaks of every kind (the library treats
# U+2028, U+2029, U+0085, VT, FF and the separators as line ends) and other controls.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


class UnwritableAddress(ValueError):
    """An address that cannot be written in a header or an SMTP envelope as it is."""


def printable(text: str) -> str:
    """`text` for a body line: controls and line separators shown as `\\uXXXX` escapes."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def clean(text: str) -> str:
    """`text` for a header: controls and line separators become spaces, runs collapsed."""
    return " ".join(_UNSAFE.sub(" ", text).split())


def address_header(name: str, addresses: Sequence[str]) -> bytes:
    """`Name: a, b` folded between addresses; raw UTF-8 for an internationalised address.

    Raises:
        UnwritableAddress: an address holds a control character or a line separator.
    """
    for address in addresses:
        if _UNSAFE.search(address) or not address.strip():
            raise UnwritableAddress("address holds a character a header cannot carry")
    return _folded(name, list(addresses), ",")


def message_ids(values: Iterable[str | None]) -> list[str]:
    """The well-formed Message-IDs among `values`, de-duplicated, in order."""
    return list(dict.fromkeys(v.strip() for v in values if v and _MESSAGE_ID.fullmatch(v.strip())))


def id_header(name: str, ids: Sequence[str]) -> bytes:
    """`In-Reply-To` or `References`: one id a line (ids are checked by `message_ids`)."""
    return _folded(name, list(ids), "")


def _folded(name: str, items: list[str], separator: str) -> bytes:
    text = f"{name}: " + f"{separator}\r\n ".join(items) + "\r\n"
    return text.encode("utf-8")


def text_header(name: str, value: str) -> bytes:
    """An unstructured header: as is when short ASCII, else RFC 2047 encoded and folded."""
    value = clean(value)
    if value.isascii() and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}\r\n".encode("ascii")
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def text_body(text: str) -> tuple[bytes, bytes]:
    """Part headers and body for UTF-8 plain text: 7bit when it can be, else quoted-printable."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    data = "\r\n".join(lines).encode("utf-8")
    if data.isascii() and all(len(line) <= _MAX_LINE for line in lines):
        encoding = b"7bit"
    else:
        encoding = b"quoted-printable"
        data = quopri.encodestring(data.replace(CRLF, b"\n")).replace(b"\n", CRLF)
    head = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: ' + encoding
    return head + CRLF, data if data.endswith(CRLF) else data + CRLF


def safe_filename(name: str | None) -> str:
    """An attachment's own name without control characters or line separators, bounded."""
    return clean(name or "")[:_FILENAME_MAX]


def attachment_part(data: bytes, declared_type: str, filename: str) -> bytes:
    """A base64 attachment part (headers and body) holding `data` byte for byte."""
    content_type = "".join(declared_type.split()).lower()  # a folded value, unfolded
    maintype = content_type.partition("/")[0]
    if not _MIME_TYPE.fullmatch(content_type) or maintype in ("multipart", "message", "text"):
        # Text parts would be re-encoded by a reader; octet-stream keeps the bytes exact.
        content_type = "application/octet-stream"
    head = f"Content-Type: {content_type}\r\n".encode("ascii")
    head += _disposition(filename) + b"Content-Transfer-Encoding: base64\r\n"
    return head + CRLF + base64.encodebytes(data).replace(b"\n", CRLF)


def _disposition(filename: str) -> bytes:
    quoted_ok = filename.isascii() and not any(ch in filename for ch in '"\\')
    if quoted_ok and len(filename) <= 120:
        return f'Content-Disposition: attachment; filename="{filename}"\r\n'.encode("ascii")
    # RFC 2231 parameters with continuations: the library writes them correctly.
    part = EmailMessage(policy=SMTP)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part.as_bytes().split(CRLF + CRLF, 1)[0] + CRLF


def original_part(raw: bytes, *, inspect: bool = True) -> bytes:
    """The original email as a part: `message/rfc822` holding the bytes unchanged when they
    are valid as such (CRLF line ends, lines of at most 998 octets, no NUL), else an
    `application/octet-stream` file `original.eml` (base64, the same bytes).

    Args:
        raw: the message as received.
        inspect: False skips the line scan (linear but slow on hostile input) and always
            writes the octet-stream form.
    """
    if inspect and _verbatim_ok(raw):
        encoding = b"7bit" if raw.isascii() else b"8bit"
        head = (
            b"Content-Type: message/rfc822\r\n"
            b'Content-Disposition: attachment; filename="original.eml"\r\n'
            b"Content-Transfer-Encoding: " + encoding + CRLF
        )
        return head + CRLF + raw
    return attachment_part(raw, "application/octet-stream", "original.eml")


def _verbatim_ok(raw: bytes) -> bool:
    crlf = raw.count(CRLF)
    if raw.count(b"\r") != crlf or raw.count(b"\n") != crlf or b"\x00" in raw:
        return False
    if crlf <= _SPLIT_LINES:  # a split is several times faster than the expression...
        return max(map(len, raw.split(CRLF))) <= _MAX_LINE
    return _LONG_LINE.search(raw) is None  # ...which needs no list of a million lines


def multipart(head: bytes, parts: Sequence[bytes]) -> bytes:
    """A `multipart/mixed` message: `head` (the top headers) and each part's bytes."""
    boundary = _boundary(parts)
    delimiter = b"\r\n--" + boundary
    out = [head, b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="']
    out += [boundary, b'"\r\n\r\nThis is a multi-part message in MIME format.']
    for part in parts:
        out += [delimiter, CRLF, part]
    out += [delimiter, b"--\r\n"]
    return b"".join(out)


def single(head: bytes, part: tuple[bytes, bytes]) -> bytes:
    """A one-part message: `head`, the part's own headers, a blank line and its body."""
    return head + b"MIME-Version: 1.0\r\n" + part[0] + CRLF + part[1]


def _boundary(parts: Sequence[bytes]) -> bytes:
    while True:
        boundary = b"=_rr_" + secrets.token_hex(16).encode("ascii")
        if not any(boundary in part for part in parts):
            return boundary

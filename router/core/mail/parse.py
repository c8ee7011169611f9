"""Turn the raw bytes of an email into a `ParsedMessage`: addresses, subject and attachments.

`parse_message` never raises, whatever the bytes. The MIME structure is parsed with the
`compat32` policy, whose header access never parses (and so never raises); header values
are decoded by `router.core.mail.headers` from the raw strings.
"""

from __future__ import annotations

import binascii
import email
import email.policy
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser

import structlog
from pydantic import BaseModel, Field

from router.core.mail import headers
from router.core.mail.auth import dmarc_failed
from router.core.mail.automatic import AutomaticVerdict, classify
from router.core.mail.headers import RawHeaders
from router.core.mail.outlook import msg_as_email
from router.core.mail.sniff import sniff
from router.models import Attachment, AttachmentKind

log = structlog.get_logger(__name__)

RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
MAX_MESSAGE_DEPTH = 10  # message/rfc822 inside message/rfc822 ...
MAX_MULTIPART_DEPTH = 50
MAX_PARTS = 2000
MAX_DEFECTS = 50
_MAX_MESSAGE_ID_CHARS = 998
_PAYLOAD_ERRORS = (ValueError, TypeError, LookupError, UnicodeError, AttributeError)
_REPORT = "multipart/report"
_HEADERLESS = "MissingHeaderBodySeparator"  # the parser's defect for "no headers here"
_EMAIL_MARKERS = ("From", "Message-ID", "Subject", "Date")
_SKIPPED_CONTAINERS = frozenset({"message/delivery-status", "message/disposition-notification"})


class ParsedMessage(BaseModel):
    """What the router needs from one email, free of MIME details."""

    message_id: str | None = None  # as in the header, with angle brackets
    from_address: str | None = None  # bare lower-case addr-spec
    subject: str = ""
    recipients: list[str] = Field(default_factory=list)  # To, Cc, Delivered-To, ... envelope
    attachments: list[Attachment] = Field(default_factory=list)
    automatic: AutomaticVerdict = Field(default_factory=AutomaticVerdict)
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    defects: list[str] = Field(default_factory=list)  # short names, never content
    too_many_attachments: bool = False
    # A believed Authentication-Results header says the From domain failed DMARC
    # (router.core.mail.auth): the From address may be forged, so it is not acknowledged.
    dmarc_fail: bool = False


@dataclass
class _Walk:
    """The state of one walk over the MIME tree."""

    max_attachments: int
    trusted_ids: tuple[str, ...] = ()
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    too_many_attachments: bool = False
    parts_seen: int = 0

    def defect(self, name: str) -> None:
        """Record a defect once, bounded."""
        if name not in self.defects and len(self.defects) < MAX_DEFECTS:
            self.defects.append(name)


def parse_message(
    raw: bytes,
    *,
    envelope_recipients: Sequence[str] = (),
    router_from: str = "referrals@localhost",
    max_attachments: int = 20,
    trusted_authserv_ids: Sequence[str] = (),
) -> ParsedMessage:
    """Parse one email. Never raises.

    Args:
        raw: the message exactly as received.
        envelope_recipients: RCPT TO addresses, counted as recipients (inbox addresses).
        router_from: the router's own From address, to recognise its own mail.
        max_attachments: attachments beyond this many are dropped and
            `too_many_attachments` is set.
        trusted_authserv_ids: authserv-ids whose Authentication-Results are believed
            (see `router.core.mail.auth`); empty: the topmost header only.

    Returns:
        The parsed message. Damage is listed in `defects`; a message whose MIME structure
        cannot be parsed at all keeps its headers and has no attachments.
    """
    walk = _Walk(max_attachments=max(0, max_attachments), trusted_ids=tuple(trusted_authserv_ids))
    try:
        msg = _parse_structure(raw, walk)
        parsed = _headers_of(msg, walk, envelope_recipients, router_from)
        _collect(msg, walk)
    except (RecursionError, MemoryError) as error:
        return _fallback(raw, walk, envelope_recipients, router_from, error)
    except Exception as error:  # the contract is "never raises": recorded below
        log.warning("mail.parse_failed", error=type(error).__name__)
        return _fallback(raw, walk, envelope_recipients, router_from, error)
    parsed.attachments = walk.attachments
    parsed.too_many_attachments = walk.too_many_attachments
    parsed.defects = walk.defects
    return parsed


def _parse_structure(raw: bytes, walk: _Walk) -> Message:
    """Parse the full MIME tree; a structure too deep for the parser keeps only the headers."""
    data = bytes(raw)
    try:
        return email.message_from_bytes(data, policy=email.policy.compat32)
    except RecursionError:
        walk.defect("MIME structure too deep to parse")
        return BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)


def _fallback(
    raw: bytes,
    walk: _Walk,
    envelope_recipients: Sequence[str],
    router_from: str,
    error: BaseException,
) -> ParsedMessage:
    """Headers only, for a message the full parse failed on."""
    walk.defect(f"parse failed: {type(error).__name__}")
    walk.attachments.clear()
    try:
        msg = BytesHeaderParser(policy=email.policy.compat32).parsebytes(bytes(raw))
        parsed = _headers_of(msg, walk, envelope_recipients, router_from)
    except Exception as second:  # still "never raises": recorded as a defect
        log.warning("mail.header_parse_failed", error=type(second).__name__)
        walk.defect(f"header parse failed: {type(second).__name__}")
        parsed = ParsedMessage(recipients=headers.addresses(envelope_recipients))
        parsed.automatic = AutomaticVerdict(acknowledge=False, reason="unparseable message")
    parsed.defects = walk.defects
    return parsed


def _headers_of(
    msg: Message, walk: _Walk, envelope_recipients: Sequence[str], router_from: str
) -> ParsedMessage:
    """Everything the router reads from the top-level headers."""
    top = RawHeaders(msg)
    senders = headers.addresses(top.values("From"))
    from_address = senders[0] if senders else None
    if from_address is None and top.has("From"):
        walk.defect("unparseable From")
    if not top:
        walk.defect("no headers")
    recipient_values = [value for name in RECIPIENT_HEADERS for value in top.values(name)]
    return ParsedMessage(
        message_id=_message_id(top, walk),
        from_address=from_address,
        subject=top.decoded("Subject"),
        recipients=headers.addresses([*recipient_values, *envelope_recipients]),
        automatic=classify(msg, from_address=from_address, router_from=router_from),
        in_reply_to=headers.message_ids(top.values("In-Reply-To")),
        references=headers.message_ids(top.values("References")),
        dmarc_fail=dmarc_failed(top.values("Authentication-Results"), walk.trusted_ids),
    )


def _message_id(top: RawHeaders, walk: _Walk) -> str | None:
    """The Message-ID as written (with angle brackets), whitespace removed; None if absent."""
    value = top.first("Message-ID")
    if value is None:
        return None
    tokens = headers.message_ids([value])
    compact = tokens[0] if tokens else "".join(headers.clean_text(value).split())
    if not compact or len(compact) > _MAX_MESSAGE_ID_CHARS:
        walk.defect("unusable Message-ID")
        return None
    return compact


def _content_type(part: Message) -> str:
    """The part's content type, lower case, never raising."""
    try:
        return part.get_content_type()
    except _PAYLOAD_ERRORS:
        return "application/octet-stream"


def _children(part: Message) -> list[Message]:
    """The sub-parts of a multipart or message/* part."""
    try:
        payload = part.get_payload()
    except _PAYLOAD_ERRORS:
        return []
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def _collect(msg: Message, walk: _Walk) -> None:
    """Walk the MIME tree depth first (without recursion) and collect the attachments."""
    # Each entry: part, parent content type, multipart depth, message/rfc822 depth.
    stack: list[tuple[Message, str, int, int]] = [(msg, "", 0, 0)]
    while stack:
        part, parent_type, depth, message_depth = stack.pop()
        walk.parts_seen += 1
        if walk.parts_seen > MAX_PARTS:
            walk.defect(f"more than {MAX_PARTS} MIME parts")
            return
        content_type = _content_type(part)
        if part.is_multipart():
            _note_defects(part, walk)
            children = _container_children(part, content_type, parent_type, walk)
        else:
            inner = _leaf(part, content_type, parent_type, walk)
            _note_defects(part, walk)  # after decoding, which adds payload defects
            if walk.too_many_attachments:
                return
            if inner is None:
                continue
            children, content_type = [inner], "message/rfc822"
        inner_message_depth = message_depth + (1 if content_type.startswith("message/") else 0)
        if children and (depth >= MAX_MULTIPART_DEPTH or inner_message_depth > MAX_MESSAGE_DEPTH):
            walk.defect("MIME nesting too deep")
            continue
        stack.extend(
            (child, content_type, depth + 1, inner_message_depth) for child in reversed(children)
        )


def _container_children(
    part: Message, content_type: str, parent_type: str, walk: _Walk
) -> list[Message]:
    """The parts to walk into below a multipart or message/* part."""
    is_message = content_type.startswith("message/")
    if content_type in _SKIPPED_CONTAINERS or (is_message and parent_type == _REPORT):
        return []  # report machinery, or the returned original: not new attachments
    children = _children(part)
    encoding = headers.clean_text(RawHeaders(part).first("Content-Transfer-Encoding") or "")
    if is_message and encoding.lower() == "base64" and len(children) == 1:
        # Not allowed (RFC 2046 5.2.1) but sent: the parser read the base64 text as a message.
        body = children[0].get_payload()
        if isinstance(body, str):
            data = binascii.a2b_base64(body.encode("ascii", "ignore"), strict_mode=False)
            inner = _parse_nested(data, walk)
            return [inner] if inner is not None else []
    return children


def _parse_nested(data: bytes, walk: _Walk) -> Message | None:
    """Parse bytes that should be an email; None (with a defect) when they cannot be."""
    try:
        return email.message_from_bytes(data, policy=email.policy.compat32)
    except RecursionError:
        walk.defect("MIME structure too deep to parse")
        return None


def _note_defects(part: Message, walk: _Walk) -> None:
    """Record the parser's defects for one part, by class name only."""
    for defect in getattr(part, "defects", ()):
        walk.defect(type(defect).__name__)


def _leaf(part: Message, content_type: str, parent_type: str, walk: _Walk) -> Message | None:
    """Add a leaf part to the attachments when it is not the message body.

    Returns:
        The parsed email when the leaf is an attached .eml file sent with a generic type,
        or an Outlook .msg (its attachments are collected like a message/rfc822 part's),
        else None.
    """
    part_headers = RawHeaders(part)
    view = _HeaderView(part_headers)
    filename = view.filename()
    disposition = view.disposition()
    maintype = content_type.partition("/")[0]
    if maintype == "multipart":
        walk.defect("multipart without a usable boundary")
        return None
    if filename is None and disposition != "attachment" and maintype == "text":
        return None  # the body (text/plain or text/html), or a text alternative of it
    if len(walk.attachments) >= walk.max_attachments:
        walk.too_many_attachments = True
        walk.defect(f"more than {walk.max_attachments} attachments")
        return None
    data = _payload_bytes(part, walk)
    if filename is not None and filename.lower().endswith(".eml"):
        inner = _attached_email(data, walk)
        if inner is not None:
            return inner
    kind = sniff(data)
    if kind is AttachmentKind.MSG:
        converted = msg_as_email(data)  # an Outlook item: examined like an attached email
        if converted is not None:
            return converted
    looks_image = kind is AttachmentKind.IMAGE or (
        kind is AttachmentKind.OTHER and maintype == "image"
    )
    related = parent_type == "multipart/related" and part_headers.has("Content-ID")
    walk.attachments.append(
        Attachment(
            index=len(walk.attachments),
            filename=filename,
            declared_type=content_type,
            kind=kind,
            data=data,
            inline=looks_image and (disposition == "inline" or related),
        )
    )
    return None


def _attached_email(data: bytes, walk: _Walk) -> Message | None:
    """An .eml attachment parsed as an email, or None when it does not look like one."""
    inner = _parse_nested(data, walk)
    if inner is None or any(_HEADERLESS in type(d).__name__ for d in inner.defects):
        return None
    inner_headers = RawHeaders(inner)
    return inner if any(inner_headers.has(name) for name in _EMAIL_MARKERS) else None


def _payload_bytes(part: Message, walk: _Walk) -> bytes:
    """The transfer-decoded payload; undecodable content comes back as the raw bytes."""
    try:
        data = part.get_payload(decode=True)
    except _PAYLOAD_ERRORS as error:
        walk.defect(f"undecodable payload: {type(error).__name__}")
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("ascii", "surrogateescape")
    return b""


class _HeaderView:
    """Content-Type and Content-Disposition parameters read from clean text.

    compat32 turns a raw UTF-8 filename into replacement characters, so the two headers
    are copied, as decoded text, onto an empty message and read from there.
    """

    def __init__(self, part_headers: RawHeaders) -> None:
        self._view = Message()
        for name in ("Content-Type", "Content-Disposition"):
            value = part_headers.first(name)
            if value is not None:
                self._view[name] = headers.clean_text(value)

    def filename(self) -> str | None:
        """Content-Disposition filename or Content-Type name, RFC 2231 and 2047 decoded."""
        try:
            name = self._view.get_filename()
        except _PAYLOAD_ERRORS:
            return None
        if not name:
            return None
        cleaned = headers.clean_text(headers.decode_words(headers.to_text(name)))
        return cleaned or None

    def disposition(self) -> str | None:
        """The disposition keyword, lower case, or None."""
        try:
            return self._view.get_content_disposition()
        except _PAYLOAD_ERRORS:
            return None

"""Builds every mail the router sends: forwards, acknowledgments and alerts to a person.

Recipients are passed in from decisions (rules) and settings only; nothing here reads an
address from the incoming message except the acknowledgment's From, which the caller gives.
Header values never contain text taken from a form, so a form cannot inject headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

from router.core import mime
from router.core.forms.fields import field_wording
from router.core.mail.parse import ParsedMessage
from router.core.mime import UnwritableAddress
from router.core.rules.model import AckText, AckTexts
from router.models import AttachmentKind, Decision, FormReading, FormStatus, Outcome

__all__ = [
    "Enclosures",
    "Outgoing",
    "UnwritableAddress",
    "attachments_for",
    "compose_ack",
    "compose_alert",
    "compose_forward",
    "enclose",
]

_FLAGS = {
    Outcome.FORWARD: "",
    Outcome.INCOMPLETE: " INCOMPLETE",
    Outcome.NEEDS_REVIEW: " REVIEW",
    Outcome.IGNORED: "",
}
# An alert's attachment above this size is sent as a file without the line scan (the scan
# is linear but slow on hostile input, and alerts are composed in the daemon).
_INSPECT_MAX = 1024 * 1024


@dataclass(frozen=True)
class Outgoing:
    """A composed mail: its bytes, envelope and Message-ID."""

    data: bytes
    sender: str
    recipients: tuple[str, ...]
    message_id: str


@dataclass(frozen=True)
class Enclosures:
    """One email's attachments and the email itself, already written as MIME parts.

    This is the work proportional to the message's size: it is done once, in the analysis
    worker, so composing a forward in the daemon only joins bytes.
    """

    original: bytes
    attachments: Mapping[int, bytes] = field(default_factory=dict)


def enclose(
    message: ParsedMessage,
    raw: bytes,
    *,
    indexes: Iterable[int] | None = None,
    inspect: bool = True,
) -> Enclosures:
    """Write the original and the attachments (those in `indexes`, default all) as parts."""
    wanted = None if indexes is None else set(indexes)
    parts = {
        a.index: mime.attachment_part(
            a.data, a.declared_type, mime.safe_filename(a.filename) or f"attachment-{a.index}"
        )
        for a in message.attachments
        if wanted is None or a.index in wanted
    }
    return Enclosures(mime.original_part(raw, inspect=inspect), parts)


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2]
    return domain if domain.isascii() and mime.clean(domain) == domain and domain else "localhost"


def _head(
    sender: str,
    to: Sequence[str],
    cc: Sequence[str],
    subject: str,
    auto: str,
    extra: Sequence[tuple[str, str]] = (),
    thread: tuple[str | None, Sequence[str]] = (None, ()),
) -> tuple[bytes, str]:
    """The top headers of a mail the router sends, and its new Message-ID."""
    message_id = make_msgid(idstring="referral-router", domain=_domain(sender))
    lines = [mime.address_header("From", [sender]), mime.address_header("To", to)]
    if cc:
        lines.append(mime.address_header("Cc", cc))
    lines += [
        mime.text_header("Subject", subject),
        f"Date: {format_datetime(datetime.now(UTC))}\r\n".encode("ascii"),
        f"Message-ID: {message_id}\r\n".encode("ascii"),
        f"Auto-Submitted: {auto}\r\n".encode("ascii"),
        # Ask Exchange and others not to send out-of-office replies back to the router.
        b"X-Auto-Response-Suppress: All\r\n",
    ]
    lines += [mime.text_header(name, value) for name, value in extra]
    in_reply_to, references = thread
    if in_reply_to:
        lines.append(mime.id_header("In-Reply-To", [in_reply_to]))
    if references:
        lines.append(mime.id_header("References", references))
    return b"".join(lines), message_id


def _thread(original: ParsedMessage) -> tuple[str | None, list[str]]:
    """In-Reply-To and References for a mail about `original` (only well-formed ids)."""
    own = mime.message_ids([original.message_id])
    if not own:
        return None, []
    return own[0], mime.message_ids([*original.references[-8:], own[0]])


def compose_forward(
    decision: Decision,
    reference: str,
    original: ParsedMessage,
    raw: bytes | Enclosures,
    readings: Sequence[FormReading],
    *,
    sender: str,
) -> Outgoing:
    """The referral to its recipients: the form and supporting documents byte for byte,
    plus the original email, and a plain summary with no form content in any header.

    Args:
        raw: the original email, or its parts already written by `enclose` (the daemon's
            way: the parts come from the worker).

    Raises:
        UnwritableAddress: a recipient address cannot be written (rules are validated, so
            this means a bug, not a message).
    """
    enclosures = raw if isinstance(raw, Enclosures) else enclose(original, raw)
    area = decision.area or "no area"
    subject = f"Prevent referral {reference} [{area}]{_FLAGS[decision.outcome]}"
    if decision.flagged:
        subject += " INCOMPLETE"
    extra = [("X-Referral-Reference", reference), ("X-Referral-Outcome", decision.outcome.value)]
    head, message_id = _head(
        sender, decision.to, decision.cc, subject, "auto-generated", extra, _thread(original)
    )
    lines = [
        f"Reference: {reference}",
        f"Outcome: {decision.outcome.value}"
        + (" (flagged by area policy)" if decision.flagged else ""),
        f"Area: {area}",
        f"Why: {mime.printable(decision.reason)}",
        f"Referrer's email (From): {mime.printable(original.from_address or 'unknown')}",
        f"Received: {format_datetime(datetime.now(UTC))}",
    ]
    if decision.missing:
        lines.append("Missing required fields: " + "; ".join(map(field_wording, decision.missing)))
    if decision.outcome is Outcome.NEEDS_REVIEW:
        lines.append("A person needs to review this referral: the router could not finish it.")
    attached = [
        enclosures.attachments[index]
        for index in attachments_for(decision, readings)
        if index in enclosures.attachments
    ]
    what = _what_is_attached(decision, len(attached), came_with=len(original.attachments))
    lines += ["", *what, "", "Sent by referral-router."]
    parts = [_part(mime.text_body("\n".join(lines))), *attached, enclosures.original]
    recipients = tuple(dict.fromkeys([*decision.to, *decision.cc]))
    return Outgoing(mime.multipart(head, parts), sender, recipients, message_id)


def _what_is_attached(decision: Decision, attached: int, *, came_with: int) -> list[str]:
    """The body's sentence on the attachments, true to what is attached."""
    if not attached:
        why = "it came with no attachment" if not came_with else "it holds all the email had"
        return [f"Attached: the original email only ({why})."]
    if decision.form_index is None:
        return [
            f"Attached unchanged: the {attached} file(s) that came with the email,",
            "and the original email.",
        ]
    return [
        "The referral form and any supporting documents are attached unchanged,",
        "with the original email.",
    ]


def _part(part: tuple[bytes, bytes]) -> bytes:
    return part[0] + mime.CRLF + part[1]


def attachments_for(decision: Decision, readings: Sequence[FormReading]) -> list[int]:
    """Which attachments travel with a decision's mail.

    A form's decision carries its own form, then every supporting document of the email
    (images beside a form count as supporting). A decision with no form of its own (no
    form found) carries everything that was attached, for the person who reviews it.
    """
    if decision.form_index is None:
        return [r.attachment_index for r in readings if r.status is not FormStatus.SKIPPED]
    indexes = [decision.form_index]
    for reading in readings:
        supporting = reading.status is FormStatus.SUPPORTING or (
            reading.status is FormStatus.UNREADABLE and reading.kind is AttachmentKind.IMAGE
        )
        if supporting and reading.attachment_index not in indexes:
            indexes.append(reading.attachment_index)
    return indexes


def ack_text(texts: AckTexts, area: str | None) -> AckText:
    """The area's acknowledgment texts, each missing piece taken from the default."""
    default = texts.default
    override = texts.areas.get(area or "")
    if override is None:
        return default
    merged = {k: v for k, v in override.model_dump().items() if v is not None}
    return default.model_copy(update=merged)


def compose_ack(
    decision: Decision,
    reference: str,
    original: ParsedMessage,
    texts: AckTexts,
    *,
    sender: str,
    area_name: str,
) -> Outgoing:
    """The reply to the referrer: reference, what happens next, 999 advice; no personal data.

    Raises:
        UnwritableAddress: the referrer's address cannot be written in a header (a line
            separator or control character in a quoted local part): no acknowledgment.
    """
    if decision.ack_to is None:
        raise ValueError("decision has no acknowledgment address")
    text = ack_text(texts, decision.area)
    template = getattr(text, decision.outcome.value) or texts.default.forward or ""
    values = {
        "reference": reference,
        "area_name": area_name,
        "missing": "\n".join(f"  - {field_wording(field)}" for field in decision.missing),
        "from_address": mime.printable(decision.ack_to),
    }
    body = template.format(**values).rstrip()
    footer = (text.footer or "If anyone is in immediate danger, call 999.").format(**values)
    if "999" not in footer:
        footer += "\nIf anyone is in immediate danger, call 999."
    subject = (text.subject or "Prevent referral received: {reference}").format(**values)
    head, message_id = _head(
        sender,
        [decision.ack_to],
        [],
        subject,
        "auto-replied",
        [("X-Referral-Reference", reference)],
        _thread(original),
    )
    data = mime.single(head, mime.text_body(f"{body}\n\n{footer.strip()}\n"))
    return Outgoing(data, sender, (decision.ack_to,), message_id)


def compose_alert(
    subject: str,
    body: str,
    *,
    sender: str,
    to: str,
    original_raw: bytes | None = None,
    original: Enclosures | None = None,
    references: Sequence[str] = (),
) -> Outgoing:
    """A message to a person (the review address) about something the router cannot finish.

    Args:
        original_raw: a message to attach (an original, an undelivered mail).
        original: the same, already written as a part by `enclose` (in the worker).
        references: Message-IDs the alert is about (kept only when well-formed).
    """
    thread = (None, mime.message_ids(references))
    head, message_id = _head(sender, [to], [], subject, "auto-generated", (), thread)
    text = mime.text_body(body.rstrip() + "\n\nSent by referral-router.\n")
    attached = None
    if original is not None:
        attached = original.original
    elif original_raw is not None:
        attached = mime.original_part(original_raw, inspect=len(original_raw) <= _INSPECT_MAX)
    if attached is None:
        return Outgoing(mime.single(head, text), sender, (to,), message_id)
    return Outgoing(mime.multipart(head, [_part(text), attached]), sender, (to,), message_id)

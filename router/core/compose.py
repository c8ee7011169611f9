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
# Room left under the relay's SIZE for the headers relays add on the way (Received, DKIM).
_SIZE_MARGIN = 64 * 1024


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
    size_limit: int | None = None,
) -> Outgoing:
    """The referral to its recipients: the form and supporting documents byte for byte,
    plus the original email, and a plain summary with no form content in any header.

    A mail for review (`needs_review`) carries the original email alone, which holds every
    document once. A mail that would not fit the relay's `size_limit` (its EHLO SIZE) leaves
    out what does not fit, the original first, and says so with the reference to look up.

    Args:
        raw: the original email, or its parts already written by `enclose` (the daemon's
            way: the parts come from the worker).
        size_limit: the relay's SIZE in bytes, or None when it has none (or is not known).

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
    review = decision.outcome is Outcome.NEEDS_REVIEW
    documents = [] if review else attached  # for review, the original holds them all
    budget = None if size_limit is None else size_limit - _SIZE_MARGIN - len(head)
    fitted = _fit(documents, enclosures.original, attached if review else [], budget)
    if fitted is None:
        what = _what_is_attached(decision, len(attached), came_with=len(original.attachments))
        if review and attached:
            what = ["Attached: the original email, which holds every file it came with."]
        parts = [*documents, enclosures.original]
    else:
        parts, left_out = fitted
        what = _what_was_left_out(reference, len(parts), left_out, size_limit)
    lines += ["", *what, "", "Sent by referral-router."]
    parts = [_part(mime.text_body("\n".join(lines))), *parts]
    recipients = tuple(dict.fromkeys([*decision.to, *decision.cc]))
    return Outgoing(mime.multipart(head, parts), sender, recipients, message_id)


def _fit(
    documents: Sequence[bytes], original: bytes, spare: Sequence[bytes], budget: int | None
) -> tuple[list[bytes], int] | None:
    """None when the documents and the original fit `budget`; else the parts that do (the
    documents, or for review the `spare` copies of them, in order, each that fits) and how
    many were left out, the original counted."""
    summary_room = 4096  # the text part, written after
    if budget is None or sum(map(len, documents)) + len(original) + summary_room <= budget:
        return None
    room = budget - summary_room
    kept: list[bytes] = []
    candidates = [*documents, *spare]
    for part in candidates:
        if len(part) + 200 <= room:  # 200: the boundary line between parts
            kept.append(part)
            room -= len(part) + 200
    return kept, len(candidates) - len(kept) + 1


def _what_was_left_out(
    reference: str, attached: int, left_out: int, size_limit: int | None
) -> list[str]:
    """The body's sentences on a mail cut to fit the relay's size limit."""
    limit = f"{(size_limit or 0) / 1_000_000:.1f} MB"
    return [
        f"This mail is cut to fit the relay's size limit ({limit}): {attached} file(s) are",
        f"attached unchanged, and {left_out} item(s) are left out, among them the original",
        "email. The router keeps the whole referral: look it up with",
        f"  referral-router show {reference}",
    ]


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
    references: Sequence[str] = (),
) -> Outgoing:
    """A message to a person (the review address) about something the router cannot finish:
    text only, never an attachment (the router keeps the message; `referral-router show`).

    Args:
        references: Message-IDs the alert is about (kept only when well-formed).
    """
    thread = (None, mime.message_ids(references))
    head, message_id = _head(sender, [to], [], subject, "auto-generated", (), thread)
    text = mime.text_body(body.rstrip() + "\n\nSent by referral-router.\n")
    return Outgoing(mime.single(head, text), sender, (to,), message_id)

"""Builds every mail the router sends: forwards, acknowledgments and alerts to a person.

Recipients are passed in from decisions (rules) and settings only; nothing here reads an
address from the incoming message except the acknowledgment's From, which the caller gives.
Header values never contain text taken from a form, so a form cannot inject headers.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from router.forms.fields import field_wording
from router.mail.parse import ParsedMessage
from router.models import Attachment, AttachmentKind, Decision, FormReading, FormStatus, Outcome
from router.rules.model import AckText, AckTexts

# SMTP-safe serialisation: CRLF line ends, long lines folded, 8-bit bodies encoded.
_POLICY = email.policy.SMTP
# For a recipient whose address is not ASCII (RFC 6531/6532): such an address cannot be
# written with encoded-words, so the headers carry raw UTF-8 and the relay uses SMTPUTF8.
_POLICY_UTF8 = email.policy.SMTPUTF8

_FLAGS = {
    Outcome.FORWARD: "",
    Outcome.INCOMPLETE: " INCOMPLETE",
    Outcome.NEEDS_REVIEW: " REVIEW",
    Outcome.IGNORED: "",
}


@dataclass(frozen=True)
class Outgoing:
    """A composed mail: its bytes, envelope and Message-ID."""

    data: bytes
    sender: str
    recipients: tuple[str, ...]
    message_id: str


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _base(
    sender: str, to: Sequence[str], cc: Sequence[str], subject: str, auto: str
) -> EmailMessage:
    international = not all(address.isascii() for address in (sender, *to, *cc))
    message = EmailMessage(policy=_POLICY_UTF8 if international else _POLICY)
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(idstring="referral-router", domain=_domain(sender))
    message["Auto-Submitted"] = auto
    # Ask Exchange and others not to send out-of-office replies back to the router.
    message["X-Auto-Response-Suppress"] = "All"
    return message


def _thread(message: EmailMessage, original: ParsedMessage) -> None:
    if original.message_id:
        message["In-Reply-To"] = original.message_id
        references = [*original.references[-8:], original.message_id]
        message["References"] = " ".join(dict.fromkeys(references))


def _attach(message: EmailMessage, attachment: Attachment) -> None:
    maintype, _, subtype = attachment.declared_type.partition("/")
    if maintype in ("", "multipart", "message", "text") or not subtype:
        # Text parts would be re-encoded by the library; octet-stream keeps the bytes exact.
        maintype, subtype = "application", "octet-stream"
    message.add_attachment(
        attachment.data,
        maintype=maintype,
        subtype=subtype,
        filename=_safe_filename(attachment.filename) or f"attachment-{attachment.index}",
    )


def _safe_filename(name: str | None) -> str:
    """The attachment's own name without control characters (they cannot go in a header)."""
    return "".join(ch for ch in (name or "") if ch.isprintable())[:200]


def _attach_original(message: EmailMessage, raw: bytes) -> None:
    """The original email as `message/rfc822`, or as a plain .eml file if it will not parse."""
    try:
        inner = email.message_from_bytes(raw, policy=email.policy.compat32)
        part = EmailMessage(policy=_POLICY)
        part.set_content(inner)
        del part["Content-Disposition"]
        part["Content-Disposition"] = 'attachment; filename="original.eml"'
        part.as_bytes()  # prove it serialises before committing to it
        if not message.is_multipart():
            message.make_mixed()  # a mail with no other attachment (attach needs multipart)
        message.attach(part)
    except Exception:
        message.add_attachment(
            raw, maintype="application", subtype="octet-stream", filename="original.eml"
        )


def _finish(message: EmailMessage, recipients: Sequence[str]) -> Outgoing:
    return Outgoing(
        data=message.as_bytes(policy=message.policy),
        sender=str(message["From"]),
        recipients=tuple(dict.fromkeys(recipients)),
        message_id=str(message["Message-ID"]),
    )


def compose_forward(
    decision: Decision,
    reference: str,
    original: ParsedMessage,
    raw: bytes,
    readings: Sequence[FormReading],
    *,
    sender: str,
) -> Outgoing:
    """The referral to its recipients: the form and supporting documents byte for byte,
    plus the original email, and a plain summary with no form content in any header.
    """
    area = decision.area or "no area"
    subject = f"Prevent referral {reference} [{area}]{_FLAGS[decision.outcome]}"
    if decision.flagged:
        subject += " INCOMPLETE"
    message = _base(sender, decision.to, decision.cc, subject, "auto-generated")
    message["X-Referral-Reference"] = reference
    message["X-Referral-Outcome"] = decision.outcome.value
    _thread(message, original)
    lines = [
        f"Reference: {reference}",
        f"Outcome: {decision.outcome.value}"
        + (" (flagged by area policy)" if decision.flagged else ""),
        f"Area: {area}",
        f"Why: {decision.reason}",
        f"Referrer's email (From): {original.from_address or 'unknown'}",
        f"Received: {format_datetime(datetime.now(UTC))}",
    ]
    if decision.missing:
        lines.append("Missing required fields: " + "; ".join(map(field_wording, decision.missing)))
    if decision.outcome is Outcome.NEEDS_REVIEW:
        lines.append("A person needs to review this referral: the router could not finish it.")
    by_index = {a.index: a for a in original.attachments}
    attached = [by_index[i] for i in _attachments_for(decision, readings) if i in by_index]
    what = _what_is_attached(decision, attached, came_with=len(original.attachments))
    lines += ["", *what, "", "Sent by referral-router."]
    message.set_content("\n".join(lines))
    for attachment in attached:
        _attach(message, attachment)
    _attach_original(message, raw)
    return _finish(message, [*decision.to, *decision.cc])


def _what_is_attached(
    decision: Decision, attached: Sequence[Attachment], *, came_with: int
) -> list[str]:
    """The body's sentence on the attachments, true to what is attached."""
    if not attached:
        why = "it came with no attachment" if not came_with else "it holds all the email had"
        return [f"Attached: the original email only ({why})."]
    if decision.form_index is None:
        return [
            f"Attached unchanged: the {len(attached)} file(s) that came with the email,",
            "and the original email.",
        ]
    return [
        "The referral form and any supporting documents are attached unchanged,",
        "with the original email.",
    ]


def _attachments_for(decision: Decision, readings: Sequence[FormReading]) -> list[int]:
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
    """The reply to the referrer: reference, what happens next, 999 advice; no personal data."""
    if decision.ack_to is None:
        raise ValueError("decision has no acknowledgment address")
    text = ack_text(texts, decision.area)
    template = getattr(text, decision.outcome.value) or texts.default.forward or ""
    values = {
        "reference": reference,
        "area_name": area_name,
        "missing": "\n".join(f"  - {field_wording(field)}" for field in decision.missing),
        "from_address": decision.ack_to,
    }
    body = template.format(**values).rstrip()
    footer = (text.footer or "If anyone is in immediate danger, call 999.").format(**values)
    if "999" not in footer:
        footer += "\nIf anyone is in immediate danger, call 999."
    subject = (text.subject or "Prevent referral received: {reference}").format(**values)
    message = _base(sender, [decision.ack_to], [], subject, "auto-replied")
    message["X-Referral-Reference"] = reference
    _thread(message, original)
    message.set_content(f"{body}\n\n{footer.strip()}\n")
    return _finish(message, [decision.ack_to])


def compose_alert(
    subject: str,
    body: str,
    *,
    sender: str,
    to: str,
    original_raw: bytes | None = None,
    references: Sequence[str] = (),
) -> Outgoing:
    """A message to a person (the review address) about something the router cannot finish."""
    message = _base(sender, [to], [], subject, "auto-generated")
    if references:
        message["References"] = " ".join(references)
    message.set_content(body.rstrip() + "\n\nSent by referral-router.\n")
    if original_raw is not None:
        _attach_original(message, original_raw)
    return _finish(message, [to])

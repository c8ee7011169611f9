"""Build test emails: referrals with attachments, forwards, and delivery status reports."""

from __future__ import annotations

import email.policy
import re
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid
from typing import Any

# (filename, data, MIME type), e.g. ("referral.pdf", pdf_bytes, "application/pdf")
Part = tuple[str, bytes, str]

LOGO_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def build_email(
    *,
    sender: str | None = "teacher@school.example",
    to: Sequence[str] = ("prevent@lewisham.gov.uk",),
    cc: Sequence[str] = (),
    subject: str = "Prevent referral",
    body: str = "Please find attached.",
    attachments: Sequence[Part] = (),
    headers: Mapping[str, str] | None = None,
    message_id: str | None = None,
    reply_to: str | None = None,
    inline_images: Sequence[Part] = (),
) -> bytes:
    """An email as bytes (CRLF line ends), as a mail client would send it.

    Args:
        sender: the From header; None leaves From out.
        to, cc: recipient addresses (with or without display names).
        subject, body: the Subject and the text/plain body.
        attachments: (filename, data, MIME type) added as Content-Disposition attachment.
        headers: extra headers, written verbatim (any value, even an invalid one); a name
            that is already present is replaced.
        message_id: the Message-ID; one is generated when None.
        reply_to: the Reply-To header.
        inline_images: images referenced from an HTML body by Content-ID
            (multipart/related, Content-Disposition inline), like a signature logo.

    Returns:
        The message bytes.
    """
    msg = _compose(sender, to, cc, subject, message_id, reply_to)
    _fill(msg, body, attachments, inline_images)
    return _with_headers(msg.as_bytes(policy=email.policy.SMTP), headers or {})


def forwarded(inner: bytes, **kw: Any) -> bytes:
    """An email that carries `inner` as an attached message/rfc822 (a forwarded referral).

    Args:
        inner: the forwarded message's bytes.
        **kw: as for `build_email` (subject defaults to "Fwd: Prevent referral").

    Returns:
        The message bytes.
    """
    headers = kw.pop("headers", None)
    kw.setdefault("subject", "Fwd: Prevent referral")
    kw.setdefault("body", "Forwarding the referral below.")
    outer = BytesParser(policy=email.policy.default).parsebytes(build_email(**kw))
    assert isinstance(outer, EmailMessage)
    inner_msg = BytesParser(policy=email.policy.default).parsebytes(inner)
    outer.add_attachment(inner_msg)
    data = outer.as_bytes(policy=email.policy.SMTP)
    return _with_headers(data, headers or {})


def dsn(
    original_message_id: str,
    reporting_mta: str = "mx.example",
    status: str = "5.1.1",
    *,
    original_recipient: str = "preventreferrals@met.pnn.police.uk",
    to: str = "referrals@localhost",
) -> bytes:
    """A delivery status notification (RFC 3464) about a message the router sent.

    Args:
        original_message_id: the Message-ID of the bounced message, with angle brackets.
        reporting_mta: the MTA that reports.
        status: the DSN status code (5.x.x is a failure).
        original_recipient: the recipient the report is about.
        to: who receives the report (the router's address).

    Returns:
        A multipart/report with message/delivery-status and text/rfc822-headers parts.
    """
    action = "failed" if status.startswith("5") else "delayed"
    boundary = "dsn-boundary-0001"
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: {to}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: {make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "Your message could not be delivered to one or more recipients.",
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {reporting_mta}",
        "",
        f"Final-Recipient: rfc822; {original_recipient}",
        f"Original-Recipient: rfc822; {original_recipient}",
        f"Action: {action}",
        f"Status: {status}",
        f"Diagnostic-Code: smtp; 550 {status} user unknown",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
        f"From: {to}",
        f"To: {original_recipient}",
        "Subject: Prevent referral",
        f"Message-ID: {original_message_id}",
        "Auto-Submitted: auto-generated",
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def _compose(
    sender: str | None,
    to: Sequence[str],
    cc: Sequence[str],
    subject: str,
    message_id: str | None,
    reply_to: str | None,
) -> EmailMessage:
    """The top-level headers of a new message."""
    msg = EmailMessage()
    if sender is not None:
        msg["From"] = sender
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id or make_msgid(domain="school.example")
    return msg


def _fill(
    msg: EmailMessage, body: str, attachments: Sequence[Part], inline_images: Sequence[Part]
) -> None:
    """The body, the inline images under an HTML alternative, then the attachments."""
    msg.set_content(body)
    if inline_images:
        cids = [make_msgid(domain="school.example") for _ in inline_images]
        images = "".join(f'<img src="cid:{cid[1:-1]}">' for cid in cids)
        msg.add_alternative(f"<html><body><p>{body}</p>{images}</body></html>", subtype="html")
        html = msg.get_payload()[-1]
        for cid, (filename, data, mime_type) in zip(cids, inline_images, strict=True):
            maintype, _, subtype = mime_type.partition("/")
            html.add_related(
                data, maintype, subtype, cid=cid, filename=filename, disposition="inline"
            )
    for filename, data, mime_type in attachments:
        maintype, _, subtype = mime_type.partition("/")
        msg.add_attachment(data, maintype, subtype, filename=filename)


def _with_headers(data: bytes, headers: Mapping[str, str]) -> bytes:
    """Replace or add top-level header lines verbatim (values are written as UTF-8)."""
    if not headers:
        return data
    head, sep, rest = data.partition(b"\r\n\r\n")
    for name in headers:
        # Drop the header line and its folded continuation lines.
        pattern = re.compile(rb"(?im)^" + re.escape(name.encode()) + rb":.*(?:\r\n[ \t].*)*\r\n?")
        head = pattern.sub(b"", head + b"\r\n").rstrip(b"\r\n")
    extra = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers.items())
    return extra + head + sep + rest

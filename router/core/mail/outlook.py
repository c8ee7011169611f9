"""Turn an Outlook .msg attachment into an email, so it is examined like an attached message.

When someone attaches an email inside Outlook, the file that travels is a .msg (an OLE2
container, MS-OXMSG), not a message/rfc822 part. `msg_as_email` opens it with extract-msg
and rebuilds it as a MIME message: its body becomes a text attachment (so a form typed into
the body is read, and any other body travels as a supporting document), its attachments
keep their bytes and names, and messages attached inside it become message/rfc822 parts.
Nothing in it is run; only its streams are read.
"""

from __future__ import annotations

import email
import email.policy
import logging
from email.message import EmailMessage, Message
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MAX_DEPTH = 5  # .msg inside .msg inside ...
MAX_ATTACHMENTS = 100
# extract-msg reports damaged files through logging, which may quote names and subjects.
logging.getLogger("extract_msg").setLevel(logging.CRITICAL)


def msg_as_email(data: bytes) -> Message | None:
    """The .msg as an email (compat32 `Message`), or None when it cannot be opened."""
    import extract_msg  # in the analysis worker, at its first .msg: 0.15 to 0.2 s to import

    try:
        msg = extract_msg.openMsg(data, delayAttachments=False)
    except Exception as exc:  # extract-msg raises many types on damaged containers
        log.info("msg_unreadable", error=type(exc).__name__)
        return None
    try:
        rebuilt = _rebuild(msg, depth=0)
        return email.message_from_bytes(rebuilt.as_bytes(), policy=email.policy.compat32)
    except Exception as exc:  # a half-readable file: report it unreadable, never crash
        log.info("msg_unreadable", error=type(exc).__name__)
        return None
    finally:
        msg.close()


def _rebuild(msg: Any, depth: int) -> EmailMessage:
    """One message and what it carries, as MIME."""
    out = EmailMessage(policy=email.policy.default)
    out["Subject"] = "Outlook message"  # its own subject may hold personal data: not copied
    out.set_content("Converted from an Outlook .msg attachment.")
    body = _body(msg)
    if body is not None:
        text, subtype, name = body
        out.add_attachment(text, subtype=subtype, filename=name)
    for attachment in list(getattr(msg, "attachments", []))[:MAX_ATTACHMENTS]:
        _add_attachment(out, attachment, depth)
    return out


def _body(msg: Any) -> tuple[str, str, str] | None:
    """The message body: plain text, else HTML (as text, subtype, file name)."""
    text = getattr(msg, "body", None)
    if isinstance(text, str) and text.strip():
        return text, "plain", "message-body.txt"
    html = getattr(msg, "htmlBody", None)
    if isinstance(html, bytes) and html.strip():
        return html.decode("utf-8", errors="replace"), "html", "message-body.html"
    return None


def _add_attachment(out: EmailMessage, attachment: Any, depth: int) -> None:
    """Add one .msg attachment: bytes as they are, an embedded message as message/rfc822."""
    name = getattr(attachment, "longFilename", None) or getattr(attachment, "shortFilename", None)
    data = attachment.data
    if isinstance(data, bytes):
        out.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    elif depth < MAX_DEPTH and hasattr(data, "attachments"):
        inner = _rebuild(data, depth + 1)
        out.add_attachment(inner)

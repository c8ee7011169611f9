"""Recognise automatic mail (auto-replies, bulk, bounces, our own mail) per SPEC section 3.

Two verdicts matter: `ignore` (the outcome is `ignored`: nothing is forwarded) and
`acknowledge` (whether the sender may get a reply). RFC 3834 says never to answer
automatic mail, so anything automatic is not acknowledged, even when it is routed.

List mail: besides `Precedence: list`, a `List-Id` header (RFC 2919) also marks list mail,
because every list manager adds it. `List-Unsubscribe` alone does not: transactional
systems add it to ordinary mail too.
"""

from __future__ import annotations

import re
from email.message import Message
from email.utils import getaddresses

from pydantic import BaseModel, Field

from router.core.mail import headers
from router.core.mail.headers import RawHeaders

AUTOMATIC_KINDS = ("none", "auto_reply", "bulk", "bounce", "own_mail", "auto_generated", "noreply")

# Out-of-office subjects as Outlook, Exchange, Notes and others write them. A colon (or the
# end) must follow, so "Out of office hours referral" is not taken for an auto-reply.
_OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^(out of (the )?office( auto ?reply)?|automatic reply|auto[- ]?reply|auto[- ]?response"
    r"|auto)\s*(:|$)",
    re.IGNORECASE,
)
# Anywhere in the local part: "noreply", "gmail-noreply", "do_not_reply", "no.response".
_NOREPLY_LOCAL = re.compile(r"no[-_.]?reply|do[-_.]?not[-_.]?reply|no[-_.]?response")
_BOUNCE_LOCAL = re.compile(r"^(mailer[-_]?daemon|postmaster)$")
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_ORIGINAL_ID_HEADERS = ("Message-ID", "Original-Message-ID")
_REPORT_SCAN_PARTS = 50
_TEXT_SCAN_CHARS = 256 * 1024
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{1,990}>)", re.IGNORECASE | re.MULTILINE)


class AutomaticVerdict(BaseModel):
    """Whether a message is automatic, and what that means for routing and acknowledging."""

    ignore: bool = False
    acknowledge: bool = True
    reason: str = ""
    kind: str = "none"
    reported_message_ids: list[str] = Field(default_factory=list)


def classify(msg: Message, *, from_address: str | None, router_from: str) -> AutomaticVerdict:
    """Decide whether `msg` is automatic mail.

    Args:
        msg: the parsed message (any policy).
        from_address: the bare lower-case From address, or None when there is none.
        router_from: the router's own From address (ROUTER_FROM_ADDRESS).

    Returns:
        The verdict. Ignored kinds win over routed-but-not-acknowledged ones.
    """
    top = RawHeaders(msg)
    if not top:
        # Not an email at all (no header could be read): a person should look at it.
        return AutomaticVerdict(acknowledge=False, reason="no readable headers")
    own_addresses = headers.addresses([router_from])  # also accepts "Name <addr>"
    own = own_addresses[0] if own_addresses else router_from.strip().lower()
    verdict = _ignored(msg, top, from_address, own)
    if verdict is not None:
        if verdict.kind == "bounce":
            verdict.reported_message_ids = reported_message_ids(msg)
        return verdict
    return _not_acknowledged(top, from_address) or AutomaticVerdict()


def _ignore(kind: str, reason: str) -> AutomaticVerdict:
    """A verdict for mail that is recorded and otherwise left alone."""
    return AutomaticVerdict(ignore=True, acknowledge=False, reason=reason, kind=kind)


def _auto_submitted(top: RawHeaders) -> str | None:
    """The Auto-Submitted keyword (lower case, parameters dropped), or None when absent."""
    value = top.first("Auto-Submitted")
    if value is None:
        return None
    return headers.clean_text(value).split(";", 1)[0].strip().lower()


def _content_type(msg: Message) -> str:
    """The message's content type, lower case, without ever raising."""
    try:
        return msg.get_content_type()
    except (ValueError, TypeError, IndexError, AttributeError):
        return "text/plain"


def _ignored(
    msg: Message, top: RawHeaders, from_address: str | None, router_from: str
) -> AutomaticVerdict | None:
    """The verdict for mail that must be ignored, or None."""
    auto_submitted = _auto_submitted(top)
    if from_address == router_from and auto_submitted not in (None, "no"):
        return _ignore("own_mail", "the router's own mail")
    if _content_type(msg) == "multipart/report":
        return _ignore("bounce", "delivery report (multipart/report)")
    null_sender = _null_sender(top)
    if null_sender:
        return _ignore("bounce", f"bounce (null sender: {null_sender})")
    local = _sender_local_part(top, from_address)
    if _BOUNCE_LOCAL.match(local):
        return _ignore("bounce", f"bounce from {local}")
    if auto_submitted is not None and auto_submitted.startswith("auto-replied"):
        return _ignore("auto_reply", "auto-reply (Auto-Submitted: auto-replied)")
    for name in ("X-Autoreply", "X-Autorespond"):
        value = top.first(name)
        if value is not None and headers.clean_text(value).lower() not in ("no", "false", "0"):
            return _ignore("auto_reply", f"auto-reply ({name})")
    if _OUT_OF_OFFICE_SUBJECT.match(top.decoded("Subject")):
        return _ignore("auto_reply", "auto-reply (out-of-office subject)")
    precedence = headers.clean_text(top.first("Precedence") or "").lower()
    if precedence in _BULK_PRECEDENCE:
        return _ignore("bulk", f"bulk mail (Precedence: {precedence})")
    if top.has("List-Id"):
        return _ignore("bulk", "list mail (List-Id)")
    return None


def _sender_local_part(top: RawHeaders, from_address: str | None) -> str:
    """The local part of the sender, also for a bare "MAILER-DAEMON" with no domain."""
    if from_address:
        return from_address.rpartition("@")[0]
    try:
        pairs = getaddresses([headers.clean_text(value) for value in top.values("From")])
    except (ValueError, TypeError, IndexError, RecursionError):
        return ""
    addrs = [addr for _name, addr in pairs if addr]
    return addrs[0].partition("@")[0].strip("<>").lower() if addrs else ""


def _null_sender(top: RawHeaders) -> str:
    """Why the sender is null ("From <>", "Return-Path <>"), or "" when it is not.

    A message with no From header at all is not taken for a bounce: it may be a real
    referral from a broken client, so it is routed (and, having no address, never
    acknowledged) rather than ignored.
    """
    from_values = top.values("From")
    if from_values and all(headers.clean_text(value) in ("<>", '"" <>') for value in from_values):
        return "From <>"
    return_path = top.first("Return-Path")
    if return_path is not None and headers.clean_text(return_path) in ("<>", ""):
        return "Return-Path <>"
    return ""


def _not_acknowledged(top: RawHeaders, from_address: str | None) -> AutomaticVerdict | None:
    """The verdict for automatic mail that is routed but never acknowledged, or None."""
    auto_submitted = _auto_submitted(top)
    if auto_submitted not in (None, "no"):
        return AutomaticVerdict(
            acknowledge=False,
            reason=f"automatic mail (Auto-Submitted: {auto_submitted[:40]})",
            kind="auto_generated",
        )
    suppress = top.first("X-Auto-Response-Suppress")
    # Outlook writes "None" to mean "suppress nothing".
    if suppress is not None and headers.clean_text(suppress).lower() != "none":
        return AutomaticVerdict(
            acknowledge=False,
            reason="automatic mail (X-Auto-Response-Suppress)",
            kind="auto_generated",
        )
    local = from_address.rpartition("@")[0] if from_address else ""
    if _NOREPLY_LOCAL.search(local):
        return AutomaticVerdict(acknowledge=False, reason="no-reply sender", kind="noreply")
    if from_address is None:
        return AutomaticVerdict(
            acknowledge=False, reason="no usable From address to acknowledge", kind="noreply"
        )
    return None


def reported_message_ids(msg: Message) -> list[str]:
    """The Message-IDs of the original message(s) a bounce or delivery report is about.

    Looks, in order, at the returned message or headers in a multipart/report,
    Original-Message-ID headers, "Message-ID:" lines quoted in the text of a plain bounce,
    and finally In-Reply-To / References.

    Args:
        msg: the bounce.

    Returns:
        Message-IDs with angle brackets, deduplicated, in order.
    """
    top = RawHeaders(msg)
    own_id = headers.message_ids(top.values("Message-ID"))
    found: list[str] = []
    for part in _report_parts(msg):
        part_headers = top if part is msg else RawHeaders(part)
        for name in _ORIGINAL_ID_HEADERS:
            found.extend(headers.message_ids(part_headers.values(name)))
        found.extend(_quoted_ids(part))
    found = [value for value in dict.fromkeys(found) if value not in own_id]
    if found:
        return found
    return headers.message_ids(top.values("In-Reply-To") + top.values("References"))


def _report_parts(msg: Message) -> list[Message]:
    """The message and its parts, breadth first, where the original's id may be (bounded)."""
    parts: list[Message] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and len(parts) < _REPORT_SCAN_PARTS:
        part, depth = stack.pop(0)
        parts.append(part)
        payload = _payload(part)
        if isinstance(payload, list) and depth < 5:
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    return parts


def _payload(part: Message) -> object:
    """`part.get_payload()` without ever raising."""
    try:
        return part.get_payload()
    except (ValueError, TypeError, AttributeError, LookupError):
        return None


def _quoted_ids(part: Message) -> list[str]:
    """Message-IDs in "Message-ID:" lines of a text part (text/rfc822-headers, plain bounces)."""
    try:
        if part.get_content_maintype() != "text":
            return []
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, AttributeError, LookupError):
        return []
    if not isinstance(data, bytes):
        return []
    text = data[:_TEXT_SCAN_CHARS].decode("utf-8", "replace")
    return _MESSAGE_ID_LINE.findall(text)

"""An audit trail's events, and each in the words of a non-developer.

`AuditEvent` is one row of the journal's `events` table as read back
(`router.journal.audit`); `describe` turns one into a sentence such as "forwarded to
preventreferrals@met.pnn.police.uk, cc mashagency@lewisham.gov.uk, accepted by the relay at
14:27:08". Used by `show` and by the console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened to a message (`detail` holds no form value)."""

    at: float
    event: str
    reference: str | None = None
    mail_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The event as `show --json` prints it (SPEC section 7)."""
        stamp = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")
        item: dict[str, Any] = {"at": stamp.replace("+00:00", "Z"), "event": self.event}
        if self.reference:
            item["reference"] = self.reference
        if self.mail_id:
            item["mail"] = self.mail_id
        item.update(self.detail)
        return item


# How each kind of mail is named in a sentence.
_MAIL_NAMES = {
    "forward": "the referral to the police",
    "incomplete_notice": "the incomplete referral to the council's Prevent team",
    "review": "the referral for review",
    "ack": "the acknowledgment to the referrer",
    "alert": "an alert to the review address",
}
_SENT_VERBS = {
    "forward": "forwarded",
    "incomplete_notice": "sent the incomplete referral",
    "review": "sent for review",
    "ack": "acknowledged",
    "alert": "alert sent",
}
_OUTCOMES = {
    "forward": "forward to the police",
    "incomplete": "incomplete (required fields missing)",
    "needs_review": "needs review by a person",
    "ignored": "ignored (automatic mail)",
}


Decided = dict[str | None, dict[str, Any]]


def _received(event: AuditEvent, decided: Decided) -> str:
    detail = event.detail
    if detail.get("backfilled"):
        return "received (recorded before the audit trail existed)"
    inbox = ", ".join(detail.get("inbox") or []) or "the inbox"
    source = {"smtp": "the SMTP listener", "imap": "the IMAP mailbox", "graph": "Microsoft Graph"}
    how = source.get(str(detail.get("source")), str(detail.get("source", "the inbox")))
    size = detail.get("size")
    extra = " (too large to download: left in the inbox)" if detail.get("oversize") else ""
    return f"received through {how} for {inbox}" + (f", {size:,} bytes" if size else "") + extra


def _decided(event: AuditEvent, decided: Decided) -> str:
    detail = event.detail
    outcome = str(detail.get("outcome"))
    text = f"decided {event.reference}: {_OUTCOMES.get(outcome, outcome)}"
    text += f", area {detail['area']}" if detail.get("area") else ", no area"
    lines = [text]
    if detail.get("reason"):
        lines.append(f"why: {detail['reason']}")
    if detail.get("missing"):
        lines.append(f"missing fields: {', '.join(detail['missing'])}")
    if detail.get("to"):
        lines.append(f"to {_addresses(detail['to'], detail.get('cc') or [])}")
    if "ack_to" in detail:
        lines.append(f"acknowledgment to {detail['ack_to'] or 'nobody'}")
    return "\n".join(lines)


def _recipients(event: AuditEvent, decided: Decided) -> str:
    """To and cc of a mail: split as the decision named them, where it did."""
    recipients = list(event.detail.get("recipients") or [])
    if not recipients:
        return "(address removed by the retention purge)"
    decision = decided.get(event.reference, {})
    to = [r for r in recipients if r in (decision.get("to") or [])]
    if event.detail.get("kind") in ("forward", "incomplete_notice", "review") and to:
        return _addresses(to, [r for r in recipients if r not in to])
    return _addresses(recipients, [])


def _queued(event: AuditEvent, decided: Decided) -> str:
    kind = str(event.detail.get("kind"))
    return f"queued {_MAIL_NAMES.get(kind, kind)}, to {_recipients(event, decided)}"


def _sent(event: AuditEvent, decided: Decided) -> str:
    kind = str(event.detail.get("kind"))
    clock = datetime.fromtimestamp(event.at, UTC).strftime("%H:%M:%S")
    reply = event.detail.get("reply")
    text = f"{_SENT_VERBS.get(kind, 'sent ' + kind)} to {_recipients(event, decided)}"
    text += f", accepted by the relay at {clock}"
    attempts = event.detail.get("attempts")
    if isinstance(attempts, int) and attempts > 1:
        text += f" (attempt {attempts})"
    return text + (f"\n(reply {reply})" if reply else "")


def _failed(event: AuditEvent, decided: Decided) -> str:
    kind = str(event.detail.get("kind"))
    name = _MAIL_NAMES.get(kind, kind)
    if event.detail.get("held"):
        return f"held back {name}: {event.detail['held']}"
    reply = event.detail.get("reply") or "no reply"
    if event.detail.get("final"):
        return f"FAILED for good: {name}, to {_recipients(event, decided)}\n(reply {reply})"
    return f"delivery of {name} deferred, will retry\n(reply {reply})"


def _bounced(event: AuditEvent, decided: Decided) -> str:
    kind = str(event.detail.get("kind"))
    return (
        f"BOUNCED: a delivery report says {_MAIL_NAMES.get(kind, kind)} did not arrive"
        f" ({_recipients(event, decided)})"
    )


def _settled(event: AuditEvent, decided: Decided) -> str:
    folder = event.detail.get("folder")
    return f"inbox copy moved to {folder}" if folder else "inbox copy settled"


def _quarantined(event: AuditEvent, decided: Decided) -> str:
    return f"QUARANTINED (set aside for a person): {event.detail.get('error', '')}".rstrip(": ")


def _reprocessed(event: AuditEvent, decided: Decided) -> str:
    by = event.detail.get("by", "someone")
    if event.detail.get("what") == "send":
        return f"reprocessed by {by}: failed mail queued again"
    return f"reprocessed by {by}: queued to be decided again"


def _purged(event: AuditEvent, decided: Decided) -> str:
    return "purged by the retention policy: message, mail and the referrer's address removed"


def _generic(event: AuditEvent, decided: Decided) -> str:
    return event.event


def _addresses(to: list[str], cc: list[str]) -> str:
    text = ", ".join(to)
    return text + (f", cc {', '.join(cc)}" if cc else "")


_SENTENCES: dict[str, Callable[[AuditEvent, Decided], str]] = {
    "received": _received,
    "decided": _decided,
    "queued": _queued,
    "sent": _sent,
    "failed": _failed,
    "bounced": _bounced,
    "settled": _settled,
    "quarantined": _quarantined,
    "reprocessed": _reprocessed,
    "purged": _purged,
}


def describe(event: AuditEvent, decided: Decided) -> str:
    """One event in words (several lines for a decision); `decided` maps each reference to
    its decided event's detail, so that a mail's recipients split into To and Cc."""
    return _SENTENCES.get(event.event, _generic)(event, decided)


def masked(event: AuditEvent, mask: Callable[[str], str]) -> AuditEvent:
    """The event with the referrer's address (an acknowledgment's recipients, `ack_to`)
    passed through `mask`, for pages that show a trail to more people than `show` does."""
    detail = dict(event.detail)
    if isinstance(detail.get("ack_to"), str):
        detail["ack_to"] = mask(detail["ack_to"])
    if detail.get("kind") == "ack":
        detail["recipients"] = [mask(str(r)) for r in detail.get("recipients") or []]
    return AuditEvent(event.at, event.event, event.reference, event.mail_id, detail)

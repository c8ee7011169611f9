"""A readable account of one routing run, like `sieve-test`: what was found, what decided."""

from __future__ import annotations

from router.core.analysis import Analysis
from router.core.rules.model import Rules
from router.models import FormStatus


def explain(name: str, result: Analysis, rules: Rules) -> str:
    """Describe the analysis of one file for a person checking a rules change.

    This is shown to the admin who holds the file, so it names the fields found, but it
    never prints their values.
    """
    message = result.message
    verdict = message.automatic
    lines = [f"{name}:"]
    lines.append(f"  message-id: {message.message_id or '(none)'}")
    lines.append(f"  from: {message.from_address or '(no usable From address)'}")
    lines.append(f"  inbox addresses: {', '.join(message.recipients) or '(none)'}")
    if verdict.kind != "none":
        lines.append(f"  automatic mail: {verdict.reason}")
    for reading in result.readings:
        label = reading.filename or "(unnamed)"
        detail = {
            FormStatus.FORM: f"referral form; fields found: {', '.join(sorted(reading.fields))}",
            FormStatus.SUPPORTING: "supporting document (no form fields)",
            FormStatus.UNREADABLE: f"cannot be read: {reading.reason}",
            FormStatus.SKIPPED: "inline image, not a form",
        }[reading.status]
        lines.append(f"  attachment {reading.attachment_index} {label} [{reading.kind}]: {detail}")
    if not result.readings and not verdict.ignore:
        lines.append("  attachments: none")
    for number, decision in enumerate(result.decisions, start=1):
        lines.append(f"  decision {number}: {decision.outcome}")
        lines.append(f"    area: {decision.area or '(none)'} (signal: {decision.signal or 'none'})")
        lines.append(f"    to: {', '.join(decision.to) or '-'}")
        lines.append(f"    cc: {', '.join(decision.cc) or '-'}")
        lines.append(f"    acknowledge: {decision.ack_to or 'no'}")
        if decision.missing:
            lines.append(f"    missing: {', '.join(decision.missing)}")
        lines.append(f"    why: {decision.reason}")
    lines.append(f"  rules version: {rules.version[:12]}")
    return "\n".join(lines)

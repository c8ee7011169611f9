"""`referral-router show REF|ID`: one message's audit trail, in words a non-developer reads.

The data comes from `router.journal.audit` (`Journal.audit_trail`), the words from
`router.core.trail` (which the console uses too); this module lays them out.
"""

from __future__ import annotations

from datetime import UTC, datetime

from router.core.trail import describe
from router.journal.audit import AuditTrail


def render_trail(trail: AuditTrail) -> str:
    """The whole trail as text: a heading, then one line (or a few) per event."""
    heading = f"Message {trail.message_id}"
    if trail.references:
        heading += f" (referral {', '.join(trail.references)})"
    lines = [heading, f"Now: {trail.state}", ""]
    decided = {e.reference: e.detail for e in trail.events if e.event == "decided"}
    for event in trail.events:
        text = describe(event, decided)
        stamp = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        first, *rest = text.split("\n")
        lines.append(f"{stamp}  {first}")
        lines += [f"{'':25}{line}" for line in rest]
    if not trail.events:
        lines.append("(no events recorded)")
    return "\n".join(lines) + "\n"

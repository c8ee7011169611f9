"""The routing engine: from a parsed email and its form readings to one decision per form.

This module's sole purpose is to decide; it sends nothing and stores nothing. It implements
SPEC sections 3 and 4: which outcome, which area, and which rule-named addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from router.core.dates import parse_date
from router.core.forms.fields import field_wording, missing_fields
from router.core.mail.parse import ParsedMessage
from router.core.rules.matcher import AreaMatcher, extract_postcode
from router.core.rules.model import AgeGroup, Area, IncompletePolicy, Rules
from router.models import Decision, FormReading, FormStatus, Outcome


@dataclass(frozen=True)
class AreaFinding:
    """Where a form places the referred person, and on what evidence."""

    area: Area | None
    signal: str | None  # "postcode", "local_authority", "inbox" or None
    outside: bool = False  # a signal was present but matched no area


class RoutingEngine:
    """Applies one rules version to messages. Cheap to call; build once per rules load."""

    def __init__(self, rules: Rules, *, review_address: str, today: date | None = None) -> None:
        self.rules = rules
        self.review_address = review_address
        self.matcher = AreaMatcher(rules.areas)
        self._today = today

    def decide(self, message: ParsedMessage, readings: list[FormReading]) -> list[Decision]:
        """Make every decision for one email (one per form; exactly one when there is none).

        Args:
            message: the parsed email.
            readings: one reading per attachment of the email.

        Returns:
            The decisions, forms first in attachment order, then unreadable documents.
        """
        verdict = message.automatic
        if verdict.ignore:
            return [self._ignored(message)]
        ack_to = message.from_address if verdict.acknowledge and not message.dmarc_fail else None
        inbox_area = self.matcher.by_inbox(message.recipients)
        forms = [r for r in readings if r.status is FormStatus.FORM]
        decisions = [self._decide_form(r, inbox_area, ack_to) for r in forms]
        for reading in readings:
            if reading.status is not FormStatus.UNREADABLE:
                continue
            # An image beside a readable form is a screenshot or a photo of evidence:
            # it travels with the forward. Alone, it may be a photographed form.
            if reading.kind == "image" and forms:
                continue
            decisions.append(self._review(inbox_area, ack_to, reading, reading.reason))
        if message.too_many_attachments:
            # Attachments past the cap were never read: a form among them would otherwise
            # get no decision at all. A person gets everything (the original is attached).
            read = len(message.attachments)
            reason = f"more than {read} attachments: only the first {read} were read"
            decisions.append(self._review(inbox_area, ack_to, None, reason))
        if not decisions:
            supporting = sum(r.status is FormStatus.SUPPORTING for r in readings)
            reason = (
                f"no referral form found ({supporting} readable attachment(s) without form fields)"
                if supporting
                else "no referral form attached"
            )
            decisions.append(self._review(inbox_area, ack_to, None, reason))
        if verdict.acknowledge and message.dmarc_fail:
            note = "; not acknowledged: the From address failed DMARC (it may be forged)"
            decisions = [d.model_copy(update={"reason": d.reason + note}) for d in decisions]
        return decisions

    def _ignored(self, message: ParsedMessage) -> Decision:
        verdict = message.automatic
        return Decision(
            outcome=Outcome.IGNORED,
            area=None,
            to=[],
            cc=[],
            ack_to=None,
            missing=[],
            reason=verdict.reason,
            fields={},
            automatic=verdict.kind,
            bounce_of=list(verdict.reported_message_ids),
        )

    def find_area(self, fields: dict[str, str], inbox_area: Area | None) -> AreaFinding:
        """Apply the first signal the form carries (SPEC section 4)."""
        postcode = extract_postcode(fields.get("person_postcode", "")) or extract_postcode(
            fields.get("person_address", "")
        )
        if postcode:
            return AreaFinding(self.matcher.by_postcode(postcode), "postcode", outside=True)
        authority = fields.get("local_authority", "").strip()
        if authority and not self._is_placeholder(authority):
            area = self.matcher.by_local_authority(authority)
            return AreaFinding(area, "local_authority", outside=True)
        if inbox_area is not None:
            return AreaFinding(inbox_area, "inbox")
        return AreaFinding(None, None)

    def _decide_form(
        self, reading: FormReading, inbox_area: Area | None, ack_to: str | None
    ) -> Decision:
        fields = reading.fields
        finding = self.find_area(fields, inbox_area)
        if finding.area is None:
            if finding.outside:
                signal = (finding.signal or "signal").replace("_", " ")
                reason = f"the form's {signal} matches no known area"
            else:
                reason = "no area found: no postcode, no local authority and an unknown inbox"
            return self._review(inbox_area, ack_to, reading, reason)
        area = finding.area
        missing = missing_fields(fields, self.rules.forms)
        copy_inbox_team = (
            [inbox_area.team] if inbox_area and inbox_area.id != area.id and inbox_area.team else []
        )
        evidence = f"area {area.id} from the {(finding.signal or 'signal').replace('_', ' ')}"
        if not missing:
            cc = [*area.cc, *self._condition_cc(area, fields), *copy_inbox_team]
            return self._make(
                Outcome.FORWARD,
                area.id,
                [area.to],
                cc,
                ack_to,
                reading,
                reason=f"complete form; {evidence}",
                signal=finding.signal,
            )
        if area.incomplete_policy is IncompletePolicy.FORWARD_FLAGGED:
            cc = [*area.cc, *self._condition_cc(area, fields), *copy_inbox_team]
            to = [area.to]
            flagged = True
            policy = "forwarded flagged (area policy)"
        else:
            to = [area.team or self.review_address]
            cc = copy_inbox_team
            flagged = False
            policy = "sent to the council Prevent team"
        return self._make(
            Outcome.INCOMPLETE,
            area.id,
            to,
            cc,
            ack_to,
            reading,
            reason=f"required fields missing: {_worded(missing)}; {evidence}; {policy}",
            signal=finding.signal,
            missing=missing,
            flagged=flagged,
        )

    def _review(
        self, inbox_area: Area | None, ack_to: str | None, reading: FormReading | None, reason: str
    ) -> Decision:
        team = inbox_area.team if inbox_area else None
        return self._make(
            Outcome.NEEDS_REVIEW,
            inbox_area.id if inbox_area else None,
            [team or self.review_address],
            [],
            ack_to,
            reading,
            reason=reason,
            signal="inbox" if inbox_area else None,
        )

    def _make(
        self,
        outcome: Outcome,
        area: str | None,
        to: list[str],
        cc: list[str],
        ack_to: str | None,
        reading: FormReading | None,
        *,
        reason: str,
        signal: str | None,
        missing: list[str] | None = None,
        flagged: bool = False,
    ) -> Decision:
        to = _unique(to)
        cc = [address for address in _unique(cc) if address not in to]
        return Decision(
            outcome=outcome,
            area=area,
            to=to,
            cc=cc,
            ack_to=ack_to,
            missing=missing or [],
            reason=reason,
            fields=dict(reading.fields) if reading else {},
            form=reading.filename if reading else None,
            form_index=reading.attachment_index if reading else None,
            signal=signal,
            flagged=flagged,
        )

    def _condition_cc(self, area: Area, fields: dict[str, str]) -> list[str]:
        if not area.conditions:
            return []
        age_group = self.age_group(fields.get("person_dob", ""))
        return [
            address
            for condition in area.conditions
            if condition.age is age_group
            for address in condition.cc
        ]

    def age_group(self, dob_text: str) -> AgeGroup | None:
        """Child (under 18) or adult on the day of the decision; None when the date is unclear."""
        born = parse_date(dob_text)
        if born is None:
            return None
        today = self._today or date.today()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        return AgeGroup.CHILD if age < 18 else AgeGroup.ADULT

    def _is_placeholder(self, value: str) -> bool:
        placeholders = {p.strip().lower() for p in self.rules.forms.placeholders}
        return value.strip().lower() in placeholders


def _unique(addresses: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for address in addresses:
        seen.setdefault(address.strip().lower(), None)
    return list(seen)


def _worded(missing: list[str]) -> str:
    """Missing fields in the form's words, for a reason a person reads (SPEC section 3)."""
    return "; ".join(map(field_wording, missing))

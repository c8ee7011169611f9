"""The figures a decision leaves for `report`: nothing personal, only bands and categories.

Made at decision time from the form's values, which are never stored: the age band of the
person on the day of referral, the gender as the form gives it, and the referring sector
from the domain of the referrer's email address (SPEC sections 6 and 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from router.core.dates import parse_date
from router.core.rules.model import Rules
from router.models import Decision

AGE_BANDS = (
    "10 or under",
    "11 to 15",
    "16 to 17",
    "18 to 20",
    "21 to 30",
    "31 to 40",
    "41 to 50",
    "51 to 60",
    "61 and over",
    "unknown",
)
GENDERS = ("male", "female", "other", "unknown")
SECTORS = (
    "education",
    "health",
    "local authority",
    "police",
    "probation and prisons",
    "community",
    "other",
    "unknown",
)
# (upper bound of the age, band): the first bound the age is at most.
_BAND_LIMITS = ((10, 0), (15, 1), (17, 2), (20, 3), (30, 4), (40, 5), (50, 6), (60, 7))
_MALE = {"male", "m", "man", "boy"}
_FEMALE = {"female", "f", "woman", "girl"}
_UNKNOWN = {"", "unknown", "not known", "n/a", "na", "none", "-", "?", "tbc", "prefer not to say"}


@dataclass(frozen=True)
class DecisionFigures:
    """What `report` counts of one decision (see `router.journal.stats`)."""

    age_band: str
    gender: str
    sector: str


def figures(
    decision: Decision, *, sender: str | None, received_at: float, rules: Rules
) -> DecisionFigures:
    """The figures of one decision, from its form's values and the message's sender."""
    fields = decision.fields
    day = datetime.fromtimestamp(received_at, UTC).date()
    referrer = _address(fields.get("referrer_email")) or _address(sender)
    return DecisionFigures(
        age_band=age_band(fields.get("person_dob"), day),
        gender=gender(fields.get("person_gender")),
        sector=sector(referrer, rules),
    )


def age_band(dob: str | None, on: date) -> str:
    """The band of the age on `on` of a person born on `dob` (as a form writes it: day
    first, `01/02/2001`, `2001-02-01`, `1 February 2001`); `unknown` when unreadable."""
    born = parse_date(dob or "")
    if born is None or born > on:
        return "unknown"
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if age > 120:
        return "unknown"
    for limit, band in _BAND_LIMITS:
        if age <= limit:
            return AGE_BANDS[band]
    return "61 and over"


def gender(text: str | None) -> str:
    """`male`, `female`, `other` (anything else the form says) or `unknown` (nothing)."""
    value = (text or "").strip().lower().rstrip(".")
    if value in _UNKNOWN:
        return "unknown"
    if value in _MALE:
        return "male"
    if value in _FEMALE:
        return "female"
    return "other"


def sector(address: str | None, rules: Rules) -> str:
    """The sector of an email address by its domain, the most specific listed first."""
    if not address:
        return "unknown"
    labels = address.rpartition("@")[2].strip(" .>").lower().split(".")
    by_domain = {
        domain: name.value for name, domains in rules.sectors.sectors.items() for domain in domains
    }
    for start in range(len(labels)):
        found = by_domain.get(".".join(labels[start:]))
        if found:
            return found
    return "other"


def _address(text: str | None) -> str | None:
    """A bare address found in a form value or header, or None."""
    match = re.search(r"[^\s<>@,;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text or "")
    return match.group(0).lower() if match else None

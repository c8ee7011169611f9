"""Pydantic models of the rules directory: areas, form labels and acknowledgment texts.

Layout of a rules directory (every file is YAML):

    areas/<area-id>.yaml   one routing entry per file (`Area`)
    forms.yaml             label lists and completeness policy (`FormRules`)
    acknowledgments.yaml   acknowledgment texts, a default plus per-area overrides (`AckTexts`)
    sectors.yaml           referring sectors by email domain, for `report` (`SectorRules`)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _lower_address(value: str) -> str:
    """Normalise and sanity-check a bare addr-spec (no display name)."""
    address = value.strip().lower()
    local, sep, domain = address.rpartition("@")
    if not sep or not local or "." not in domain or any(c in address for c in " <>,;\r\n\t"):
        raise ValueError(f"{value!r} is not an email address")
    return address


EmailAddress = Annotated[str, AfterValidator(_lower_address)]


class Strict(BaseModel):
    """Base for rules models: unknown keys are errors (a typo'd key must not be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class IncompletePolicy(StrEnum):
    """What an area does with a readable form that misses required fields."""

    TEAM = "team"  # default: to the council Prevent team only, never the police
    FORWARD_FLAGGED = "forward_flagged"  # to the force anyway, subject flagged INCOMPLETE


class AgeGroup(StrEnum):
    CHILD = "child"  # under 18 on the day the referral is decided
    ADULT = "adult"


class Condition(Strict):
    """An extra rule that applies when the referred person's age group matches."""

    age: AgeGroup
    cc: list[EmailAddress] = Field(default_factory=list)


class Postcodes(Strict):
    """Postcode coverage: exact outward codes (`SE13`) and/or whole postcode areas (`CT`)."""

    districts: list[str] = Field(default_factory=list)
    areas: list[str] = Field(default_factory=list)


class Area(Strict):
    """One council's (or group's) routing entry."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    names: list[str] = Field(min_length=1)
    postcodes: Postcodes = Field(default_factory=Postcodes)
    inboxes: list[EmailAddress] = Field(default_factory=list)
    to: EmailAddress
    cc: list[EmailAddress] = Field(default_factory=list)
    # The council Prevent team mailbox: incomplete and needs_review mail goes here.
    # None means the operator's review address is used instead.
    team: EmailAddress | None = None
    incomplete_policy: IncompletePolicy = IncompletePolicy.TEAM
    conditions: list[Condition] = Field(default_factory=list)
    notes: str = ""


class SectionWordings(Strict):
    """Headings that open a section of a form, by whose details the section holds."""

    person: list[str] = Field(default_factory=list)  # the individual referred
    referrer: list[str] = Field(default_factory=list)  # the person making the referral
    other: list[str] = Field(default_factory=list)  # parents, carers, other agencies: neither


class FormRules(Strict):
    """How form labels map to canonical fields, and what counts as complete."""

    # canonical field -> labels that mean it (matched after normalisation)
    labels: dict[str, list[str]]
    # canonical field -> list of label groups whose values are joined, e.g.
    # person_name: [[Forename(s), Surname], [First name, Last name]]
    composite: dict[str, list[list[str]]] = Field(default_factory=dict)
    # prefixes stripped from machine field names before matching: txt, fld, ...
    prefixes: list[str] = Field(default_factory=list)
    # required canonical names; `referrer_contact` means referrer_email or referrer_phone,
    # `person_address` is satisfied by an address or a postcode.
    required: list[str]
    placeholders: list[str] = Field(default_factory=list)
    # section headings ("Referrer details") that say whose Name / Email / Telephone follow
    sections: SectionWordings = Field(default_factory=SectionWordings)


class AckText(Strict):
    """Acknowledgment texts for one area (or the default). Placeholders: {reference},
    {area_name}, {missing} (a bulleted list), {from_address}."""

    subject: str | None = None
    forward: str | None = None
    incomplete: str | None = None
    needs_review: str | None = None
    footer: str | None = None  # the 999 advice: always appended


class AckTexts(Strict):
    default: AckText
    areas: dict[str, AckText] = Field(default_factory=dict)
    daily_limit_per_sender: int = Field(default=20, ge=0)


class Sector(StrEnum):
    """The referring sectors a rules file may name (SPEC section 7, `report`)."""

    EDUCATION = "education"
    HEALTH = "health"
    LOCAL_AUTHORITY = "local authority"
    POLICE = "police"
    PROBATION_AND_PRISONS = "probation and prisons"
    COMMUNITY = "community"
    OTHER = "other"


def _lower_domain(value: str) -> str:
    domain = value.strip().lower().lstrip("@").removeprefix(".")
    labels = domain.split(".")
    if not domain or any(not label or not label.replace("-", "").isalnum() for label in labels):
        raise ValueError(f"{value!r} is not an email domain (such as sch.uk or nhs.net)")
    return domain


EmailDomain = Annotated[str, AfterValidator(_lower_domain)]


class SectorRules(Strict):
    """Which sector refers from which email domains (a domain counts for its subdomains
    too; the most specific domain listed wins)."""

    sectors: dict[Sector, list[EmailDomain]] = Field(default_factory=dict)


class Rules(BaseModel):
    """A validated, loaded rules directory."""

    model_config = ConfigDict(frozen=True)

    areas: list[Area]
    forms: FormRules
    acknowledgments: AckTexts
    sectors: SectorRules = Field(default_factory=SectorRules)
    version: str  # content hash of the directory, recorded with every decision

"""The layout corpus's table: which forms to write (layouts x variations) and what each reads to.

A `Form` is what a person filled in: blocks of (label, value) rows, with or without section
headings, lines of title or instructions around them, and how it is typed (capitals, bold
values, odd spacing around colons, how a blank answer looks). `CASES` crosses every layout
the README claims (`tests.core.forms.corpus_render.LAYOUTS`) with every variation that the layout
can show; each case's expected canonical fields follow from its rows. Labels rotate through
every synonym in `rules/forms.yaml`, so the table as a whole uses each of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from router.core.rules.loader import load_rules
from tests.conftest import ROOT

RULES = load_rules(ROOT / "rules").forms

PERSON_VALUES = {
    "person_name": "Amira Khan",
    "person_dob": "01/02/2001",
    "person_gender": "Female",
    "person_address": "1 Example Road, London",
    "person_postcode": "SE13 6LH",
    "local_authority": "Lewisham",
    "concern": "Fictional concern written for tests only",
    "consent": "Yes",
}
REFERRER_VALUES = {
    "referrer_name": "Sam Referrer",
    "referrer_organisation": "Example Academy",
    "referrer_email": "sam.referrer@example.org",
    "referrer_phone": "020 7946 0000",
}
# The person's own contact details on a sectioned form: nobody's canonical field.
PERSON_CONTACT = [("Email", "amira@person.example"), ("Telephone", "07700 900123")]
BLANK_FIELDS = ("person_gender", "referrer_phone")
PROMPT = "Click or tap here to enter text."

TITLES = (
    "Prevent referral - please complete all sections",
    "PREVENT REFERRAL FORM",
    "Please complete your details below and email this form to the Prevent team.",
    "Referral form: please type in the boxes",
)
AFTER = (
    "Thank you for completing this form",
    "Please email the completed form to your local Prevent team.",
    "Once you have sent this form you will receive an acknowledgement.",
)


@dataclass(frozen=True)
class Row:
    """One question on the form: its label, what was typed, and what it must read as."""

    label: str
    value: str  # "" is a blank answer, written as the form's `blank` style says
    field: str | None  # the canonical field it must fill; None: nobody's


@dataclass(frozen=True)
class Form:
    """One filled-in form, independent of its layout."""

    blocks: tuple[tuple[str | None, tuple[Row, ...]], ...]
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    heading: str = ""  # "bold", "style", "row", "numbered"; "" for none
    capitals: bool = False
    bold_values: bool = False
    bold_all: bool = False
    colon: str = ": "
    blank: str = "empty"  # "empty", "leaders", "placeholder", "prompt"
    ticks: bool = False

    def expected(self) -> dict[str, str]:
        """Canonical field -> value the reader must give (placeholders are kept as typed)."""
        found: dict[str, str] = {}
        for _, rows in self.blocks:
            for row in rows:
                if row.field is None or row.field in found:
                    continue
                if row.value:
                    found[row.field] = row.value
                elif self.blank == "placeholder":
                    found[row.field] = "N/A"
        return found

    def rows(self) -> list[Row]:
        """Every row, in reading order."""
        return [row for _, rows in self.blocks for row in rows]


def synonym(field: str, turn: int, generic: bool = False) -> str:
    """The `turn`th label of a field in the rules (its generic ones only, with `generic`)."""
    labels = RULES.labels[field]
    if generic:
        labels = [label for label in labels if not _explicit(label)]
    return labels[turn % len(labels)]


def _explicit(label: str) -> bool:
    """True when a label names its side itself ("Referrer email", "Your email")."""
    words = label.lower().replace("'s", "").split()
    return bool({"referrer", "your", "referring", "individual", "person"} & set(words))


def _person_rows(turn: int, sectioned: bool) -> tuple[Row, ...]:
    """The person's block: a name first, then the rest (generic name when sectioned)."""
    rows = [Row("Name" if sectioned else synonym("person_name", turn), "", "person_name")]
    for field in PERSON_VALUES:
        if field != "person_name":
            rows.append(Row(synonym(field, turn), "", field))
    rows = [replace(row, value=_value(row)) for row in rows]
    if sectioned:
        rows[4:4] = [Row(label, value, None) for label, value in PERSON_CONTACT]
    return tuple(rows)


def _referrer_rows(turn: int, sectioned: bool) -> tuple[Row, ...]:
    """The referrer's block: the name first, then generic organisation/email/phone labels."""
    name = "Name" if sectioned else synonym("referrer_name", turn)
    email = "Email" if sectioned else synonym("referrer_email", turn // 2, generic=turn % 2 == 0)
    phone = (
        "Telephone" if sectioned else synonym("referrer_phone", turn // 3, generic=turn % 3 != 2)
    )
    rows = [
        Row(name, "", "referrer_name"),
        Row(synonym("referrer_organisation", turn), "", "referrer_organisation"),
        Row(email, "", "referrer_email"),
        Row(phone, "", "referrer_phone"),
    ]
    return tuple(replace(row, value=_value(row)) for row in rows)


def _value(row: Row) -> str:
    """The typed value of a row's field."""
    assert row.field is not None
    return {**PERSON_VALUES, **REFERRER_VALUES}[row.field]


def form(
    turn: int,
    heading: str = "",
    referrer_first: bool = False,
    blanks: bool = False,
    **style: object,
) -> Form:
    """A form built from the two blocks, with headings in `heading` style when given."""
    sectioned = bool(heading)
    person = _person_rows(turn, sectioned)
    referrer = _referrer_rows(turn, sectioned)
    if blanks:
        person = tuple(replace(r, value="") if r.field in BLANK_FIELDS else r for r in person)
        referrer = tuple(replace(r, value="") if r.field in BLANK_FIELDS else r for r in referrer)
    person_heading = RULES.sections.person[turn % len(RULES.sections.person)]
    referrer_heading = RULES.sections.referrer[turn % len(RULES.sections.referrer)]
    blocks: list[tuple[str | None, tuple[Row, ...]]] = [
        (person_heading if sectioned else None, person),
        (referrer_heading if sectioned else None, referrer),
    ]
    if referrer_first:
        blocks.reverse()
    if heading == "numbered":
        blocks = [(f"Section {n}: {h}", rows) for n, (h, rows) in enumerate(blocks, 1)]
    return Form(blocks=tuple(blocks), heading=heading, **style)  # type: ignore[arg-type]


def variations(turn: int) -> dict[str, Form]:
    """Every variation, built with labels rotated by `turn`."""
    title, after = TITLES[turn % len(TITLES)], AFTER[turn % len(AFTER)]
    return {
        "flat": form(turn),
        "flat_referrer_first": form(turn, referrer_first=True),
        "title": form(turn, before=(title,)),
        "title_referrer_first": form(turn, referrer_first=True, before=(title,)),
        "instruction_after": form(turn, after=(after,)),
        "after_referrer_first": form(turn, referrer_first=True, after=(after,)),
        "title_and_after": form(turn, before=(title, TITLES[(turn + 2) % 4]), after=(after,)),
        "bold_all": form(turn, before=(title,), bold_all=True),
        "capitals": form(turn, capitals=True, before=(title.upper(),)),
        "bold_values": form(turn, bold_values=True),
        "spaced_colons": form(turn, colon="   :   "),
        "tabs_colons": form(turn, colon=" \t:\t "),
        "blank_leaders": form(turn, blanks=True, blank="leaders"),
        "blank_placeholder": form(turn, blanks=True, blank="placeholder"),
        "blank_prompt": form(turn, blanks=True, blank="prompt"),
        "ticks": form(turn, ticks=True),
        "head_bold": form(turn, heading="bold"),
        "head_style": form(turn, heading="style"),
        "head_row": form(turn, heading="row"),
        "head_numbered": form(turn, heading="numbered"),
        "head_capitals": form(turn, heading="bold", capitals=True),
        "head_referrer_first": form(turn, heading="bold", referrer_first=True),
        "head_title_after": form(turn, heading="style", before=(title,), after=(after,)),
        "head_blanks": form(turn, heading="numbered", blanks=True, blank="leaders"),
    }

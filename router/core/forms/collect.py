"""Gather label/value pairs from one document into canonical fields, tracking sections.

Every reader (AcroForm, text layer, DOCX, plain text) feeds a `FieldCollector`:
`add(label, value)` for each pair it finds and `heading(text)` for text that may open a
section ("Referrer details", "Details of the person being referred"). The collector keeps
the first value found for each field, joins composite parts (Forename(s) + Surname) and
counts which fields were recognised, which decides whether the document is a form.

**Whose a value is** is decided here, in one place for every reader (`add_match`):

1. a label's own words ("Referrer email", "Individual's address") or the section it sits in
   (a heading, a Word heading style, a PDF field's parent name) say whose it is;
2. otherwise, for a generic label ("Name", "Organisation", "Email address", "Contact
   number") outside any section, the side of the nearest labelled field before it in the
   same block: `Email address` after `Referrer name` is the referrer's. Where that side
   has no such field (`Postcode` after `Referrer email`, `Email` after `Date of birth`), or
   already has it under its own label (`Name` after `Referrer name` and `Organisation`),
   the labels present decide: the label keeps its meaning in the rules (3), so a flat
   form's one `Email` is the referrer's unless a `Referrer email` is given too;
3. otherwise (no field before it) the label's meaning in the rules.

A value found under 1 outranks one found under 2, which outranks one found under 3; among
equals the first wins. A section heading counts only once a field follows it.

A document is a FORM when labels of at least `FORM_THRESHOLD` (2) distinct canonical fields
were recognised, whether or not they were filled in, and at least one of them is about the
person referred (`PERSONAL_FIELDS`: name, date of birth, gender, address, postcode or the
concern). A blank form sent by mistake is still a form (it ends as incomplete); a letter with
one "Name:" line, or a cover letter whose signature block gives the writer's name,
organisation and email, is a supporting document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from router.core.forms.fields import PERSON, REFERRER, LabelMap, LabelMatch, side_of
from router.core.forms.sections import sections_of
from router.models import PERSONAL_FIELDS, FormStatus

FORM_THRESHOLD = 2
MAX_VALUE_CHARS = 20_000

# Fields whose generic labels ("Name", "Address", "Email", "Telephone", "Organisation") both
# sections of a form use: outside any section their side is a guess (see `fields`).
_AMBIGUOUS = {
    PERSON: frozenset({"person_name", "person_address", "person_postcode"}),
    REFERRER: frozenset({"referrer_email", "referrer_phone", "referrer_organisation"}),
}

# How a value's side was decided (see the module docstring): a higher rank replaces a lower.
_BY_RULES, _BY_NEIGHBOUR, _BY_LABEL = 0, 1, 2

# Leader dots or underscores at either end of a value ("...... Amira Khan", "SE13 ____").
_LEADERS = re.compile(r"^(?:[.…_]{2,}\s*)+|(?:\s*[.…_]{2,})+$")

# The prompts Word shows in an empty content control.
_PROMPT = re.compile(
    r"^(?:click(?: or tap)? (?:here )?to enter (?:a )?(?:text|date)|choose an item|"
    r"enter text here|type here)\.?$",
    re.IGNORECASE,
)

_CHECKED = "☒☑■✔✓"
_UNCHECKED = "☐□"
_BOXES = _CHECKED + _UNCHECKED


def clean_value(value: str) -> str:
    """Strip a value, fold line breaks and runs of spaces, and read tick boxes.

    "Yes ☒ No ☐" becomes "Yes"; a value made only of unticked boxes becomes "".
    """
    text = value.strip()[:MAX_VALUE_CHARS]
    if any(box in text for box in _BOXES):
        text = _ticked_options(text)
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    joined = ", ".join(line for line in lines if line)
    joined = _LEADERS.sub("", joined).strip()
    if _PROMPT.match(joined):
        return ""  # Word's content-control prompt, left as it was
    # Only punctuation, underscores or leader dots: the box was left blank.
    return joined if re.search(r"[^\W_]", joined) else ""


def _ticked_options(text: str) -> str:
    """The option labels next to ticked boxes, joined with ", "."""
    box_first = text.lstrip()[:1] in _BOXES
    parts = re.split(f"([{_BOXES}])", text)
    chosen: list[str] = []
    for index, part in enumerate(parts):
        if not part or part not in _CHECKED:
            continue
        neighbour = index + 1 if box_first else index - 1
        if 0 <= neighbour < len(parts):
            option = parts[neighbour].strip(" \t:-")
            if option:
                chosen.append(option)
    return ", ".join(chosen)


def is_ambiguous(field: str) -> bool:
    """True for fields that a bare label ("Name", "Email") could give to either side."""
    return any(field in fields for fields in _AMBIGUOUS.values())


class FieldCollector:
    """Canonical fields of one document, filled pair by pair in reading order."""

    def __init__(self, label_map: LabelMap) -> None:
        self.labels = label_map
        self.sections = sections_of(label_map)
        self.section: str | None = None
        self._fields: dict[str, str] = {}
        self._rank: dict[str, int] = {}
        self._neighbour: str | None = None  # side of the last labelled field in this block
        self._parts: dict[tuple[str, int], dict[int, str]] = {}
        self._parts_sided: dict[tuple[str, int], bool] = {}
        self._recognised: set[str] = set()
        self._sides_seen: set[str] = set()
        self._doubtful: set[str] = set()  # asked twice ("Name", "Name_2"), sides unknown
        self.last_field: str | None = None

    def match(self, label: str) -> LabelMatch | None:
        """What a label means in the current section."""
        return self.labels.match(label, self.section)

    def add(self, label: str, value: str) -> bool:
        """Record one label/value pair; returns True when the label was recognised."""
        found = self.match(label)
        if found is None:
            return False
        self.add_match(found, value)
        return True

    def add_match(self, found: LabelMatch, value: str) -> None:
        """Record a value for an already matched label, deciding whose it is.

        The first value of a field wins, except that a value whose side is better known
        (label or section over neighbour over the rules, see the module docstring)
        replaces it.
        """
        self._recognised.add(found.field)
        if self.section in _AMBIGUOUS:
            self._sides_seen.add(self.section)  # a heading counts once a field follows it
        rank = _BY_LABEL if found.sided else _BY_RULES
        neighbour = side_of(found.field) or self._neighbour
        if not found.sided and not found.repeat and self.section is None:
            by_neighbour = self._by_neighbour(found)
            if by_neighbour is None:
                neighbour = self._neighbour  # nothing said; the block's side goes on
            elif by_neighbour.sided:
                found, rank = by_neighbour, _BY_NEIGHBOUR
                neighbour = side_of(found.field) or neighbour
        self._neighbour = neighbour
        if found.repeat:
            # Two fields ask the same question and nothing says whose each is: neither
            # unsided value can be trusted to be the side its label suggests.
            self._doubtful.add(found.field)
            self.last_field = None
            return
        text = clean_value(value)
        if found.part is not None:
            self._add_part(found, text)
            return
        current = self._fields.get(found.field)
        if text and (not current or rank > self._rank[found.field]):
            self._fields[found.field] = text
            self._rank[found.field] = rank
            self.last_field = found.field
        elif text and found.append:
            self.extend(found.field, text)
            self.last_field = found.field
        else:
            self.last_field = None

    def _by_neighbour(self, found: LabelMatch) -> LabelMatch | None:
        """A generic label's meaning on the side of the labelled field before it.

        Returns the match unchanged when nothing before it says a side or when that side's
        field is already given under its own label ("Name" after "Referrer name": the
        person's, whose side then continues); its meaning on that side (sided); or None
        when that side has no such field: the caller keeps the rules' meaning, at the
        lowest rank, without changing the block's side.
        """
        side = self._neighbour
        if side is None or not is_ambiguous(found.field):
            return found
        on_side = self.labels.on_side(found, side)
        if on_side is None or on_side.field == found.field:
            return on_side
        if self._rank.get(on_side.field, -1) == _BY_LABEL or self._named(on_side.field):
            return found
        return on_side

    def _named(self, field: str) -> bool:
        """True when a composite field's parts were given under sided labels."""
        return any(self._parts_sided.get(key) for key in self._parts if key[0] == field)

    def _add_part(self, found: LabelMatch, text: str) -> None:
        """Record one part of a composite field (Forename(s) + Surname)."""
        assert found.part is not None
        group, part = found.part
        key = (found.field, group)
        parts = self._parts.setdefault(key, {})
        if text and part not in parts:
            parts[part] = text
            self._parts_sided.setdefault(key, found.sided)
        self.last_field = None

    def extend(self, field: str, more: str) -> None:
        """Append a continuation line to a field's value (wrapped address or concern)."""
        text = clean_value(more)
        if text and field in self._fields:
            joined = f"{self._fields[field]}, {text}"
            if field == "concern":
                joined = f"{self._fields[field]} {text}"
            self._fields[field] = joined[:MAX_VALUE_CHARS]

    def heading(self, text: str, strong: bool = False) -> bool:
        """Treat text as a possible section heading; returns True when it set a section.

        A heading naming the referrer, the person or neither (`router.core.forms.sections`) sets
        the section; other headings that look like section titles ("Section 3", "Further
        information", or any `strong` one: bold or a Word heading style) reset it.
        """
        role = self.sections.role(text)
        if role is not None:
            self.section, self._neighbour = role, None
            return True
        words = self.labels.normalise(text).split()
        titled = {"section", "part", "detail", "details"} & set(words)
        looks = titled or strong or self.sections.is_numbered(text)
        if 0 < len(words) <= 8 and looks and (strong or self.sections.reads_like_heading(text)):
            self.section, self._neighbour = None, None
        return False

    def saw_section(self, role: str | None) -> None:
        """Note that the document has a section of `role` (found outside `heading`)."""
        if role in _AMBIGUOUS:
            self._sides_seen.add(role)

    def fields(self) -> dict[str, str]:
        """The canonical fields found, composites joined, in canonical order of discovery.

        A value found under a bare label outside any section ("Email" above the first
        heading) is dropped when the form has a section for that side elsewhere: its
        owner's details are in that section, so the bare one belongs to the other side.
        """
        result = {
            name: value
            for name, value in self._fields.items()
            if self._rank[name] == _BY_LABEL or not self._guessed(name)
        }
        for (field, group), parts in sorted(self._parts.items()):
            if result.get(field) or not parts:
                continue
            if not self._parts_sided.get((field, group)) and self._guessed(field):
                continue
            result[field] = " ".join(parts[index] for index in sorted(parts))
        return result

    def _guessed(self, field: str) -> bool:
        """True when a bare-label value of `field` is outranked by a section of its side."""
        if field in self._doubtful:
            return True
        return any(
            field in fields and side in self._sides_seen for side, fields in _AMBIGUOUS.items()
        )

    def recognised(self) -> set[str]:
        """Canonical fields whose labels were seen, filled or not."""
        return set(self._recognised)

    def is_form(self) -> bool:
        """True when enough distinct canonical fields, one about the person, were recognised."""
        return len(self._recognised) >= FORM_THRESHOLD and bool(self._recognised & PERSONAL_FIELDS)


@dataclass(frozen=True)
class ReadResult:
    """What one reader made of a document, before it becomes a `FormReading`."""

    status: FormStatus
    fields: dict[str, str] = dataclass_field(default_factory=dict)
    reason: str = ""

    @classmethod
    def unreadable(cls, reason: str) -> ReadResult:
        """A document that cannot be read, with a reason free of personal data."""
        return cls(FormStatus.UNREADABLE, {}, reason)

    @classmethod
    def from_collector(cls, collector: FieldCollector, what: str) -> ReadResult:
        """FORM when enough fields were recognised, else SUPPORTING (`what` names the reader)."""
        if collector.is_form():
            return cls(FormStatus.FORM, collector.fields(), f"{what}: referral form")
        return cls(FormStatus.SUPPORTING, {}, f"{what}: no referral form fields")

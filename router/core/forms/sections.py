"""Recognise the section headings of a form, so repeated labels map by the section they sit in.

The national Prevent referral form asks for "Name", "Email" and "Telephone" twice: once about
the individual, once about the referrer. Whose they are is told by the heading above them
("Section 1: Details of the individual", "Referrer details", a bold "Your details" line).

A heading's role is found, in order:

1. from the section wordings in the rules (`forms.yaml` `sections`: person, referrer, other),
   when the heading is, or contains as whole words, one of them (the longest wins);
2. from role words ("referrer", "your", "individual", "person being referred"), as for labels.

A leading section number ("Section 2:", "Part B -", "3.") is ignored. OTHER marks sections
about neither side (parents, carers, other agencies): their Name and Email are nobody's.

Only a line that reads like a heading is one (`reads_like_heading`): a title or an
instruction ("Prevent referral - please complete all sections", "Thank you for completing
this form", "Please complete your details below.") never opens a section, even when it
names a side.
"""

from __future__ import annotations

import re
import weakref

from router.core.forms.fields import OTHER, PERSON, REFERRER, LabelMap, label_key, label_role
from router.core.rules.model import SectionWordings

_MAX_HEADING_WORDS = 12
_NUMBERED = re.compile(
    r"^\s*(?:(?:section|part|step|stage)\s*[0-9a-z]{0,3}|[0-9]{1,2}[a-z]?|[a-h])\s*[:.)\-–—]\s*",
    re.IGNORECASE,
)
_FAMILY_WORDS = frozenset({"parent", "carer", "guardian", "mother", "father", "sibling", "kin"})
# First words of instructions and courtesy lines, which are never headings.
_INSTRUCTION_WORDS = frozenset(
    {"please", "thank", "thanks", "complete", "completed", "return", "send", "email", "fill"}
    | {"read", "use", "if", "once", "when", "note", "we", "i", "do", "all", "this", "these"}
    | {"it", "by", "on", "in", "where", "tick", "type", "print", "sign"}
)
_SECTION_ONLY = re.compile(r"^\s*(?:section|part|step|stage)\s*[0-9a-z]{1,3}\s*$", re.IGNORECASE)


def strip_number(text: str) -> str:
    """A heading without its leading number: "Section 2: Referrer details" -> "Referrer details"."""
    stripped = _NUMBERED.sub("", text, count=1)
    return stripped if stripped.strip() else text


class SectionMap:
    """The section headings of one `FormRules`, normalised for matching."""

    def __init__(self, label_map: LabelMap, wordings: SectionWordings) -> None:
        self._labels = label_map
        known: list[tuple[tuple[str, ...], str]] = []
        for role, texts in ((PERSON, wordings.person), (REFERRER, wordings.referrer)):
            known += [(label_key(label_map.normalise(text)), role) for text in texts]
        known += [(label_key(label_map.normalise(text)), OTHER) for text in wordings.other]
        self._known = sorted(((k, r) for k, r in known if k), key=lambda kr: -len(kr[0]))

    def role(self, heading: str) -> str | None:
        """PERSON, REFERRER or OTHER for a section heading; None when it names no side
        (or does not read like a heading at all)."""
        text = strip_number(heading)
        key = label_key(self._labels.normalise(text))
        if not key or len(key) > _MAX_HEADING_WORDS or not self.reads_like_heading(heading):
            return None
        for wording, role in self._known:
            if key == wording:
                return role
        if _FAMILY_WORDS.intersection(key):
            return OTHER  # "Details of the individual's parent/carer"
        own = label_role(key) if len(key) <= 10 else None
        for wording, role in self._known:
            if _contains(key, wording):
                # "About the person making the referral" contains "About the person":
                # the heading's own role words, where they say something else, win.
                return own if own is not None and role != OTHER else role
        return own

    def is_known(self, heading: str) -> bool:
        """True when a heading is, or contains, one of the rules' section wordings."""
        key = label_key(self._labels.normalise(strip_number(heading)))
        if not key or len(key) > _MAX_HEADING_WORDS or not self.reads_like_heading(heading):
            return False
        return any(key == wording or _contains(key, wording) for wording, _ in self._known)

    def reads_like_heading(self, text: str) -> bool:
        """False for sentences and instructions: a line ending in "." or "!", or starting
        with "Please", "Thank you", "Complete", "If", "Once"... (see `_INSTRUCTION_WORDS`)."""
        stripped = strip_number(text).strip()
        if not stripped or stripped[-1] in ".!":
            return False
        words = self._labels.normalise(stripped).split()
        return bool(words) and words[0] not in _INSTRUCTION_WORDS

    def is_numbered(self, text: str) -> bool:
        """True for "Section 3", "Part B: ..." and other numbered headings."""
        return bool(_SECTION_ONLY.match(text) or re.match(r"^\s*(?:section|part)\b", text, re.I))


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    """True when `phrase` occurs in `words` as consecutive whole words."""
    size = len(phrase)
    return any(words[i : i + size] == phrase for i in range(len(words) - size + 1))


_maps: weakref.WeakKeyDictionary[LabelMap, SectionMap] = weakref.WeakKeyDictionary()


def sections_of(label_map: LabelMap) -> SectionMap:
    """The `SectionMap` of a label map, built once."""
    found = _maps.get(label_map)
    if found is None:
        found = _maps[label_map] = SectionMap(label_map, label_map.rules.sections)
    return found

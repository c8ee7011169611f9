"""Map the labels a form uses onto canonical field names and judge which fields are missing.

Matching works on normalised labels (`normalise_label`): case, punctuation, underscores,
camelCase, parentheticals and machine prefixes such as `txt`/`fld` are removed, and a few
spelling variants are folded (`e-mail` -> `email`, `telephone`/`tel`/`mobile` -> `phone`,
`email address` -> `email`, `post code` -> `postcode`, `phone number` -> `phone`).

`LabelMap.match` then tries, in order:

1. an exact match of the normalised label (plural `s` on words ignored) against the rules'
   labels and composite parts;
2. a longer label or question that *contains* a known label as a whole-word phrase
   ("Name of the person being referred (include aliases)", "Please describe your
   concerns"). The longest contained known label wins; a tie between two different fields is
   ambiguous and matches nothing. A one-word known label ("name", "address", "phone") is
   only accepted when every other word is neutral filler or a role word ("Person's name",
   "Your phone number"), so "Name of school" matches nothing.

The *role* of a label decides whose field it is. Words such as "referrer", "your",
"referring" give the referrer role; "person", "individual", "referred", "client", "child"
give the person role. A label without role words takes the role of the section it sits in
(see `router.core.forms.sections`, which also reads the section wordings in the rules); in an
OTHER section (parents, carers) person and referrer fields mean nothing. A person field
(name, dob, gender, address, postcode) with the referrer role becomes the referrer's
counterpart (`person_name` -> `referrer_name`) or nothing; a referrer field matched
through a generic label ("Phone", "Email address", "Organisation") in the person's section
becomes the person counterpart or nothing (the person's own email is not referrer contact).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from router.core.forms.wording import FIELD_WORDING, field_wording
from router.core.rules.model import FormRules
from router.models import CANONICAL_FIELDS

REFERRER = "referrer"
PERSON = "person"
OTHER = "other"  # a section about neither side: parents, carers, other agencies

# Fields that describe the referred person (and so flip to the referrer's counterpart, or to
# nothing, when a label or section belongs to the referrer), and the reverse.
_PERSON_SIDE = frozenset(
    {"person_name", "person_dob", "person_gender", "person_address", "person_postcode"}
)
_REFERRER_SIDE = frozenset(
    {"referrer_name", "referrer_organisation", "referrer_email", "referrer_phone"}
)
_COUNTERPART = {"person_name": "referrer_name", "referrer_name": "person_name"}

_NOT_PLURAL = frozenset(
    {"this", "was", "has", "yes", "status", "previous", "various", "alias", "gas", "bus", "its"}
)


def _singular(word: str) -> str:
    """Drop a plural `s` so "concerns" matches "concern" (never from "address", "is")."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and word not in _NOT_PLURAL:
        return word[:-1]
    return word


def _words(text: str) -> frozenset[str]:
    """A set of words written as one space-separated string."""
    return frozenset(text.split())


_REFERRER_WORDS = frozenset(
    {"referrer", "your", "you", "yourself", "referring", "reporter", "reporting", "professional"}
)
_PERSON_WORDS = _words(
    "person individual subject client child young pupil student patient referred referee "
    "adult service user"
)
# Filler that may surround a one-word label without changing its meaning.
_NEUTRAL_WORDS = _words(
    "the of a an their his her full current main number no being please enter give "
    "provide state and or contact known home details who is are for to this about legal "
    "preferred describe outline specific any all"
)
_REFERRER_WORDS = frozenset(map(_singular, _REFERRER_WORDS))
_PERSON_WORDS = frozenset(map(_singular, _PERSON_WORDS))
_NEUTRAL_WORDS = frozenset(map(_singular, _NEUTRAL_WORDS))
_ROLE_OR_NEUTRAL = _NEUTRAL_WORDS | _REFERRER_WORDS | _PERSON_WORDS

# Fields whose numbered labels ("Address line 2", "Concerns 2") continue the value.
_CONTINUED = frozenset({"person_address", "concern"})
# Parts of an address printed as their own fields; their values extend person_address.
_ADDRESS_PARTS = frozenset({("town",), ("city",), ("town", "city"), ("county",), ("street",)})

_MEMO_LABELS = 4096  # labels `LabelMap.normalise` remembers, at most...
_MEMO_LABEL_CHARS = 120  # ...each no longer than this

_PHRASE_FOLDS = (
    (re.compile(r"\be mail\b"), "email"),
    (re.compile(r"\bemail address\b"), "email"),
    (re.compile(r"\b(?:telephone|tel|mobile|phone)(?: (?:number|no))?\b"), "phone"),
    (re.compile(r"\bpost code\b"), "postcode"),
    (re.compile(r"\bd o b\b"), "dob"),
)
_MAX_LABEL_WORDS = 14


def _prefix_pattern(prefixes: list[str]) -> re.Pattern[str] | None:
    """A regex matching a machine prefix (`txt`, `Txt`) followed by a word boundary of a name."""
    if not prefixes:
        return None
    alternatives = "|".join(
        f"{re.escape(p.lower())}|{re.escape(p[:1].upper() + p[1:].lower())}"
        for p in sorted(prefixes, key=len, reverse=True)
        if p
    )
    return re.compile(rf"^(?:{alternatives})(?=[A-Z0-9_.\-])")


def normalise_label(label: str, prefixes: list[str]) -> str:
    """Reduce a form label or machine field name to lower-case words separated by spaces.

    Args:
        label: the label as found (`txtDOB`, `Referrer_Email`, `D.O.B.`, `Forename(s):`).
        prefixes: machine-name prefixes to strip when followed by a capital, digit or `_`.

    Returns:
        e.g. "dob", "referrer email", "dob", "forename"; "" when nothing is left.
    """
    pattern = _prefix_pattern(prefixes)
    return _normalise(label.strip(), pattern)


def _normalise(text: str, prefix: re.Pattern[str] | None) -> str:
    """`normalise_label` with a precompiled prefix pattern."""
    text = text[:400]
    if prefix is not None:
        text = prefix.sub("", text, count=1)
    text = re.sub(r"\[\d*\]", " ", text)  # XFA-style indices: form1[0].Name[0]
    text = re.sub(r"['’][sS]\b", "", text)  # Referrer's name, REFERRER'S NAME -> Referrer name
    without_parens = re.sub(r"\([^)]*\)", " ", text)
    if re.search(r"[A-Za-z0-9]", without_parens):
        text = without_parens
    text = text.replace(".", "")  # D.O.B. -> DOB
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)  # camelCase
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)  # DOBDate -> DOB Date
    text = text.replace("&", " and ").lower()
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    text = re.sub(r"^(?:q?\d+[a-z]?\s+)+", "", text)  # question numbers: "3 name", "q4 dob"
    for pattern, replacement in _PHRASE_FOLDS:
        text = pattern.sub(replacement, text)
    return text


def label_key(normalised: str) -> tuple[str, ...]:
    """The matching key of a normalised label: its words, singular."""
    return tuple(_singular(word) for word in normalised.split())


def label_role(words: tuple[str, ...]) -> str | None:
    """The role named by a label's own words: REFERRER, PERSON, or None (none or both)."""
    if re.search(
        r"\b(?:making|made) (?:the |this )?referral\b|\breferral made by\b", " ".join(words)
    ):
        return REFERRER  # "Person making the referral"
    referrer = bool(_REFERRER_WORDS.intersection(words))
    person = bool(_PERSON_WORDS.intersection(words))
    if referrer and (not person or "referrer" in words):
        return REFERRER
    if person and not referrer:
        return PERSON
    return None


@dataclass(frozen=True)
class LabelMatch:
    """What a label means: a canonical field, or one part of a composite field.

    `part` is (group index, part index) within `FormRules.composite[field]`; `append` marks
    a numbered or partial label ("Address line 2", "Town") whose value extends the field;
    `sided` says the label's own words or its section said whose field it is (a bare "Email"
    outside any section is not sided); `repeat` marks a numbered repeat ("Name_2") with no
    side: the form asks the question twice without saying for whom.
    """

    field: str
    part: tuple[int, int] | None = None
    append: bool = False
    sided: bool = False
    repeat: bool = False  # a numbered second "Name_2" whose side nothing tells


@dataclass(frozen=True)
class _Known:
    """One known label: its key, what it means and whether it names a role itself."""

    key: tuple[str, ...]
    match: LabelMatch
    explicit_role: str | None


class LabelMap:
    """Canonical field lookup for the labels of one `FormRules`."""

    def __init__(self, form_rules: FormRules) -> None:
        self.rules = form_rules
        self._prefix = _prefix_pattern(form_rules.prefixes)
        self._normalised: dict[str, str] = {}  # label -> normalised (see `normalise`)
        self._known: dict[tuple[str, ...], _Known] = {}
        for field, labels in form_rules.labels.items():
            for label in labels:
                self._register(label, LabelMatch(field))
        for field, groups in form_rules.composite.items():
            for group_index, group in enumerate(groups):
                for part_index, label in enumerate(group):
                    self._register(label, LabelMatch(field, (group_index, part_index)))
        self._by_length = sorted(self._known.values(), key=lambda k: len(k.key), reverse=True)
        self._address = _Known(("address",), LabelMatch("person_address"), None)

    def _register(self, label: str, match: LabelMatch) -> None:
        """Add one label; the first registration of a key wins."""
        key = label_key(_normalise(label, self._prefix))
        if key and key not in self._known:
            self._known[key] = _Known(key, match, label_role(key))

    def normalise(self, label: str) -> str:
        """`normalise_label` with this map's prefixes.

        Remembered for short labels: the same form's field names and headings come with
        every referral, and about a dozen regular expressions a label cost the worker a few
        per cent of its time. Bounded, and kept only in the analysis worker's memory.
        """
        found = self._normalised.get(label)
        if found is None:
            found = _normalise(label.strip(), self._prefix)
            if len(label) <= _MEMO_LABEL_CHARS:
                if len(self._normalised) >= _MEMO_LABELS:
                    self._normalised.clear()
                self._normalised[label] = found
        return found

    def canonical(self, label: str, section: str | None = None) -> str | None:
        """The canonical field a label names directly, or None (composite parts give None)."""
        found = self.match(label, section)
        if found is None or found.part is not None:
            return None
        return found.field

    def match(self, label: str, section: str | None = None) -> LabelMatch | None:
        """What `label` means in a section with role `section` (REFERRER, PERSON or None)."""
        key = label_key(self.normalise(label))
        if not key or len(key) > _MAX_LABEL_WORDS:
            return None
        append = repeat = False
        known = self._known.get(key) or self._contained(key)
        if known is None:
            base = _numbered_base(key)
            if base is not None:
                known = self._known.get(base) or self._contained(base)
                # "Address 2" continues the address; "Name_2" (Acrobat's name for a second
                # "Name" field) is the same question asked again, for someone else.
                continued = known is not None and known.match.field in _CONTINUED
                append, repeat = continued, not continued
            elif key in _ADDRESS_PARTS:
                known, append = self._address, True
        if known is None:
            return None
        role = label_role(key) or section
        found = _apply_role(known, role)
        if found is None:
            return None
        sided = role in (PERSON, REFERRER)
        return replace(found, append=append, sided=sided, repeat=repeat and not sided)

    def is_exact(self, label: str) -> bool:
        """True when the label is exactly a known label (after normalisation)."""
        return label_key(self.normalise(label)) in self._known

    def _contained(self, key: tuple[str, ...]) -> _Known | None:
        """The longest known label found inside a longer label, if unambiguous."""
        best: _Known | None = None
        for known in self._by_length:
            if best is not None and len(known.key) < len(best.key):
                break
            if not _contains(key, known.key):
                continue
            if len(known.key) == 1:
                rest = [w for w in key if w != known.key[0]]
                if not all(word in _ROLE_OR_NEUTRAL for word in rest):
                    continue
            if best is not None and best.match.field != known.match.field:
                return None  # two fields fit equally well: ambiguous
            best = best or known
        return best

    def on_side(self, found: LabelMatch, side: str) -> LabelMatch | None:
        """What an unsided match means on `side` (PERSON or REFERRER): itself, its
        counterpart ("Name" on the referrer's side is `referrer_name`), or None (nobody's)."""
        if found.field not in _PERSON_SIDE | _REFERRER_SIDE:
            return found
        if side_of(found.field) == side:
            return replace(found, sided=True)
        counterpart = _COUNTERPART.get(found.field)
        if counterpart is None:
            return None
        return replace(found, field=counterpart, sided=True)


def side_of(field: str) -> str | None:
    """PERSON or REFERRER for a field that describes one side; None for the rest."""
    if field in _PERSON_SIDE:
        return PERSON
    return REFERRER if field in _REFERRER_SIDE else None


def _numbered_base(key: tuple[str, ...]) -> tuple[str, ...] | None:
    """("address", "line", "2") -> ("address",); None when the label is not numbered."""
    if len(key) < 2 or not key[-1].isdigit():
        return None
    base = key[:-2] if key[-2] == "line" else key[:-1]
    return base or None


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    """True when `phrase` occurs in `words` as consecutive whole words."""
    size = len(phrase)
    return any(words[i : i + size] == phrase for i in range(len(words) - size + 1))


def _apply_role(known: _Known, role: str | None) -> LabelMatch | None:
    """Flip or drop a match whose field belongs to the other side of the referral."""
    field = known.match.field
    if role == OTHER and field in _PERSON_SIDE | _REFERRER_SIDE:
        return None  # a parent's or another agency's name, email or address
    if role == REFERRER and field in _PERSON_SIDE:
        counterpart = _COUNTERPART.get(field)
        return LabelMatch(counterpart, known.match.part) if counterpart else None
    if role == PERSON and field in _REFERRER_SIDE and known.explicit_role != REFERRER:
        counterpart = _COUNTERPART.get(field)
        return LabelMatch(counterpart, known.match.part) if counterpart else None
    return known.match


def section_role(heading: str) -> str | None:
    """The role a heading's own words give ("Referrer details" -> REFERRER), or None.

    Readers use `router.core.forms.sections.SectionMap`, which tries the rules' section wordings
    first and falls back to these role words.
    """
    words = label_key(_normalise(heading, None))
    if not words or len(words) > 10:
        return None
    return label_role(words)


def is_placeholder(value: str, placeholders: list[str]) -> bool:
    """True when a value is empty, only punctuation/whitespace, or a placeholder like N/A."""
    text = value.strip()
    if not re.search(r"[^\W_]", text):
        return True  # "", "-", "?", "--", "—"
    folded = re.sub(r"[\W_]+", "", text.casefold())
    return any(folded == re.sub(r"[\W_]+", "", p.casefold()) for p in placeholders if p.strip())


def clean_fields(fields: dict[str, str], form_rules: FormRules) -> dict[str, str]:
    """The fields whose values are real answers (empty values and placeholders removed)."""
    return {
        name: value
        for name, value in fields.items()
        if not is_placeholder(value, form_rules.placeholders)
    }


def missing_fields(fields: dict[str, str], form_rules: FormRules) -> list[str]:
    """The required field names with no real value, in the order of `form_rules.required`.

    `referrer_contact` is satisfied by a referrer email or phone; `person_address` by an
    address or a postcode. Empty values and placeholders (`form_rules.placeholders`) count as
    missing.
    """
    present = clean_fields(fields, form_rules)
    alternatives = {
        "referrer_contact": ("referrer_email", "referrer_phone"),
        "person_address": ("person_address", "person_postcode"),
    }
    missing = []
    for name in form_rules.required:
        if not any(field in present for field in alternatives.get(name, (name,))):
            missing.append(name)
    return missing


__all__ = [
    "CANONICAL_FIELDS",
    "FIELD_WORDING",
    "PERSON",
    "REFERRER",
    "LabelMap",
    "LabelMatch",
    "clean_fields",
    "field_wording",
    "is_placeholder",
    "label_role",
    "missing_fields",
    "normalise_label",
    "section_role",
    "side_of",
]

"""UK postcode syntax: finding postcodes in text and checking outward codes and areas."""

from __future__ import annotations

import re

# The geographic postcode areas of the UK and Crown dependencies, plus the non-geographic
# BF (British Forces) and BX. The list changes very rarely; checking against it catches
# typos such as `CN` for `CT` in a rules file.
_AREA_LIST = """
    AB AL B BA BB BD BF BH BL BN BR BS BT BX CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH
    DL DN DT DY E EC EH EN EX FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA
    KT KW KY L LA LD LE LL LN LS LU M ME MK ML N NE NG NN NP NR NW OL OX PA PE PH PL PO PR
    RG RH RM S SA SE SG SK SL SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS TW UB W WA WC
    WD WF WN WR WS WV YO ZE
"""
POSTCODE_AREAS: frozenset[str] = frozenset(_AREA_LIST.split())

# Districts that end in a letter (W1A, EC1V, SW1A, E1W, SE1P) exist only in central London.
_LETTER_SUFFIX_AREAS = frozenset({"E", "EC", "N", "NW", "SE", "SW", "W", "WC"})
# Royal Mail's format rules: the letter of an A9A district is one of these; of an AA9A one
# of the next.
_A9A_LETTERS = frozenset("ABCDEFGHJKPSTUW")
_AA9A_LETTERS = frozenset("ABEHMNPRVWXY")

_OUTWARD = r"[A-Z]{1,2}[0-9][A-Z0-9]?"
# The inward code never uses C, I, K, M, O or V in its letters.
_INWARD = r"[0-9][ABD-HJLNP-UW-Z]{2}"
_OUTWARD_SHAPE = re.compile(rf"({_OUTWARD})")
_FULL_SHAPE = re.compile(rf"({_OUTWARD})({_INWARD})")
# A full postcode inside free text: not glued to other letters or digits, with at most a
# few spaces (or none) between its halves.
_IN_TEXT = re.compile(
    rf"(?<![A-Z0-9])({_OUTWARD})[ \t\u00a0]{{0,3}}({_INWARD})(?![A-Z0-9])", re.IGNORECASE
)


def compact(text: str) -> str:
    """Return `text` upper-cased with all whitespace removed ("se13 6lh" -> "SE136LH")."""
    return "".join(text.split()).upper()


def is_postcode_area(letters: str) -> bool:
    """Tell whether `letters` (already compact and upper-case) is a UK postcode area."""
    return letters in POSTCODE_AREAS


def is_district(outward: str) -> bool:
    """Tell whether `outward` (already compact and upper-case) is a valid postcode district.

    Valid means: a known postcode area, a digit, then an optional digit, or a letter where
    Royal Mail's format allows one (central London only: `W1A`, `EC1V`, `SW1A`).
    """
    if not _OUTWARD_SHAPE.fullmatch(outward):
        return False
    letters = area_letters(outward)
    if not is_postcode_area(letters):
        return False
    rest = outward[len(letters) :]
    if len(rest) == 2 and rest[1].isalpha():
        allowed = _A9A_LETTERS if len(letters) == 1 else _AA9A_LETTERS
        return letters in _LETTER_SUFFIX_AREAS and rest[1] in allowed
    return True


def area_letters(outward: str) -> str:
    """Return the postcode area of an outward code: its leading letters ("CT9" -> "CT")."""
    end = 0
    while end < len(outward) and outward[end].isalpha():
        end += 1
    return outward[:end]


def find_postcodes(text: str) -> list[str]:
    """Return every full postcode in `text`, in order, formatted as "SE13 6LH"."""
    return [f"{m[1].upper()} {m[2].upper()}" for m in _IN_TEXT.finditer(text)]


def split_postcode(text: str) -> tuple[str, str] | None:
    """Split a postcode written on its own into (outward, inward); inward is "" when `text`
    is only an outward code. Returns None when `text` is neither."""
    code = compact(text)
    full = _FULL_SHAPE.fullmatch(code)
    if full:
        return full[1], full[2]
    if _OUTWARD_SHAPE.fullmatch(code):
        return code, ""
    return None

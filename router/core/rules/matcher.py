"""Finding the area for a referral from its postcode, local authority or inbox address."""

from __future__ import annotations

import re
from collections.abc import Iterable

from router.core.rules.model import Area
from router.core.rules.postcode import area_letters, find_postcodes, split_postcode

# Words around a council's name that do not tell councils apart, longest first so that
# "city council" is stripped as a whole before "council".
_PREFIXES: tuple[str, ...] = (
    "the",
    "london borough of",
    "royal borough of",
    "metropolitan borough of",
    "county borough of",
    "borough of",
    "city of",
    "county of",
    "council of",
)
_SUFFIXES: tuple[str, ...] = (
    "metropolitan borough council",
    "metropolitan district council",
    "county borough council",
    "borough council",
    "district council",
    "county council",
    "city council",
    "council",
    "london borough",
    "royal borough",
    "city of",
    # Forms also write "Sevenoaks District", "Kent County", "Kingston Borough".
    "borough",
    "district",
    "county",
    "city",
)
_APOSTROPHES = re.compile(r"['\u2019\u2018`]")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def extract_postcode(text: str) -> str | None:
    """Find the referred person's postcode in a field value or an address.

    Args:
        text: a postcode field, or an address whose postcode is usually at the end.

    Returns:
        The last full postcode in the text formatted "SE13 6LH" (any case, with or without
        the space), else the outward code when the whole text is one ("se13" -> "SE13"),
        else None.
    """
    found = find_postcodes(text)
    if found:
        return found[-1]
    parts = split_postcode(text.strip().strip(".,;"))
    if parts is not None and not parts[1]:
        return parts[0]
    return None


def outward_code(postcode: str) -> str:
    """Return the outward code (district) of a postcode: "se13 6lh" -> "SE13", "SE13" -> "SE13".

    Raises:
        ValueError: `postcode` is neither a full postcode nor an outward code.
    """
    parts = split_postcode(postcode)
    if parts is None:
        raise ValueError("not a postcode")
    return parts[0]


def normalise_authority(name: str) -> str:
    """Reduce a local authority name to the words that identify it.

    Case, punctuation and affixes such as "London Borough of", "City Council" and a leading
    "The" are ignored, so "London Borough of Lewisham", "Lewisham Council" and "LEWISHAM"
    all give "lewisham". "&" counts as "and". A name that is nothing but affixes ("Council")
    is kept rather than reduced to nothing.
    """
    words = _NOT_ALNUM.sub(" ", _APOSTROPHES.sub("", name.lower().replace("&", " and ")))
    whole = " ".join(words.split())
    current = whole
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if current.startswith(prefix + " "):
                current, changed = current[len(prefix) + 1 :], True
        for suffix in _SUFFIXES:
            if current.endswith(" " + suffix):
                current, changed = current[: -len(suffix) - 1], True
    return current or whole


class AreaMatcher:
    """Look-ups from the three routing signals (SPEC section 4) to an area.

    The indexes are built once, so each look-up is a dictionary access.
    """

    def __init__(self, areas: Iterable[Area]) -> None:
        """Index `areas` by district, postcode area, authority name and inbox.

        When two areas claim the same key (the loader rejects such rules) the first wins.
        """
        self.areas: list[Area] = list(areas)
        self._districts: dict[str, Area] = {}
        self._postcode_areas: dict[str, Area] = {}
        self._authorities: dict[str, Area] = {}
        self._inboxes: dict[str, Area] = {}
        for area in self.areas:
            for district in area.postcodes.districts:
                self._districts.setdefault("".join(district.split()).upper(), area)
            for letters in area.postcodes.areas:
                self._postcode_areas.setdefault(letters.strip().upper(), area)
            for name in area.names:
                self._authorities.setdefault(normalise_authority(name), area)
            for inbox in area.inboxes:
                self._inboxes.setdefault(inbox.lower(), area)

    def by_postcode(self, postcode_text: str) -> Area | None:
        """Return the area covering the postcode in `postcode_text` (see `extract_postcode`).

        The district must match exactly (`KT12` is not `KT1`); failing that, an area that
        lists the whole postcode area (`CT`) matches. None when there is no postcode or no
        area covers it.
        """
        postcode = extract_postcode(postcode_text)
        if postcode is None:
            return None
        district = outward_code(postcode)
        area = self._districts.get(district)
        if area is None:
            area = self._postcode_areas.get(area_letters(district))
        return area

    def by_local_authority(self, name: str) -> Area | None:
        """Return the area one of whose names is `name`, ignoring case, punctuation and
        affixes (see `normalise_authority`); None when none is."""
        if not name.strip():
            return None
        return self._authorities.get(normalise_authority(name))

    def by_inbox(self, addresses: Iterable[str]) -> Area | None:
        """Return the area of the first address, in the given order, that is an area's inbox.

        Addresses are bare addr-specs compared case-insensitively; None when none matches.
        """
        for address in addresses:
            area = self._inboxes.get(address.strip().strip("<>").lower())
            if area is not None:
                return area
        return None

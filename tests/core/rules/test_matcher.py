"""Tests of finding an area from a postcode, a local authority name or an inbox."""

from __future__ import annotations

import pytest

from router.core.rules.matcher import (
    AreaMatcher,
    extract_postcode,
    normalise_authority,
    outward_code,
)
from router.core.rules.model import Rules


@pytest.fixture
def matcher(bundled_rules: Rules) -> AreaMatcher:
    """A matcher over the bundled areas."""
    return AreaMatcher(bundled_rules.areas)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 Some Road, London se13 6lh", "SE13 6LH"),
        ("SE136LH", "SE13 6LH"),
        ("se13 6lh", "SE13 6LH"),
        ("SE13", "SE13"),
        (" se13. ", "SE13"),
        ("Flat 1, 2 High St, Canterbury\nCT1 2AB\nUK", "CT1 2AB"),
        ("Moved from SE13 6LH to CV31 1AA", "CV31 1AA"),  # the last one wins
        ("W1A 1AA", "W1A 1AA"),
        ("EC1V 9HX", "EC1V 9HX"),
        ("CV31AA", "CV3 1AA"),
        ("CV311AA", "CV31 1AA"),
        ("KT12 3AB", "KT12 3AB"),
        ("", None),
        ("N/A", None),
        ("unknown", None),
        ("12 Some Road, London", None),
        ("Ref XSE13 6LHX", None),  # glued to other letters: not a postcode
        ("SE13 6CI", None),  # C and I never appear in an inward code
        ("Lives in SE13", None),  # a bare outward code counts only on its own
    ],
)
def test_extract_postcode(text: str, expected: str | None) -> None:
    """A full postcode is found anywhere (the last one), a bare district only on its own."""
    assert extract_postcode(text) == expected


@pytest.mark.parametrize(
    ("postcode", "expected"),
    [("se13 6lh", "SE13"), ("SE136LH", "SE13"), ("SE13", "SE13"), ("tn10 3ab", "TN10")],
)
def test_outward_code(postcode: str, expected: str) -> None:
    """The outward code is the district part of a postcode, or the code itself."""
    assert outward_code(postcode) == expected


def test_outward_code_of_garbage() -> None:
    """Text that is not a postcode raises ValueError."""
    with pytest.raises(ValueError):
        outward_code("not a postcode")


@pytest.mark.parametrize(
    ("text", "area_id"),
    [
        ("se13 6lh", "lewisham"),
        ("SE136LH", "lewisham"),
        ("SE13", "lewisham"),
        ("1 Road, London SE4 1AA", "lewisham"),
        ("KT1 1AA", "kingston"),
        ("KT12 1AA", None),  # Walton-on-Thames, not Kingston: KT12 is not KT1
        ("KT4 8AA", None),  # Worcester Park is not listed
        ("CV3 1AA", "coventry"),
        ("CV31 1AA", None),  # Leamington Spa: CV31 is not CV3
        ("TN1 1AA", "kent-and-medway"),
        ("TN10 4AA", "kent-and-medway"),
        ("TN19 7AA", None),  # East Sussex: TN1 and TN10 are listed, TN19 is not
        ("TN5 6AA", None),
        ("CT1 2AB", "kent-and-medway"),
        ("CT21 4AA", "kent-and-medway"),
        ("ME4 4AA", "kent-and-medway"),
        ("me99 1aa", "kent-and-medway"),
        ("BR8 7AA", "kent-and-medway"),
        ("BR1 1AA", None),  # Bromley, London
        ("DA5 1AA", None),  # Bexley, London
        ("LS1 4AP", None),  # Leeds: no area
        ("no postcode here", None),
    ],
)
def test_by_postcode(matcher: AreaMatcher, text: str, area_id: str | None) -> None:
    """Districts match exactly, then whole postcode areas; anything else matches nothing."""
    area = matcher.by_postcode(text)
    assert (area.id if area else None) == area_id


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("London Borough of Lewisham", "lewisham"),
        ("Lewisham Council", "lewisham"),
        ("LEWISHAM", "lewisham"),
        ("lewisham.", "lewisham"),
        ("The London Borough of Lewisham Council", "lewisham"),
        ("Kent County Council", "kent"),
        ("Coventry City Council", "coventry"),
        ("Tonbridge & Malling Borough Council", "tonbridge and malling"),
        ("Folkestone and Hythe District Council", "folkestone and hythe"),
        ("Royal Borough of Kingston upon Thames", "kingston upon thames"),
        ("Kingston-upon-Thames", "kingston upon thames"),
        ("Wigan Metropolitan Borough Council", "wigan"),
        ("City of Bradford", "bradford"),
        ("King's Lynn and West Norfolk", "kings lynn and west norfolk"),
        ("Council", "council"),
        ("Sevenoaks District", "sevenoaks"),
        ("County Durham", "county durham"),
    ],
)
def test_normalise_authority(name: str, expected: str) -> None:
    """Case, punctuation and council affixes are ignored."""
    assert normalise_authority(name) == expected


@pytest.mark.parametrize(
    ("name", "area_id"),
    [
        ("London Borough of Lewisham", "lewisham"),
        ("Lewisham Council", "lewisham"),
        ("LEWISHAM", "lewisham"),
        ("Royal Borough of Kingston upon Thames", "kingston"),
        ("Kingston upon Thames", "kingston"),
        ("Royal Borough of Kingston", "kingston"),
        ("kingston", "kingston"),
        ("Kingston upon Hull City Council", None),
        ("Medway Council", "kent-and-medway"),
        ("Kent County Council", "kent-and-medway"),
        ("Tunbridge Wells Borough Council", "kent-and-medway"),
        ("Folkestone & Hythe District Council", "kent-and-medway"),
        ("Coventry City Council", "coventry"),
        ("Leeds City Council", None),
        ("Sevenoaks District", "kent-and-medway"),
        ("", None),
        ("   ", None),
    ],
)
def test_by_local_authority(matcher: AreaMatcher, name: str, area_id: str | None) -> None:
    """Local authority names match whatever affixes the form adds."""
    area = matcher.by_local_authority(name)
    assert (area.id if area else None) == area_id


def test_by_inbox(matcher: AreaMatcher) -> None:
    """The first address in order that is an inbox wins, compared case-insensitively."""
    assert matcher.by_inbox([]) is None
    assert matcher.by_inbox(["someone@example.org"]) is None
    area = matcher.by_inbox(["Someone@example.org", "PREVENT@Lewisham.gov.uk"])
    assert area is not None and area.id == "lewisham"
    area = matcher.by_inbox(["prevent@coventry.gov.uk", "prevent@lewisham.gov.uk"])
    assert area is not None and area.id == "coventry"
    area = matcher.by_inbox(iter(["<prevent@kent.gov.uk>"]))
    assert area is not None and area.id == "kent-and-medway"


def test_matcher_over_no_areas() -> None:
    """A matcher with no areas matches nothing."""
    matcher = AreaMatcher([])
    assert matcher.by_postcode("SE13 6LH") is None
    assert matcher.by_local_authority("Lewisham") is None
    assert matcher.by_inbox(["prevent@lewisham.gov.uk"]) is None

"""The figures a decision leaves for `report` (router.core.statistics) and the report built
from them (router.core.report)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from router.core.report import CountedDecision, build_report, previous_month
from router.core.rules.loader import check_rules, load_rules
from router.core.rules.model import Rules
from router.core.statistics import age_band, gender, parse_date, sector

ON = date(2026, 12, 7)


@pytest.mark.parametrize(
    ("dob", "band"),
    [
        ("07/12/2016", "10 or under"),  # 10 today
        ("06/12/2015", "11 to 15"),  # 11 since yesterday
        ("08/12/2010", "11 to 15"),  # 16 tomorrow
        ("07/12/2010", "16 to 17"),  # 16 today
        ("2008-12-07", "18 to 20"),
        ("1 February 2001", "21 to 30"),
        ("1st Feb 1986", "31 to 40"),
        ("31.12.1975", "41 to 50"),
        ("07-12-1966", "51 to 60"),
        ("07/12/1965", "61 and over"),
        ("DD/MM/YYYY", "unknown"),
        ("31/02/2001", "unknown"),
        ("01/01/2030", "unknown"),  # born after the referral
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_age_band_on_the_day_of_referral(dob: str | None, band: str) -> None:
    """The age band is the age on the day of referral, UK dates read day first."""
    assert age_band(dob, ON) == band


def test_two_digit_years_are_never_in_the_future() -> None:
    """`01/02/09` is 2009 and `01/02/75` is 1975."""
    assert parse_date("01/02/09") == date(2009, 2, 1)
    assert parse_date("01/02/75") == date(1975, 2, 1)


@pytest.mark.parametrize(
    ("given", "counted"),
    [
        ("Female", "female"),
        ("F", "female"),
        ("male", "male"),
        ("M.", "male"),
        ("Non-binary", "other"),
        ("Prefer not to say", "unknown"),
        ("N/A", "unknown"),
        (None, "unknown"),
    ],
)
def test_gender_as_the_form_gives_it(given: str | None, counted: str) -> None:
    """male, female, other for anything else written, unknown for nothing."""
    assert gender(given) == counted


def test_sector_by_the_most_specific_domain(bundled_rules: Rules) -> None:
    """A school under sch.uk is education, a council under gov.uk is local authority, the
    justice.gov.uk ministry is probation and prisons; unlisted is other, none unknown."""
    assert sector("head@stmarys.lewisham.sch.uk", bundled_rules) == "education"
    assert sector("dr@nhs.net", bundled_rules) == "health"
    assert sector("pc@kent.police.uk", bundled_rules) == "police"
    assert sector("officer@justice.gov.uk", bundled_rules) == "probation and prisons"
    assert sector("someone@lewisham.gov.uk", bundled_rules) == "local authority"
    assert sector("someone@dwp.gov.uk", bundled_rules) == "local authority"
    assert sector("someone@example.org", bundled_rules) == "other"
    assert sector(None, bundled_rules) == "unknown"


def test_rules_check_names_a_domain_listed_twice(tmp_path: Path, rules_dir: Path) -> None:
    """A domain under two sectors is a problem with its file and line; a local charity
    added under community loads, and is found."""
    import shutil

    shutil.copytree(rules_dir, tmp_path / "rules")
    path = tmp_path / "rules" / "sectors.yaml"
    original = path.read_text()
    path.write_text(original.replace("  community: []", "  community:\n    - nhs.net\n"))
    [problem] = check_rules(tmp_path / "rules")
    assert problem.file == "sectors.yaml" and problem.line is not None
    assert "already listed under 'health'" in problem.message
    path.write_text(
        original.replace("  community: []", "  community:\n    - youthcharity.org.uk\n")
    )
    rules = load_rules(tmp_path / "rules")
    assert sector("worker@youthcharity.org.uk", rules) == "community"


def test_report_counts_and_suppresses_small_numbers() -> None:
    """Counts from 1 to 4 are <5 unless exact; no-area decisions have their entry; times
    to forward give the median and the 90th percentile; other days are left out."""
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    decisions = [
        CountedDecision(
            start + i, start + i + 10 * (i + 1), "forward", "lewisham", "unknown", "male", "health"
        )
        for i in range(10)
    ]
    decisions.append(
        CountedDecision(start, None, "needs_review", None, "unknown", "unknown", "unknown")
    )
    decisions.append(
        CountedDecision(start - 1, None, "forward", "lewisham", "unknown", "male", "health")
    )
    report = build_report(decisions, date(2026, 11, 1), date(2026, 11, 30))
    data = report.as_json()
    assert data["total"] == 11
    assert data["by_area"]["none"]["needs_review"] == "<5"
    assert data["by_area"]["lewisham"] == {
        "forward": 10,
        "incomplete": 0,
        "needs_review": 0,
        "ignored": 0,
    }
    assert data["time_to_forward"] == {"median_seconds": 55.0, "p90_seconds": 90.0}
    exact = build_report(decisions, date(2026, 11, 1), date(2026, 11, 30), exact=True).as_json()
    assert exact["by_area"]["none"]["needs_review"] == 1
    assert previous_month(date(2026, 1, 1)) == (date(2025, 12, 1), date(2025, 12, 31))

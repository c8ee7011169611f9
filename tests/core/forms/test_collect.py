"""The field collector: composites, first values, tick boxes and the form threshold."""

from __future__ import annotations

import pytest

from router.core.forms.collect import FieldCollector, clean_value
from router.core.forms.fields import LabelMap
from tests.formfactory import default_form_rules


@pytest.fixture(scope="module")
def labels() -> LabelMap:
    """A label map over the SPEC section 5 labels."""
    return LabelMap(default_form_rules())


def test_composite_name_joined(labels: LabelMap) -> None:
    """Forename(s) + Surname (or First name + Last name) become one person_name."""
    collector = FieldCollector(labels)
    collector.add("Forename(s)", "Jane")
    collector.add("Surname", "Testperson")
    collector.add("DOB", "01/02/2001")
    assert collector.fields() == {"person_name": "Jane Testperson", "person_dob": "01/02/2001"}
    assert collector.is_form()


def test_composite_in_referrer_section(labels: LabelMap) -> None:
    """First name + Last name under a referrer heading make the referrer's name."""
    collector = FieldCollector(labels)
    collector.heading("Your details")
    collector.add("First name", "Sam")
    collector.add("Last name", "Referrer")
    assert collector.fields() == {"referrer_name": "Sam Referrer"}


def test_first_value_wins(labels: LabelMap) -> None:
    """A field found twice keeps its first non-empty value."""
    collector = FieldCollector(labels)
    collector.add("Name", "")
    collector.add("Full name", "Jane Testperson")
    collector.add("Name", "Someone Else")
    assert collector.fields() == {"person_name": "Jane Testperson"}


def test_one_label_is_not_a_form(labels: LabelMap) -> None:
    """A single recognised field (a letter with "Name:") does not make a form."""
    collector = FieldCollector(labels)
    collector.add("Name", "Jane")
    assert not collector.is_form()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Yes ☒ No ☐", "Yes"),
        ("☐ Yes ☒ No", "No"),
        ("☐ Yes ☐ No", ""),
        ("  1 Example Road\n  London\n", "1 Example Road, London"),
    ],
)
def test_clean_value(value: str, expected: str) -> None:
    """Tick boxes read as the ticked option; lines fold into one value."""
    assert clean_value(value) == expected


def test_signature_block_is_not_a_form(labels: LabelMap) -> None:
    """Referrer details alone (a cover letter's signature block) do not make a form."""
    collector = FieldCollector(labels)
    collector.add("Your name", "Sam Referrer")
    collector.add("Organisation", "Example Academy")
    collector.add("Email address", "sam.referrer@example.org")
    assert not collector.is_form()

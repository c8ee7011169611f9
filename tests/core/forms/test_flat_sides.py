"""Hypothesis: on forms without section headings, values never cross to the other side."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core.forms.read import read_attachment
from router.core.mail.sniff import sniff
from router.models import FormStatus
from tests.core.forms.corpus import LAYOUTS
from tests.core.forms.corpus_cases import (
    AFTER,
    PERSON_VALUES,
    REFERRER_VALUES,
    RULES,
    TITLES,
    Form,
    Row,
)
from tests.formfactory import attachment

_FLAT_LAYOUTS = ["pdf_colon", "pdf_columns", "docx_paragraphs", "docx_table2", "text", "html_table"]
_PERSON = ["person_name", "person_dob", "person_address", "person_postcode", "concern"]
_REFERRER = ["referrer_organisation", "referrer_email", "referrer_phone"]
_VALUES = {**PERSON_VALUES, **REFERRER_VALUES}


def _rows(fields: list[str]) -> st.SearchStrategy[list[Row]]:
    """One row per field, each under any of its labels in the rules, in random order."""
    rows = [
        st.sampled_from(RULES.labels[field]).map(lambda label, f=field: Row(label, _VALUES[f], f))
        for field in fields
    ]
    return st.tuples(*rows).map(list).flatmap(st.permutations)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    person=_rows(_PERSON[1:]),
    referrer=_rows(_REFERRER),
    person_name=st.sampled_from(RULES.labels["person_name"]),
    referrer_name=st.sampled_from(RULES.labels["referrer_name"]),
    referrer_first=st.booleans(),
    before=st.lists(st.sampled_from(TITLES), max_size=2),
    after=st.lists(st.sampled_from(AFTER), max_size=1),
    layout=st.sampled_from(_FLAT_LAYOUTS),
)
def test_flat_forms_never_swap_sides(  # type: ignore[no-untyped-def]
    person, referrer, person_name, referrer_name, referrer_first, before, after, layout
) -> None:
    """Each block opens with its name; every value read lands in its own field, and both
    names are read, whatever the labels, order, titles and instruction lines."""
    blocks = [
        (None, (Row(person_name, _VALUES["person_name"], "person_name"), *person)),
        (None, (Row(referrer_name, _VALUES["referrer_name"], "referrer_name"), *referrer)),
    ]
    if referrer_first:
        blocks.reverse()
    form = Form(blocks=tuple(blocks), before=tuple(before), after=tuple(after))
    data = LAYOUTS[layout][0](form, layout)
    reading = read_attachment(attachment(data, sniff(data), "form"), RULES)
    assert reading.status == FormStatus.FORM
    for field, value in reading.fields.items():
        assert _VALUES.get(field) == value, (field, value)
    assert reading.fields.get("person_name") == _VALUES["person_name"]
    assert reading.fields.get("referrer_name") == _VALUES["referrer_name"]

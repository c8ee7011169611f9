"""The layout corpus: 400+ generated forms, each read to exactly its expected canonical fields."""

from __future__ import annotations

import pytest

from router.core.forms.read import read_attachment
from router.core.mail.sniff import sniff
from router.models import FormStatus
from tests.core.forms.corpus import CASES
from tests.core.forms.corpus_cases import RULES
from tests.formfactory import attachment


@pytest.mark.parametrize("name", list(CASES))
def test_corpus_form_reads_to_its_fields(name: str) -> None:
    """A generated form is read as a form giving exactly the fields it was filled in with."""
    # Written by its own test, not all 400+ by a session fixture: under pytest-xdist each
    # worker would write every one of them (5 s of CPU each, a minute on a busy machine).
    case = CASES[name]
    data = case.write()
    reading = read_attachment(attachment(data, sniff(data), case.filename), RULES)
    assert reading.status == FormStatus.FORM, reading.reason
    assert reading.fields == case.form.expected()


def test_corpus_uses_every_label_and_layout() -> None:
    """The corpus has 400+ forms, every synonym in the rules and every claimed layout."""
    assert len(CASES) >= 400
    used = {row.label for case in CASES.values() for row in case.form.rows()}
    unused = {label for labels in RULES.labels.values() for label in labels} - used
    assert unused == set()
    headings = {h for case in CASES.values() for h, _ in case.form.blocks if h}
    wordings = {*RULES.sections.person, *RULES.sections.referrer}
    assert {w for w in wordings if not any(h.endswith(w) for h in headings)} == set()

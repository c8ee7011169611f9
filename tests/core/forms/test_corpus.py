"""The layout corpus: 400+ generated forms, each read to exactly its expected canonical fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.core.forms.read import read_attachment
from router.core.mail.sniff import sniff
from router.models import FormStatus
from tests.formfactory import attachment
from tests.core.forms.corpus import CASES, write_corpus
from tests.core.forms.corpus_cases import RULES

# Cases the reading gets wrong before issue 21's fix (the fix empties this set).
KNOWN_WRONG: frozenset[str] = frozenset(
    {
        "acro_name-head_capitals",
        "acro_text1-capitals",
        "acro_text1-head_blanks",
        "acro_text1-head_bold",
        "acro_text1-head_capitals",
        "acro_text1-head_numbered",
        "acro_text1-head_referrer_first",
        "acro_text1-head_row",
        "acro_text1-head_style",
        "acro_text1-head_title_after",
        "acro_tooltip-capitals",
        "docx_controls-instruction_after",
        "docx_controls-title_and_after",
        "docx_label_rows-after_referrer_first",
        "docx_label_rows-blank_placeholder",
        "docx_label_rows-bold_all",
        "docx_label_rows-bold_values",
        "docx_label_rows-capitals",
        "docx_label_rows-flat",
        "docx_label_rows-flat_referrer_first",
        "docx_label_rows-head_blanks",
        "docx_label_rows-head_bold",
        "docx_label_rows-head_capitals",
        "docx_label_rows-head_numbered",
        "docx_label_rows-head_referrer_first",
        "docx_label_rows-head_row",
        "docx_label_rows-head_style",
        "docx_label_rows-head_title_after",
        "docx_label_rows-instruction_after",
        "docx_label_rows-ticks",
        "docx_label_rows-title",
        "docx_label_rows-title_and_after",
        "docx_label_rows-title_referrer_first",
        "docx_legacy-after_referrer_first",
        "docx_paragraphs-after_referrer_first",
        "docx_paragraphs-title_and_after",
        "docx_split_runs-after_referrer_first",
        "docx_split_runs-capitals",
        "docx_split_runs-instruction_after",
        "docx_table2-after_referrer_first",
        "docx_table4-after_referrer_first",
        "docx_table4-capitals",
        "docx_table4-instruction_after",
        "docx_table4-title_and_after",
        "docx_tracked-after_referrer_first",
        "docx_tracked-capitals",
        "docx_tracked-instruction_after",
        "html_paragraphs-after_referrer_first",
        "html_paragraphs-blank_prompt",
        "html_paragraphs-bold_all",
        "html_paragraphs-bold_values",
        "html_paragraphs-head_blanks",
        "html_paragraphs-head_style",
        "html_paragraphs-instruction_after",
        "html_paragraphs-ticks",
        "html_paragraphs-title",
        "html_table-after_referrer_first",
        "html_table-blank_leaders",
        "html_table-blank_placeholder",
        "html_table-bold_all",
        "html_table-flat",
        "html_table-head_bold",
        "html_table-head_title_after",
        "html_table-instruction_after",
        "html_table-title_referrer_first",
        "pdf_above-after_referrer_first",
        "pdf_above-blank_leaders",
        "pdf_above-blank_placeholder",
        "pdf_above-blank_prompt",
        "pdf_above-bold_all",
        "pdf_above-bold_values",
        "pdf_above-capitals",
        "pdf_above-flat",
        "pdf_above-flat_referrer_first",
        "pdf_above-head_blanks",
        "pdf_above-head_bold",
        "pdf_above-head_capitals",
        "pdf_above-head_numbered",
        "pdf_above-head_referrer_first",
        "pdf_above-head_row",
        "pdf_above-head_style",
        "pdf_above-head_title_after",
        "pdf_above-instruction_after",
        "pdf_above-title",
        "pdf_above-title_and_after",
        "pdf_above-title_referrer_first",
        "pdf_colon-after_referrer_first",
        "pdf_colon-capitals",
        "pdf_colon-instruction_after",
        "pdf_colon-title_and_after",
        "pdf_columns-after_referrer_first",
        "pdf_columns-capitals",
        "pdf_columns-head_blanks",
        "pdf_columns-head_bold",
        "pdf_columns-head_capitals",
        "pdf_columns-head_numbered",
        "pdf_columns-head_referrer_first",
        "pdf_columns-head_row",
        "pdf_columns-head_style",
        "pdf_columns-head_title_after",
        "pdf_columns-title_and_after",
        "pdf_columns_colon-head_capitals",
        "pdf_columns_colon-instruction_after",
        "pdf_columns_colon-title_and_after",
        "pdf_leaders-head_blanks",
        "pdf_leaders-head_bold",
        "pdf_leaders-head_capitals",
        "pdf_leaders-head_numbered",
        "pdf_leaders-head_referrer_first",
        "pdf_leaders-head_row",
        "pdf_leaders-head_style",
        "pdf_leaders-head_title_after",
        "pdf_leaders-instruction_after",
        "pdf_leaders-title_and_after",
        "text-capitals",
        "text-title_and_after",
    }
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every corpus file, written once per session."""
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True)) if name in KNOWN_WRONG else name
        for name in CASES
    ],
)
def test_corpus_form_reads_to_its_fields(name: str, corpus: dict[str, Path]) -> None:
    """A generated form is read as a form giving exactly the fields it was filled in with."""
    data = corpus[name].read_bytes()
    reading = read_attachment(attachment(data, sniff(data), corpus[name].name), RULES)
    assert reading.status == FormStatus.FORM, reading.reason
    assert reading.fields == CASES[name].form.expected()


def test_corpus_uses_every_label_and_layout() -> None:
    """The corpus has 400+ forms, every synonym in the rules and every claimed layout."""
    assert len(CASES) >= 400
    used = {row.label for case in CASES.values() for row in case.form.rows()}
    unused = {label for labels in RULES.labels.values() for label in labels} - used
    assert unused == set()
    headings = {h for case in CASES.values() for h, _ in case.form.blocks if h}
    wordings = {*RULES.sections.person, *RULES.sections.referrer}
    assert {w for w in wordings if not any(h.endswith(w) for h in headings)} == set()

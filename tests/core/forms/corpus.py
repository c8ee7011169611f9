"""The layout corpus: every layout the README claims x every variation it can show.

`CASES` is the table (case id -> layout, `Form`), built at import without writing anything;
`write_corpus(directory)` writes each case's file once per test session. Each form's
expected canonical fields come from `Form.expected`. Plain text and HTML are written here;
PDFs in `tests.core.forms.corpus_render`, Word in `tests.core.forms.corpus_word`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

from tests.core.forms.corpus_cases import Form, variations
from tests.core.forms.corpus_render import (
    answer,
    fillable_pdf,
    heading_of,
    label_of,
    text_pdf,
    xfa_form,
)
from tests.core.forms.corpus_word import word_form


def plain_text(form: Form, layout: str) -> bytes:
    """ "Label: value" lines under heading lines, as pasted into a .txt file."""
    lines = list(form.before)
    for heading, rows in form.blocks:
        if heading:
            lines += ["", heading_of(form, heading)]
        lines += [f"{label_of(form, row)}{form.colon}{answer(form, row)}" for row in rows]
    lines += ["", *form.after]
    return "\n".join(lines).encode()


def html_form(form: Form, layout: str) -> bytes:
    """An HTML form: a label | value table per block, or "Label: value" paragraphs."""

    def bold(text: str, on: bool) -> str:
        return f"<b>{escape(text)}</b>" if on or form.bold_all else escape(text)

    parts = ["<html><body>", *(f"<p>{bold(line, False)}</p>" for line in form.before)]
    for heading, rows in form.blocks:
        title = heading_of(form, heading) if heading else ""
        if title and not (form.heading == "row" and layout == "html_table"):
            strong = form.heading != "numbered"
            style = form.heading == "style"
            parts.append(f"<h2>{escape(title)}</h2>" if style else f"<p>{bold(title, strong)}</p>")
        if layout == "html_table":
            parts.append("<table>")
            if title and form.heading == "row":
                parts.append(f'<tr><th colspan="2">{escape(title)}</th></tr>')
            for row in rows:
                value = bold(answer(form, row), form.bold_values)
                parts.append(
                    f"<tr><td>{bold(label_of(form, row), False)}</td><td>{value}</td></tr>"
                )
            parts.append("</table>")
        else:
            for row in rows:
                value = bold(answer(form, row), form.bold_values)
                parts.append(f"<p>{bold(label_of(form, row) + form.colon, False)}{value}</p>")
    parts += [f"<p>{escape(line)}</p>" for line in form.after]
    return "\n".join([*parts, "</body></html>"]).encode()


Writer = Callable[[Form, str], bytes]
_ALL = frozenset(variations(0))
_NOT_TYPED = frozenset({"bold_values", "bold_all", "spaced_colons", "tabs_colons", "ticks"})
_NO_COLON = frozenset({"spaced_colons", "tabs_colons"})
_PDF_TEXT = _ALL - {"tabs_colons", "ticks"}

LAYOUTS: dict[str, tuple[Writer, frozenset[str]]] = {
    "acro_tooltip": (fillable_pdf, _ALL - _NOT_TYPED),
    "acro_name": (fillable_pdf, _ALL - _NOT_TYPED),
    "acro_text1": (fillable_pdf, _ALL - _NOT_TYPED),
    "xfa": (xfa_form, _ALL - _NOT_TYPED - {"capitals"}),
    "pdf_colon": (text_pdf, _PDF_TEXT),
    "pdf_columns_colon": (text_pdf, _PDF_TEXT - _NO_COLON),
    "pdf_columns": (text_pdf, _PDF_TEXT - _NO_COLON),
    "pdf_above": (text_pdf, _PDF_TEXT - _NO_COLON),
    "pdf_leaders": (text_pdf, _PDF_TEXT - _NO_COLON),
    "docx_table2": (word_form, _ALL - _NO_COLON),
    "docx_table4": (word_form, _ALL - _NO_COLON),
    "docx_label_rows": (word_form, _ALL - _NO_COLON),
    "docx_paragraphs": (word_form, _ALL),
    "docx_split_runs": (word_form, _ALL),
    "docx_controls": (word_form, _ALL),
    "docx_legacy": (word_form, _ALL - _NO_COLON),
    "docx_tracked": (word_form, _ALL),
    "text": (plain_text, _ALL - {"bold_values", "bold_all"}),
    "html_table": (html_form, _ALL - _NO_COLON),
    "html_paragraphs": (html_form, _ALL),
}
SUFFIX = {"acro": "pdf", "xfa": "pdf", "pdf": "pdf", "docx": "docx", "text": "txt", "html": "html"}


@dataclass(frozen=True)
class Case:
    """One corpus file: its layout, the form in it, and where it is written."""

    layout: str
    variation: str
    form: Form

    @property
    def name(self) -> str:
        return f"{self.layout}-{self.variation}"

    @property
    def filename(self) -> str:
        return f"{self.name}.{SUFFIX[self.layout.split('_')[0]]}"

    def write(self) -> bytes:
        return LAYOUTS[self.layout][0](self.form, self.layout)


def _cases() -> dict[str, Case]:
    """The table: labels rotate with each case, so every synonym is used somewhere."""
    cases: dict[str, Case] = {}
    for layout_number, (layout, (_, allowed)) in enumerate(LAYOUTS.items()):
        for variation_number, name in enumerate(sorted(allowed)):
            turn = layout_number * 7 + variation_number
            case = Case(layout, name, variations(turn)[name])
            cases[case.name] = case
    return cases


CASES = _cases()


def write_corpus(directory: Path) -> dict[str, Path]:
    """Write every case's file under `directory`; case id -> path."""
    paths = {}
    for name, case in CASES.items():
        path = directory / case.filename
        path.write_bytes(case.write())
        paths[name] = path
    return paths

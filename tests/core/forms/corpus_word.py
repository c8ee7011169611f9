"""Write a corpus `Form` as a Word .docx (python-docx): label | value tables (2 or 4 columns, a
row of labels over a row of values), "Label: value" paragraphs (split over runs, answers in
content controls or tracked changes), legacy form fields in table cells, tick boxes."""

from __future__ import annotations

from xml.sax.saxutils import escape

import docx
from docx.oxml import parse_xml

from tests.core.forms.corpus_cases import PROMPT, Form, Row
from tests.core.forms.corpus_render import LEADERS, answer, heading_of, label_of
from tests.formfactory import _docx_bytes
from tests.formlayouts import W_NS, word_control

TABLES = ("docx_table2", "docx_table4", "docx_label_rows", "docx_legacy")


def word_form(form: Form, layout: str) -> bytes:
    """The form as a .docx in `layout` (see `tests.core.forms.corpus_render.LAYOUTS`)."""
    document = docx.Document()
    body = document.element.body
    blocks: list[str] = [_paragraph(form, [_run(form, line)]) for line in form.before]
    for heading, rows in form.blocks:
        if layout in TABLES:
            blocks += _table(form, layout, heading, rows)
            continue
        if heading:
            blocks.append(_heading(form, heading))
        blocks += [_paragraph(form, _pair_runs(form, layout, row)) for row in rows]
    blocks += [_paragraph(form, [_run(form, line)]) for line in form.after]
    for xml in blocks:
        body.insert(len(body) - 1, parse_xml(xml))
    return _docx_bytes(document)


def _run(form: Form, text: str, bold: bool = False) -> str:
    """One run (tabs as w:tab), bold when asked or when the whole form is bold."""
    props = "<w:rPr><w:b/></w:rPr>" if bold or form.bold_all else ""
    pieces = text.split("\t")
    inner = "<w:tab/>".join(f'<w:t xml:space="preserve">{escape(p)}</w:t>' for p in pieces)
    return f"<w:r>{props}{inner}</w:r>"


def _paragraph(form: Form, runs: list[str], style: str = "") -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p {W_NS}>{props}{''.join(runs)}</w:p>"


def _heading(form: Form, text: str) -> str:
    """A section heading: bold line, Word heading style, a one-cell heading row, or numbered."""
    text = heading_of(form, text)
    if form.heading == "style":
        return _paragraph(form, [_run(form, text)], style="Heading1")
    if form.heading == "row":
        cell = f"<w:tc>{_paragraph(form, [_run(form, text, bold=True)])}</w:tc>"
        return f"<w:tbl {W_NS}><w:tblPr/><w:tr>{cell}</w:tr></w:tbl>"
    return _paragraph(form, [_run(form, text, bold=form.heading == "bold")])


def _pair_runs(form: Form, layout: str, row: Row) -> list[str]:
    """ "Label: answer" as runs; the answer in a control, a revision or plain runs."""
    label = f"{label_of(form, row)}{form.colon}"
    if layout == "docx_split_runs":
        text = label + answer(form, row)
        return [_run(form, text[i : i + 3], bold=(i // 3) % 2 == 0) for i in range(0, len(text), 3)]
    return [_run(form, label), _answer(form, layout, row)]


def _answer(form: Form, layout: str, row: Row) -> str:
    """The answer's XML: plain, content control, legacy field or tracked change."""
    text = answer(form, row)
    if layout == "docx_legacy" and row.field == "consent" and form.ticks:
        return _legacy_box("Yes", True) + _legacy_box("No", False)
    if layout == "docx_controls":
        return word_control(None if text == PROMPT else escape(text), "sdt")
    if layout == "docx_legacy":
        return word_control(None if text in (PROMPT, LEADERS, "") else escape(text), "formtext")
    if layout == "docx_tracked":
        deleted = (
            '<w:del w:id="1" w:author="A"><w:r><w:delText>Old answer, deleted</w:delText>'
            "</w:r></w:del>"
        )
        return f'{deleted}<w:ins w:id="2" w:author="A">{_run(form, text, form.bold_values)}</w:ins>'
    return _run(form, text, bold=form.bold_values)


def _legacy_box(option: str, ticked: bool) -> str:
    """A legacy FORMCHECKBOX after its option's text."""
    state = "<w:checked/>" if ticked else '<w:checked w:val="0"/>'
    return (
        f'<w:r><w:t xml:space="preserve">{option} </w:t></w:r>'
        f'<w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:checkBox><w:sizeAuto/>{state}'
        "</w:checkBox></w:ffData></w:fldChar></w:r>"
        '<w:r><w:instrText xml:space="preserve"> FORMCHECKBOX </w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:t xml:space="preserve"> </w:t></w:r>'
    )


def _cell(form: Form, content: str, span: int = 1) -> str:
    props = f'<w:tcPr><w:gridSpan w:val="{span}"/></w:tcPr>' if span > 1 else ""
    return f"<w:tc>{props}<w:p>{content}</w:p></w:tc>"


def _table(form: Form, layout: str, heading: str | None, rows: tuple[Row, ...]) -> list[str]:
    """One table per block: its heading a merged first row (or a line above it)."""
    width = {"docx_table4": 4, "docx_label_rows": 3}.get(layout, 2)
    xml_rows: list[str] = []
    before = []
    if heading and form.heading == "row":
        title = _run(form, heading_of(form, heading), True)
        xml_rows.append(f"<w:tr>{_cell(form, title, width)}</w:tr>")
    elif heading:
        before = [_heading(form, heading)]
    if layout == "docx_label_rows":
        for start in range(0, len(rows), width):
            chunk = list(rows[start : start + width])
            chunk += [None] * (width - len(chunk))  # type: ignore[list-item]
            labels = [_run(form, label_of(form, r)) if r else "" for r in chunk]
            values = [_answer(form, layout, r) if r else "" for r in chunk]
            xml_rows.append("<w:tr>" + "".join(_cell(form, c) for c in labels) + "</w:tr>")
            xml_rows.append("<w:tr>" + "".join(_cell(form, c) for c in values) + "</w:tr>")
    else:
        pairs = width // 2
        for start in range(0, len(rows), pairs):
            cells = []
            for row in rows[start : start + pairs]:
                label = _cell(form, _run(form, label_of(form, row)))
                cells += [label, _cell(form, _answer(form, layout, row))]
            cells += [_cell(form, "")] * (width - len(cells))
            xml_rows.append("<w:tr>" + "".join(cells) + "</w:tr>")
    grid = "".join('<w:gridCol w:w="2400"/>' for _ in range(width))
    table = f"<w:tbl {W_NS}><w:tblPr/><w:tblGrid>{grid}</w:tblGrid>{''.join(xml_rows)}</w:tbl>"
    return [*before, table]

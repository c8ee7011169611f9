"""Write a corpus `Form` in one layout: fillable or text PDFs (reportlab), Word (python-docx),
plain text or HTML. `LAYOUTS` maps each layout the README claims to its writer and to the
variations it can show (a fillable PDF has no bold values; a Word tick box needs Word)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

from tests.core.forms.corpus_cases import PROMPT, Form, Row
from tests.formlayouts import xfa_pdf

LEADERS = "__________"


def label_of(form: Form, row: Row) -> str:
    """The label as printed."""
    return row.label.upper() if form.capitals else row.label


def answer(form: Form, row: Row) -> str:
    """The answer as typed: the value, a tick-box pair, or the form's blank."""
    if row.field == "consent" and form.ticks:
        return "Yes ☒ No ☐"
    if row.value:
        return row.value
    return {"leaders": LEADERS, "placeholder": "N/A", "prompt": PROMPT}.get(form.blank, "")


def heading_of(form: Form, text: str) -> str:
    """A heading as printed (in capitals with the labels)."""
    return text.upper() if form.capitals else text


# ---------------------------------------------------------------- PDF text layers


def _pdf(draw: Callable[[canvas.Canvas], None]) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    draw(pdf)
    pdf.save()
    return buffer.getvalue()


class _Page:
    """A cursor down an A4 page (a new page when it runs out)."""

    def __init__(self, pdf: canvas.Canvas, form: Form) -> None:
        self.pdf, self.form, self.y = pdf, form, 800.0

    def text(self, x: float, text: str, bold: bool = False, size: int = 10) -> float:
        font = "Helvetica-Bold" if bold or self.form.bold_all else "Helvetica"
        self.pdf.setFont(font, size)
        self.pdf.drawString(x, self.y, text)
        return x + stringWidth(text, font, size)

    def down(self, step: float = 18) -> None:
        self.y -= step
        if self.y < 60:
            self.pdf.showPage()
            self.y = 800.0

    def lines(self, texts: tuple[str, ...]) -> None:
        for text in texts:
            self.text(50, text)
            self.down()

    def heading(self, text: str | None) -> None:
        if not text:
            return
        style = self.form.heading
        size = 14 if style == "style" else 11
        self.text(50, heading_of(self.form, text), bold=style != "numbered", size=size)
        if style == "row":
            self.pdf.line(45, self.y - 5, 550, self.y - 5)
        self.down(22)


def text_pdf(form: Form, layout: str) -> bytes:
    """A text-layer PDF: "Label: value", columns (with or without colons), label above value
    or dotted leaders."""

    def draw(pdf: canvas.Canvas) -> None:
        page = _Page(pdf, form)
        page.lines(form.before)
        for heading, rows in form.blocks:
            page.heading(heading)
            for row in rows:
                _pdf_row(page, form, row, layout)
        page.lines(form.after)

    return _pdf(draw)


def _pdf_row(page: _Page, form: Form, row: Row, layout: str) -> None:
    label, value = label_of(form, row), answer(form, row)
    if layout == "pdf_above":
        page.text(50, label)
        page.down(14)
        if value:
            page.text(70, value, bold=form.bold_values)
            page.down()
        return
    if layout in ("pdf_columns", "pdf_columns_colon"):
        page.text(50, f"{label}:" if layout == "pdf_columns_colon" else label)
        page.text(300, value, bold=form.bold_values)
    elif layout == "pdf_leaders":
        end = page.text(50, f"{label} ........")
        page.text(end + 4, value, bold=form.bold_values)
    else:
        end = page.text(50, f"{label}{form.colon.replace(chr(9), '  ')}".rstrip() + " ")
        page.text(end + 2, value, bold=form.bold_values)
    page.down()


# ---------------------------------------------------------------- fillable PDFs


def fillable_pdf(form: Form, layout: str) -> bytes:
    """AcroForm fields labelled by tooltip, by name, or named "TextN" beside a printed label;
    headings (and titles) printed on the page."""

    def draw(pdf: canvas.Canvas) -> None:
        page = _Page(pdf, form)
        page.lines(form.before)
        names: dict[str, int] = {}
        for heading, rows in form.blocks:
            page.heading(heading)
            for number, row in enumerate(rows, start=len(names) + 1):
                label = label_of(form, row)
                names[label] = names.get(label, 0) + 1
                name = label if names[label] == 1 else f"{label}_{names[label]}"
                tooltip = ""
                if layout == "acro_tooltip":
                    name, tooltip = f"field{number}", label
                elif layout == "acro_text1":
                    name = f"Text{number}"
                page.text(50, label)
                value = "" if answer(form, row) in (LEADERS, PROMPT) else answer(form, row)
                pdf.acroForm.textfield(
                    name=name,
                    value=value,
                    tooltip=tooltip,
                    x=320,
                    y=page.y - 6,
                    width=240,
                    height=18,
                )
                page.down(26)
        page.lines(form.after)

    return _pdf(draw)


def xfa_form(form: Form, layout: str) -> bytes:
    """A LiveCycle PDF: answers only in the XFA data, sections as parent elements."""
    parts = []
    for heading, rows in form.blocks:
        inner = "".join(
            f"<{_element(row.label)}>{_xml(answer(form, row))}</{_element(row.label)}>"
            for row in rows
        )
        parts.append(f"<{_element(heading)}>{inner}</{_element(heading)}>" if heading else inner)
    return xfa_pdf(f"<form1>{''.join(parts)}</form1>", ["Text1", "Text2"])


def _element(text: str) -> str:
    words = re.sub(r"\([^)]*\)", " ", text).replace("'s", "s").replace("’s", "s")
    name = "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", words))
    return name if not name[:1].isdigit() else f"S{name}"


def _xml(text: str) -> str:
    return "" if text in (LEADERS, PROMPT) else text.replace("&", "&amp;").replace("<", "&lt;")

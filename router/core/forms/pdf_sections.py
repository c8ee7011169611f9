"""Find which section of a fillable PDF each AcroForm field sits in, from the printed page.

Fields on many fillable forms are named "Name" and "Name_2", or carry the tooltip "Name"
twice; only the printed heading above them ("Section 2: Referrer details") says whose they
are. The pages' text runs (with positions) are scanned for section headings; each field's
section is that of the last heading printed before its widget, in reading order (page by
page, top to bottom). Only the pages that hold such widgets, and the page before each, are
searched: a long document whose form fields sit on page 1 costs one page of text.
"""

from __future__ import annotations

import itertools
import re
import time

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject

from router.core.forms import limits
from router.core.forms.collect import FieldCollector
from router.core.forms.pdf_fields import as_dict, resolve
from router.core.forms.pdf_widgets import text_runs
from router.core.forms.sections import strip_number

_MAX_ANNOTATIONS = 1_000
_SLACK = 3.0  # points a heading may sit below the widget's top and still come before it


def field_sections(
    reader: PdfReader, fields: list[DictionaryObject], collector: FieldCollector
) -> dict[int, str]:
    """The section role of each field (keyed by `id(field)`) that sits below a heading.

    Args:
        reader: the open PDF.
        fields: terminal AcroForm field dictionaries.
        collector: gives the form's label and section rules.

    Returns:
        id(field) -> PERSON, REFERRER or OTHER; fields above every heading are left out.
    """
    wanted = {id(field) for field in fields}
    headings: list[tuple[int, float, str]] = []
    widgets: dict[int, tuple[int, float]] = {}
    pages = list(itertools.islice(reader.pages, limits.MAX_PDF_PAGES))
    for number, page in enumerate(pages):
        for owner, top in _widget_tops(page, wanted):
            widgets.setdefault(owner, (number, top))
    holding = {number for number, _ in widgets.values()}
    started = time.monotonic()
    for number, page in enumerate(pages):
        if time.monotonic() - started > limits.PDF_TEXT_SECONDS:
            break
        if number not in holding and number + 1 not in holding:
            continue
        for run in text_runs(page):
            role = _heading_role(run.text, collector)
            if role is not None:
                headings.append((number, run.y, role))
    sections: dict[int, str] = {}
    for owner, (page_number, top) in widgets.items():
        before = [h for h in headings if (h[0], -h[1]) < (page_number, -(top + _SLACK))]
        if before:
            sections[owner] = max(before, key=lambda h: (h[0], -h[1]))[2]
    return sections


def _heading_role(text: str, collector: FieldCollector) -> str | None:
    """The role of a printed run that is a section heading (labels are not headings)."""
    if len(text) > 120 or re.search(r":\s*\S", strip_number(text)):
        return None  # "Label: value", not a heading
    if collector.labels.match(text.rstrip(":?* ")) is not None:
        return None
    return collector.sections.role(text)


def _widget_tops(page: DictionaryObject, wanted: set[int]) -> list[tuple[int, float]]:
    """(field id, top of its widget) for the page's widgets of wanted fields."""
    annotations = resolve(page.get("/Annots"))
    if not isinstance(annotations, ArrayObject):
        return []
    tops = []
    for item in list(annotations)[:_MAX_ANNOTATIONS]:
        annotation = as_dict(item)
        if annotation.get("/Subtype") != "/Widget":
            continue
        owner = annotation if id(annotation) in wanted else as_dict(annotation.get("/Parent"))
        if id(owner) not in wanted:
            continue
        rect = resolve(annotation.get("/Rect"))
        try:
            y1, y2 = float(resolve(rect[1])), float(resolve(rect[3]))  # type: ignore[index, arg-type]
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        tops.append((id(owner), max(y1, y2)))
    return tops

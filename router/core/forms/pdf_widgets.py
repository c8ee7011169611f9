"""Find the printed label of an AcroForm field from where its widget sits on the page.

Some fillable PDFs name their fields "Text1", "Text2" and print the real label next to
the box. For such fields the page's text is extracted with positions (pypdf's plain mode
with a visitor), fragments on one baseline are merged into runs, and the label is the
nearest run on the widget's row to its left, else the nearest run just above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject

from router.core.forms import limits
from router.core.forms.pdf_fields import as_dict, resolve

_MAX_ANNOTATIONS = 1_000
_ROW_SLACK = 3.0  # points a label's baseline may sit outside the widget's height
_ABOVE = 36.0  # how far above a widget a label may be


@dataclass
class _Run:
    """A run of text on one baseline: where it starts and roughly where it ends."""

    x: float
    y: float
    end: float
    size: float
    text: str


def widget_labels(reader: PdfReader, fields: list[DictionaryObject]) -> dict[int, str]:
    """The printed label of each field (keyed by `id(field)`) that has one nearby."""
    wanted = {id(field) for field in fields}
    labels: dict[int, str] = {}
    for number, page in enumerate(reader.pages):
        if number >= limits.MAX_PDF_PAGES or len(labels) == len(wanted):
            break
        boxes = _widget_boxes(page, wanted, labels)
        if not boxes:
            continue
        runs = text_runs(page)
        for owner, box in boxes:
            label = _nearest_label(runs, box)
            if label and owner not in labels:
                labels[owner] = label
    return labels


def _widget_boxes(
    page: DictionaryObject, wanted: set[int], done: dict[int, str]
) -> list[tuple[int, tuple[float, float, float, float]]]:
    """(field id, rectangle) of the page's widgets that belong to wanted fields."""
    annotations = resolve(page.get("/Annots"))
    if not isinstance(annotations, ArrayObject):
        return []
    boxes = []
    for item in list(annotations)[:_MAX_ANNOTATIONS]:
        annotation = as_dict(item)
        if annotation.get("/Subtype") != "/Widget":
            continue
        owner = annotation if id(annotation) in wanted else as_dict(annotation.get("/Parent"))
        if id(owner) not in wanted or id(owner) in done:
            continue
        rect = resolve(annotation.get("/Rect"))
        try:
            x1, y1, x2, y2 = (float(resolve(v)) for v in rect)  # type: ignore[arg-type, attr-defined]
        except (TypeError, ValueError):
            continue
        boxes.append((id(owner), (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))))
    return boxes


def content_size(page: DictionaryObject) -> int:
    """How many bytes the page's content streams decode to (0 when it has none)."""
    contents = resolve(page.get("/Contents"))
    streams = list(contents) if isinstance(contents, ArrayObject) else [contents]
    total = 0
    for stream in streams[:1000]:
        data = getattr(resolve(stream), "get_data", None)
        total += len(data()) if data is not None else 0
    return total


def searchable(page: DictionaryObject) -> bool:
    """False for a page too heavy to extract text from (see `limits.MAX_PAGE_CONTENT_BYTES`)."""
    return content_size(page) <= limits.MAX_PAGE_CONTENT_BYTES


def text_runs(page: DictionaryObject) -> list[_Run]:
    """The page's text fragments with positions, merged into runs along each baseline
    (none for a page too heavy to search)."""
    fragments: list[_Run] = []
    if not searchable(page):
        return fragments

    def visit(text: str, cm: list[float], tm: list[float], _font: object, size: float) -> None:
        if not text.strip() or len(fragments) > 20_000:
            return
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = abs(tm[0] * cm[0]) or 1.0
        height = (size or 10.0) * scale
        width = len(text.strip()) * height * 0.5
        fragments.append(_Run(x, y, x + width, height, text.strip()))

    page.extract_text(visitor_text=visit)  # type: ignore[attr-defined]
    fragments.sort(key=lambda run: (-round(run.y), run.x))
    runs: list[_Run] = []
    for fragment in fragments:
        last = runs[-1] if runs else None
        if (
            last is not None
            and abs(last.y - fragment.y) < 2
            and fragment.x - last.end < last.size * 1.5
        ):
            last.text = f"{last.text} {fragment.text}"
            last.end = max(last.end, fragment.end)
        else:
            runs.append(fragment)
    return runs


def _nearest_label(runs: list[_Run], box: tuple[float, float, float, float]) -> str | None:
    """The run left of the box on its row, else the closest run just above it."""
    x1, y1, x2, y2 = box
    left = [run for run in runs if y1 - _ROW_SLACK <= run.y <= y2 + _ROW_SLACK and run.x < x1 - 1]
    if left:
        return max(left, key=lambda run: run.x).text
    above = [
        run for run in runs if y2 - _ROW_SLACK < run.y <= y2 + _ABOVE and x1 - 40 <= run.x <= x2
    ]
    if above:
        return min(above, key=lambda run: run.y).text
    return None

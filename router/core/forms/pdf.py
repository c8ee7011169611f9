"""Read a PDF referral form: AcroForm fields first, else the text layer.

AcroForm fields are walked by hand (with a visited set and a cap) rather than through
`PdfReader.get_fields`, so a /Kids loop cannot recurse forever and both the field name
(`/T`) and its tooltip (`/TU`) are at hand. A field's label is its tooltip or its name,
exact matches first; the names of its parent fields ("Referrer.Name") give its section.

When every AcroForm field is empty, an XFA form's answers are read from its datasets
packet (`router.core.forms.pdf_xfa`). When the fields do not make a form (none, or generic
names like "Text1"), the text layer is extracted page by page in pypdf's layout mode, which
keeps the gap between the two columns of a table, and read as lines (`router.core.forms.text`).
A PDF with no text at all is an image-only scan. The text layer is read a page at a time
and given up early: after `limits.PDF_LABEL_PAGES` pages without a single form label (a
report or a book, not a form), at `limits.MAX_PDF_PAGES`, and past pages whose drawing
operators run to megabytes (`limits.MAX_PAGE_CONTENT_BYTES`); a PDF with an object stream
of more than `limits.MAX_OBJSTM_OBJECTS` objects is refused before pypdf parses it.

An encrypted PDF that opens with the empty user password (owner restrictions only, RC4 or
AES) is read normally; any other is "encrypted PDF".

pypdf reports problems with malformed files through `warnings` and `logging`; both are
silenced here (the messages may quote document content, and the reader records its own
reason), and every pypdf failure becomes an UNREADABLE reading naming only the exception
class.
"""

from __future__ import annotations

import io
import itertools
import logging
import re
import time
import warnings

import structlog
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from router.core.forms import limits
from router.core.forms.collect import FieldCollector, ReadResult, is_ambiguous
from router.core.forms.fields import LabelMap, LabelMatch
from router.core.forms.pdf_fields import PdfField, walk_fields
from router.core.forms.pdf_sections import field_sections
from router.core.forms.pdf_widgets import searchable, widget_labels
from router.core.forms.pdf_xfa import read_xfa
from router.core.forms.text import LineReader

log = structlog.get_logger(__name__)

# pypdf's malformed-file warnings may quote document content: keep them out of our logs.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def read_pdf(data: bytes, label_map: LabelMap) -> ReadResult:
    """Read a PDF attachment; never raises.

    Returns:
        FORM with canonical fields, SUPPORTING, or UNREADABLE with a reason such as
        "encrypted PDF", "image-only PDF (no text layer)" or "corrupt PDF: PdfReadError".
    """
    if len(data) > limits.MAX_INPUT_BYTES:
        return ReadResult.unreadable("PDF too large")
    if _largest_object_stream(data) > limits.MAX_OBJSTM_OBJECTS:
        return ReadResult.unreadable("PDF too complex to read (object stream too large)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _read(data, label_map)
        except RecursionError:
            return ReadResult.unreadable("corrupt PDF: RecursionError")
        except DependencyError:  # AES without `cryptography`: encrypted, not corrupt
            return ReadResult.unreadable("encrypted PDF (AES; cannot be decrypted here)")
        except Exception as exc:  # pypdf raises anything on hostile input
            log.info("pdf_unreadable", error=type(exc).__name__)
            return ReadResult.unreadable(f"corrupt PDF: {type(exc).__name__}")


def _read(data: bytes, label_map: LabelMap) -> ReadResult:
    """`read_pdf` without the safety net."""
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not _decrypt_empty(reader):
        return ReadResult.unreadable("encrypted PDF")
    collector = FieldCollector(label_map)
    filled, unmatched = _read_acroform(reader, collector)
    if not filled and read_xfa(reader, collector):  # LiveCycle keeps answers in XFA data
        return ReadResult.from_collector(collector, "PDF XFA form data")
    if unmatched:
        unmatched = _read_by_position(reader, unmatched, collector)
    if collector.is_form():
        return ReadResult.from_collector(collector, "PDF form fields")
    has_text = _read_text_layer(reader, collector)
    if collector.is_form() and unmatched:
        # The printed labels make it a form, but answers sit in fields we cannot place:
        # reading it as blank would tell the sender their filled form is incomplete.
        return ReadResult.unreadable("fillable PDF whose fields could not be matched to labels")
    if collector.is_form():
        return ReadResult.from_collector(collector, "PDF text")
    if not has_text and not filled:
        return ReadResult.unreadable("image-only PDF (no text layer)")
    return ReadResult.from_collector(collector, "PDF")


_OBJSTM_N = re.compile(
    rb"/Type\s*/ObjStm\b[^>]{0,300}?/N\s+(\d{1,12})|/N\s+(\d{1,12})\b[^>]{0,300}?/Type\s*/ObjStm\b"
)


def _largest_object_stream(data: bytes) -> int:
    """The most objects any object stream of the file declares (its dictionary is plain)."""
    counts = [int(a or b) for a, b in _OBJSTM_N.findall(data)]
    return max(counts, default=0)


def _decrypt_empty(reader: PdfReader) -> bool:
    """True when the PDF opens with the empty user password."""
    try:
        return bool(reader.decrypt("") != PasswordType.NOT_DECRYPTED)
    except DependencyError:
        raise
    except Exception as exc:  # unsupported algorithm, missing crypto backend, broken dict
        log.info("pdf_decrypt_failed", error=type(exc).__name__)
        return False


def _parent_section(field: PdfField, collector: FieldCollector) -> str | None:
    """The section named by the field's parents ("Referrer.Name" -> REFERRER), if any."""
    return next((r for r in map(collector.sections.role, reversed(field.parents)) if r), None)


def _field_match(
    field: PdfField, collector: FieldCollector, printed: str | None = None
) -> LabelMatch | None:
    """The canonical meaning of a field from its tooltip or name (exact matches first).

    Its section comes from its parents' names, else from the heading printed above it.
    """
    section = _parent_section(field, collector) or printed
    label_map = collector.labels
    for label in field.labels:
        if label_map.is_exact(label):
            return label_map.match(label, section)
    for label in field.labels:
        found = label_map.match(label, section)
        if found is not None:
            return found
    return None


def _option_box(field: PdfField, collector: FieldCollector) -> tuple[LabelMatch, str] | None:
    """A "ConsentYes" / "Consent_No" check box: the field it answers and the answer."""
    for label in field.labels:
        base, _, option = collector.labels.normalise(label).rpartition(" ")
        if option in ("yes", "no") and base:
            found = collector.labels.match(base)
            if found is not None:
                return found, option.capitalize()
    return None


def _read_acroform(reader: PdfReader, collector: FieldCollector) -> tuple[bool, list[PdfField]]:
    """Feed AcroForm fields into the collector.

    Returns:
        Whether any field holds a value, and the filled fields no label matched.
    """
    filled = False
    unmatched: list[PdfField] = []
    fields = list(walk_fields(reader))
    printed = _printed_sections(reader, fields, collector)
    for role in {*printed.values(), *(_parent_section(f, collector) for f in fields)}:
        collector.saw_section(role)
    for field in fields:
        value = field.value()
        if value is None:
            continue
        filled = filled or bool(value.strip())
        option = _option_box(field, collector) if field.is_checkbox else None
        if option is not None:
            if value == "Yes":
                collector.add_match(*option)
            continue
        found = _field_match(field, collector, printed.get(id(field.node)))
        if found is not None:
            collector.add_match(found, value)
        elif value.strip() and not field.is_checkbox:
            unmatched.append(field)
    return filled, unmatched


def _printed_sections(
    reader: PdfReader, fields: list[PdfField], collector: FieldCollector
) -> dict[int, str]:
    """Sections from printed headings, looked up only when a bare label could be either side."""
    for field in fields:
        if _parent_section(field, collector) is not None or field.value() is None:
            continue
        found = _field_match(field, collector)
        if found is not None and not found.sided and is_ambiguous(found.field):
            return field_sections(reader, [f.node for f in fields], collector)
    return {}


def _read_by_position(
    reader: PdfReader, unmatched: list[PdfField], collector: FieldCollector
) -> list[PdfField]:
    """Label generic fields by the text printed next to them; returns those still unmatched."""
    labels = widget_labels(reader, [field.node for field in unmatched])
    printed: dict[int, str] = {}
    for printed_label in labels.values():
        found = collector.match(printed_label.rstrip(":?* "))
        if found is not None and not found.sided and is_ambiguous(found.field):
            printed = field_sections(reader, [field.node for field in unmatched], collector)
            break
    for role in set(printed.values()):
        collector.saw_section(role)
    left = []
    for field in unmatched:
        label = labels.get(id(field.node))
        section = printed.get(id(field.node))
        found = collector.labels.match(label.rstrip(":?* "), section) if label else None
        if found is None:
            left.append(field)
        else:
            collector.add_match(found, field.value() or "")
    return left


def _page_text(page: object) -> str:
    """A page's text in layout mode, falling back to plain mode."""
    try:
        return str(page.extract_text(extraction_mode="layout"))  # type: ignore[attr-defined]
    except RecursionError:
        raise
    except Exception as exc:  # layout mode trips over some fonts and matrices
        log.debug("pdf_layout_failed", error=type(exc).__name__)
        return str(page.extract_text())  # type: ignore[attr-defined]


def _read_text_layer(reader: PdfReader, collector: FieldCollector) -> bool:
    """Feed the text of the first pages into the collector; True when there was any text."""
    started = time.monotonic()
    lines = LineReader(collector)
    total = 0
    for number, page in enumerate(itertools.islice(reader.pages, limits.MAX_PDF_PAGES)):
        if total >= limits.MAX_TEXT_CHARS:
            break
        if time.monotonic() - started > limits.PDF_TEXT_SECONDS:
            log.info("pdf_text_budget_spent", pages_read=number)
            break
        if number >= limits.PDF_LABEL_PAGES and not collector.recognised():
            break  # no form label on the first pages: not a form
        if not searchable(page):
            log.info("pdf_page_too_heavy", page=number)
            total += 1  # it has content: not an image-only scan
            continue
        text = _page_text(page)[: limits.MAX_TEXT_CHARS - total]
        total += len(text.strip())
        for line in text.splitlines():
            lines.feed(line)
    lines.finish()
    return total > 0

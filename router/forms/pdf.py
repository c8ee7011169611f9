"""Read a PDF referral form: AcroForm fields first, else the text layer.

AcroForm fields are walked by hand (with a visited set and a cap) rather than through
`PdfReader.get_fields`, so a /Kids loop cannot recurse forever and both the field name
(`/T`) and its tooltip (`/TU`) are at hand. A field's label is its tooltip or its name,
exact matches first; the names of its parent fields ("Referrer.Name") give its section.

When the fields do not make a form (none, or generic names like "Text1"), the text layer
is extracted page by page in pypdf's layout mode, which keeps the gap between the two
columns of a table, and read as lines (`router.forms.text`). A PDF with no text at all is
an image-only scan. An encrypted PDF that opens with the empty user password (owner
restrictions only) is read normally; any other is "encrypted PDF".

pypdf reports problems with malformed files through `warnings` and `logging`; both are
silenced here (the messages may quote document content, and the reader records its own
reason), and every pypdf failure becomes an UNREADABLE reading naming only the exception
class.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Iterator

import structlog
from pypdf import PasswordType, PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, PdfObject

from router.forms import limits
from router.forms.collect import FieldCollector, ReadResult
from router.forms.fields import LabelMap, LabelMatch, section_role
from router.forms.text import LineReader

log = structlog.get_logger(__name__)

# pypdf's malformed-file warnings may quote document content: keep them out of our logs.
logging.getLogger("pypdf").setLevel(logging.ERROR)

_RADIO = 1 << 15
_PUSHBUTTON = 1 << 16


def read_pdf(data: bytes, label_map: LabelMap) -> ReadResult:
    """Read a PDF attachment; never raises.

    Returns:
        FORM with canonical fields, SUPPORTING, or UNREADABLE with a reason such as
        "encrypted PDF", "image-only PDF (no text layer)" or "corrupt PDF: PdfReadError".
    """
    if len(data) > limits.MAX_INPUT_BYTES:
        return ReadResult.unreadable("PDF too large")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _read(data, label_map)
        except RecursionError:
            return ReadResult.unreadable("corrupt PDF: RecursionError")
        except Exception as exc:  # pypdf raises anything on hostile input
            log.info("pdf_unreadable", error=type(exc).__name__)
            return ReadResult.unreadable(f"corrupt PDF: {type(exc).__name__}")


def _read(data: bytes, label_map: LabelMap) -> ReadResult:
    """`read_pdf` without the safety net."""
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not _decrypt_empty(reader):
        return ReadResult.unreadable("encrypted PDF")
    collector = FieldCollector(label_map)
    filled = _read_acroform(reader, collector)
    if collector.is_form():
        return ReadResult.from_collector(collector, "PDF form fields")
    has_text = _read_text_layer(reader, collector)
    if collector.is_form():
        return ReadResult.from_collector(collector, "PDF text")
    if not has_text and not filled:
        return ReadResult.unreadable("image-only PDF (no text layer)")
    return ReadResult.from_collector(collector, "PDF")


def _decrypt_empty(reader: PdfReader) -> bool:
    """True when the PDF opens with the empty user password."""
    try:
        return bool(reader.decrypt("") != PasswordType.NOT_DECRYPTED)
    except Exception as exc:  # unsupported algorithm, missing crypto backend, broken dict
        log.info("pdf_decrypt_failed", error=type(exc).__name__)
        return False


def _resolve(obj: object) -> object:
    """The direct object behind an indirect reference."""
    return obj.get_object() if isinstance(obj, IndirectObject) else obj


def _walk_fields(reader: PdfReader) -> Iterator[tuple[DictionaryObject, object, list[str]]]:
    """Terminal AcroForm fields with their inherited /FT and their parents' names."""
    acroform = _resolve(_resolve(reader.trailer["/Root"]).get("/AcroForm"))  # type: ignore[attr-defined]
    if not isinstance(acroform, DictionaryObject):
        return
    roots = _resolve(acroform.get("/Fields"))
    if not isinstance(roots, ArrayObject):
        return
    stack: list[tuple[PdfObject, object, list[str]]] = [(r, None, []) for r in reversed(roots)]
    seen: set[int] = set()
    while stack and len(seen) < limits.MAX_PDF_FIELDS:
        ref, inherited_type, parents = stack.pop()
        node = _resolve(ref)
        if not isinstance(node, DictionaryObject) or id(node) in seen:
            continue
        seen.add(id(node))
        field_type = node.get("/FT", inherited_type)
        kids = _resolve(node.get("/Kids"))
        named = [k for k in kids if "/T" in _as_dict(k)] if isinstance(kids, ArrayObject) else []
        if named:
            names = [*parents, str(node.get("/T", ""))]
            stack.extend((kid, field_type, names) for kid in reversed(named))
        elif "/T" in node:
            yield node, field_type, parents


def _as_dict(obj: object) -> DictionaryObject:
    """A resolved dictionary, or an empty one."""
    resolved = _resolve(obj)
    return resolved if isinstance(resolved, DictionaryObject) else DictionaryObject()


def _field_value(node: DictionaryObject, field_type: object) -> str | None:
    """A field's value as text; None for fields that hold no answer (buttons, signatures)."""
    raw = _resolve(node.get("/V"))
    flags = int(_resolve(node.get("/Ff", 0)) or 0)  # type: ignore[call-overload]
    if field_type == "/Btn":
        if flags & _PUSHBUTTON:
            return None
        state = str(raw).lstrip("/") if isinstance(raw, NameObject | str) else ""
        if state in ("", "Off"):
            return "" if flags & _RADIO else "No"
        return "Yes" if state in ("On", "1", "True", "X", "Checked") else state
    if field_type == "/Sig":
        return None
    if isinstance(raw, ArrayObject):
        return ", ".join(str(_resolve(item)) for item in raw)
    if isinstance(raw, str):  # TextStringObject, ByteStringObject decoded
        return str(raw)
    return ""


def _field_match(
    node: DictionaryObject, parents: list[str], collector: FieldCollector
) -> LabelMatch | None:
    """The canonical meaning of a field from its tooltip or name (exact matches first)."""
    labels = [str(_resolve(node.get(key))) for key in ("/TU", "/T") if node.get(key) is not None]
    section = next((r for r in map(section_role, reversed(parents)) if r), None)
    labels_map = collector.labels
    for label in labels:
        if labels_map.is_exact(label):
            return labels_map.match(label, section)
    for label in labels:
        found = labels_map.match(label, section)
        if found is not None:
            return found
    return None


def _read_acroform(reader: PdfReader, collector: FieldCollector) -> bool:
    """Feed AcroForm fields into the collector; True when any field holds a value."""
    filled = False
    for node, field_type, parents in _walk_fields(reader):
        value = _field_value(node, field_type)
        if value is None:
            continue
        filled = filled or bool(value.strip())
        found = _field_match(node, parents, collector)
        if found is not None:
            collector.add_match(found, value)
    return filled


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
    for number, page in enumerate(reader.pages):
        if number >= limits.MAX_PDF_PAGES or total >= limits.MAX_TEXT_CHARS:
            break
        if time.monotonic() - started > limits.PDF_TEXT_SECONDS:
            log.info("pdf_text_budget_spent", pages_read=number)
            break
        text = _page_text(page)[: limits.MAX_TEXT_CHARS - total]
        total += len(text.strip())
        for line in text.splitlines():
            lines.feed(line)
    lines.finish()
    return total > 0

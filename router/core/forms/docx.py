"""Read a Word .docx referral form: tables of label | value cells and "Label: value" text.

The zip is checked before it is opened (total uncompressed size, member count and
compression ratio from the central directory), so a zip bomb is refused unread. The main
document part is found from the package relationships and parsed here (`document_body`), so
macro-enabled .docm files and Strict Open XML documents read like any .docx (no macro is
ever run). The body is walked in document order straight from the XML rather than through
python-docx's `Paragraph.text`, so text inside content controls (`w:sdt`), legacy form fields and
hyperlinks is included, runs are joined (a label split over several runs reads whole),
deleted revisions are left out, and tick boxes (content-control glyphs or legacy
`w:checkBox` fields) read as ☒ / ☐ for `clean_value`.

Tables are read row by row: a cell that is a recognised label takes the next cell as its
value (so 2-column and 4-column label | value | label | value layouts both work); a row of
labels over a row of values is read column-wise; any other cell is read as lines of text
("Name: Jane" inside one cell, section headings in merged rows). Paragraphs are read as
lines (`router.core.forms.text`). Sections carry over from paragraphs into tables.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import structlog
from docx.oxml import parse_xml

from router.core.forms import limits
from router.core.forms.collect import FieldCollector, ReadResult
from router.core.forms.fields import LabelMap, LabelMatch
from router.core.forms.text import LineReader, is_label, label_only

log = structlog.get_logger(__name__)

_W_URI = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_W = "{" + _W_URI + "}"
_STRICT_W = b"http://purl.oclc.org/ooxml/wordprocessingml/main"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# What an unfilled control or field reads as: a leader, which the line reader takes as a
# blank answer (so the next line never becomes this label's value).
UNFILLED = " ____ "
_CONTAINERS = {f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag"}


def check_zip(data: bytes) -> str | None:
    """A reason to refuse a DOCX zip before opening it, or None when it is safe to open."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        return f"corrupt DOCX: {type(exc).__name__}"
    if len(members) > limits.MAX_DOCX_MEMBERS:
        return "DOCX too large when decompressed"
    total = sum(member.file_size for member in members)
    if total > limits.MAX_DOCX_UNCOMPRESSED:
        return "DOCX too large when decompressed"
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > 1024 * 1024 and ratio > limits.MAX_DOCX_RATIO:
            return "DOCX too large when decompressed"
    return None


def read_docx(data: bytes, label_map: LabelMap) -> ReadResult:
    """Read a DOCX attachment; never raises.

    Returns:
        FORM, SUPPORTING, or UNREADABLE ("DOCX too large when decompressed",
        "corrupt DOCX: <exception class>").
    """
    if len(data) > limits.MAX_INPUT_BYTES:
        return ReadResult.unreadable("DOCX too large")
    refused = check_zip(data)
    if refused:
        return ReadResult.unreadable(refused)
    try:
        body = document_body(data)
        collector = FieldCollector(label_map)
        _DocxReader(collector).read(body)
    except RecursionError:
        return ReadResult.unreadable("corrupt DOCX: RecursionError")
    except Exception as exc:  # python-docx and lxml raise many types on broken packages
        log.info("docx_unreadable", error=type(exc).__name__)
        return ReadResult.unreadable(f"corrupt DOCX: {type(exc).__name__}")
    return ReadResult.from_collector(collector, "DOCX")


def document_body(data: bytes) -> Any:
    """The w:body of the main document part, whatever the package's flavour.

    The part is found through the package relationships and parsed here (python-docx
    refuses a macro-enabled .docm's content type and Strict Open XML's relationship types);
    Strict's namespace is read as the transitional one, which it mirrors. Nothing in a .docm
    is run: only its document XML is read.

    Raises:
        KeyError: no main document part; ValueError: no body.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        name = _main_part(archive)
        xml = archive.read(name)
    root = parse_xml(xml.replace(_STRICT_W, _W_URI.encode()))
    body = root.find(f"{_W}body")
    if body is None:
        raise ValueError("no w:body")
    return body


def _main_part(archive: zipfile.ZipFile) -> str:
    """The main document part's name from _rels/.rels ("word/document.xml" usually)."""
    try:
        rels = parse_xml(archive.read("_rels/.rels"))
    except KeyError:
        return "word/document.xml"
    for relation in rels:
        if str(relation.get("Type", "")).endswith("/officeDocument"):
            target = str(relation.get("Target", "")).lstrip("/")
            if target:
                return target
    return "word/document.xml"


def _children(element: Any, wanted: str) -> Iterator[Any]:
    """Children with tag `wanted`, looking through content controls and custom XML."""
    for child in element:
        if child.tag == wanted:
            yield child
        elif child.tag in _CONTAINERS:
            yield from _children(child, wanted)


def _blocks(element: Any) -> Iterator[Any]:
    """Paragraphs and tables of a body or cell, in document order."""
    for child in element:
        if child.tag in (f"{_W}p", f"{_W}tbl"):
            yield child
        elif child.tag in _CONTAINERS:
            yield from _blocks(child)


def paragraph_text(paragraph: Any) -> str:
    """The visible text of a paragraph: runs joined, tabs and breaks kept, boxes as glyphs.

    A content control still showing its prompt, or a legacy text field still holding its
    default (blanks or default text), reads as `UNFILLED`: a blank answer, never a value.
    """
    parts: list[str] = []
    fields = _LegacyFields(parts)
    stack = [paragraph]
    while stack:
        element = stack.pop()
        tag = element.tag
        if tag == f"{_W}t":
            parts.append(element.text or "")
        elif tag in (f"{_W}tab", f"{_W}ptab"):
            parts.append("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
        elif tag == f"{_W}checkBox":
            parts.append(_legacy_box(element))
        elif tag == f"{_W}fldChar":
            fields.mark(element)
        elif tag == f"{_W}sdt" and _showing_prompt(element):
            parts.append(UNFILLED)
            continue
        if tag in (f"{_W}del", f"{_W}instrText", _MC_FALLBACK):
            continue
        stack.extend(reversed(list(element)))
    return "".join(parts)


def _showing_prompt(control: Any) -> bool:
    """True for a content control that still shows its placeholder prompt."""
    properties = control.find(f"{_W}sdtPr")
    return properties is not None and properties.find(f"{_W}showingPlcHdr") is not None


class _LegacyFields:
    """Tracks legacy form fields (FORMTEXT) in a paragraph, blanking unfilled ones."""

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        self.open: list[tuple[str | None, int | None]] = []  # (default text, result start)

    def mark(self, char: Any) -> None:
        """Follow one w:fldChar: begin, separate (the result starts) or end."""
        kind = char.get(f"{_W}fldCharType")
        if kind == "begin":
            text_input = char.find(f"{_W}ffData/{_W}textInput")
            default = None
            if text_input is not None:
                found = text_input.find(f"{_W}default")
                default = "" if found is None else found.get(f"{_W}val", "")
            self.open.append((default, None))
        elif kind == "separate" and self.open:
            self.open[-1] = (self.open[-1][0], len(self.parts))
        elif kind == "end" and self.open:
            default, start = self.open.pop()
            if default is None or start is None:
                return
            result = "".join(self.parts[start:]).strip()
            if not result or result == default.strip():
                self.parts[start:] = [UNFILLED]


def _is_heading(paragraph: Any) -> bool:
    """True for a paragraph in a Word heading or title style."""
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    name = str(style.get(f"{_W}val", "")) if style is not None else ""
    return name.lower().startswith(("heading", "title"))


def _legacy_box(box: Any) -> str:
    """☒ or ☐ for a legacy form-field check box."""
    for name in ("checked", "default"):
        found = box.find(f"{_W}{name}")
        if found is not None:
            value = found.get(f"{_W}val", "1")
            return "☒ " if value in ("1", "true", "on") else "☐ "
    return "☐ "


class _DocxReader:
    """Walks one document body, feeding the collector."""

    def __init__(self, collector: FieldCollector) -> None:
        self.collector = collector
        self.lines = LineReader(collector)
        self.blocks = 0

    def read(self, body: Any) -> None:
        """Read every paragraph and table of the body."""
        self._read_blocks(body, depth=0)
        self.lines.finish()

    def _read_blocks(self, container: Any, depth: int) -> None:
        """Read paragraphs as lines and tables as rows (nested tables up to depth 3)."""
        for block in _blocks(container):
            self.blocks += 1
            if self.blocks > limits.MAX_DOCX_BLOCKS:
                return
            if block.tag == f"{_W}p":
                text = paragraph_text(block)
                if _is_heading(block) and not is_label(_flat(text), self.collector):
                    # A Word heading opens a section even when it names no side
                    # ("Further information"): the rows below are no longer the last side's.
                    self.lines.finish()
                    self.collector.heading(_flat(text), strong=True)
                    self.lines.feed("")
                    continue
                for line in text.splitlines():
                    self.lines.feed(line)
                self.lines.feed("")  # a paragraph end stops continuation lines
            elif depth < 3:
                self.lines.finish()
                self._read_table(block, depth)

    def _read_table(self, table: Any, depth: int) -> None:
        """Read a table: label rows over value rows column-wise, other rows cell by cell."""
        rows = []
        for row in _children(table, f"{_W}tr"):
            cells = list(_children(row, f"{_W}tc"))
            rows.append((cells, [self._cell_text(cell) for cell in cells]))
        index = 0
        while index < len(rows):
            cells, texts = rows[index]
            following = rows[index + 1][1] if index + 1 < len(rows) else None
            if following is not None and self._label_row(texts, following):
                for label, value in zip(texts, following, strict=True):
                    if label.strip():
                        self.collector.add(_flat(label), value)
                index += 2
                continue
            lone = self._lone_label(texts)
            answer = self._answer_row(following) if lone and following is not None else None
            if lone is not None and answer is not None:
                self.collector.add_match(lone, answer)
                index += 2
                continue
            self._read_row(texts)
            self.lines.headings = True
            for cell in cells:  # nested tables
                for nested in _children(cell, f"{_W}tbl"):
                    self._read_table(nested, depth + 1)
            index += 1

    def _cell_text(self, cell: Any) -> str:
        """The paragraphs of a cell (not its nested tables), one per line."""
        return "\n".join(paragraph_text(p) for p in _children(cell, f"{_W}p"))

    def _label_row(self, labels: list[str], values: list[str]) -> bool:
        """True for a row of labels above a same-width row with no labels; one label with
        blank cells beside it will do when the row below has text under it and only there.
        Labels the section gives to nobody ("Email" in the person's section) still count."""
        filled = [text for text in labels if text.strip()]
        if not filled or len(labels) < 2 or len(labels) != len(values):
            return False
        if len(filled) == 1:
            column = labels.index(filled[0])
            written = [index for index, text in enumerate(values) if text.strip()]
            if written != [column]:
                return False
        if not all(self._any_label(text, alone=True) for text in filled):
            return False
        return not any(self._any_label(text) for text in values if text.strip())

    def _any_label(self, text: str, alone: bool = False) -> bool:
        """True when text is a label (only a label, with `alone`) in this or any section."""
        flat = _flat(text)
        section = self.collector.section
        try:
            for self.collector.section in (section, None):
                if label_only(flat, self.collector):
                    return True
                if not alone and is_label(flat, self.collector):
                    return True
        finally:
            self.collector.section = section
        return False

    def _lone_label(self, texts: list[str]) -> LabelMatch | None:
        """The label of a one-cell row that is only a label ("DESCRIBE CONCERNS")."""
        if len(texts) != 1 or not texts[0].strip():
            return None
        return label_only(_flat(texts[0]), self.collector)

    def _answer_row(self, texts: list[str]) -> str | None:
        """The text of a one-cell row that is not a label: the answer box under it."""
        if len(texts) != 1 or not texts[0].strip() or is_label(_flat(texts[0]), self.collector):
            return None
        return texts[0]

    def _read_row(self, texts: list[str]) -> None:
        """Read one row: label cells take the next cell as value, other cells are text."""
        self.lines.headings = sum(1 for text in texts if text.strip()) <= 1
        index = 0
        while index < len(texts):
            flat = _flat(texts[index])
            match = label_only(flat, self.collector) if flat else None
            if match is None:
                for line in texts[index].splitlines():
                    self.lines.feed(line)
                self.lines.finish()
                self.lines.continuing = None
                index += 1
                continue
            value = ""
            if index + 1 < len(texts) and not is_label(_flat(texts[index + 1]), self.collector):
                value = texts[index + 1]
                index += 1
            self.collector.add_match(match, value)
            index += 1


def _flat(text: str) -> str:
    """A cell's text on one line."""
    return " ".join(text.split())

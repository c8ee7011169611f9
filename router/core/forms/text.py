"""Read label/value pairs from lines of text: PDF text layers, DOCX paragraphs, plain text.

A line is read, in this order, as:

- columns: parts separated by a tab or two or more spaces (a two-column table as the
  layout-preserving PDF extraction prints it, or "Name: Jane    DOB: 1/2/2003"); each part
  that is a recognised label takes the next part as its value;
- "Label: value" (or "Question? answer"), when the label is recognised;
- a recognised label on its own ("Name", "Date of birth:"), whose value is the next
  non-blank line unless that line is itself a label;
- a continuation of the address or concern value above it (until a blank line or a
  closing line such as "Thank you for completing this form");
- otherwise a possible section heading (`FieldCollector.heading`).

Only recognised labels ever produce fields, so prose with a colon in it does nothing.

Plain text attachments (`read_text`) are read the same way, so a form pasted into a .txt
file counts as a form; any other text is a supporting document.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterable

from router.core.forms.collect import FieldCollector, ReadResult
from router.core.forms.fields import LabelMap, LabelMatch
from router.core.forms.limits import MAX_TEXT_CHARS
from router.core.forms.sections import strip_number

# Fields whose values often run over several lines.
_MULTILINE = frozenset({"person_address", "concern"})
_COLUMNS = re.compile(r"\t+|\s{2,}")
# Leaders between a label and its answer, or standing for a blank answer: "........",
# "……", "_____", ". . . .", "------".
_LEADER = re.compile(r"[ \t]*(?:\.{3,}|…+|_{3,}|(?:\. ){2,}\.|-{4,})[ \t]*")
_TRAILING_LEADER = re.compile(r"(?:\.{3,}|…+|_{3,}|(?:\. ){2,}\.|-{4,})[ \t]*$")
# "Name   :   Bethany Cole": a colon set apart from its label by spaces.
_SPACED_COLON = re.compile(r"(?<=\S)[ \t]+:(?=[ \t]|$)")
_MAX_LABEL_CHARS = 160
# The closing lines of a form ("Thank you for completing this form", "Please email the
# completed form to..."): never a continuation of the answer above them.
_CLOSING = re.compile(
    r"^(?:thank you|thanks for|please (?:email|send|return|submit|save|sign)\b|"
    r"once (?:you have|completed)|end of (?:the )?form)",
    re.IGNORECASE,
)


def _split_pair(text: str, collector: FieldCollector) -> tuple[LabelMatch, str] | None:
    """("Label", "value") for "Label: value" or "Question? answer" with a known label."""
    for separator in (":", "?"):
        label, found, value = text.partition(separator)
        if found and label.strip() and len(label) <= _MAX_LABEL_CHARS:
            match = collector.match(label)
            if match is not None:
                return match, value.strip()
    return None


def label_only(text: str, collector: FieldCollector) -> LabelMatch | None:
    """The match of a line that is nothing but a recognised label."""
    if len(text) > _MAX_LABEL_CHARS:
        return None
    if text.endswith(".") and not collector.labels.is_exact(text):
        return None  # a sentence, not a label ("D.O.B." is fine)
    return collector.match(text.rstrip(":?* "))


def is_label(text: str, collector: FieldCollector) -> bool:
    """True when text is a label (alone or with its value), so it is not a value."""
    return label_only(text, collector) is not None or _split_pair(text, collector) is not None


class LineReader:
    """Feeds lines into a collector, remembering a label that waits for its value."""

    def __init__(self, collector: FieldCollector) -> None:
        self.collector = collector
        self.pending: LabelMatch | None = None
        self.continuing: str | None = None
        # False while reading a table row with other filled cells: its text is no heading.
        self.headings = True

    def feed_all(self, lines: Iterable[str]) -> None:
        """Read every line, then settle a label left waiting."""
        for line in lines:
            self.feed(line)
        self.finish()

    def finish(self) -> None:
        """Record a label that never got its value."""
        if self.pending is not None:
            self.collector.add_match(self.pending, "")
            self.pending = None

    def _record(self, match: LabelMatch, value: str) -> None:
        """Record a pair and remember whether following lines may continue it."""
        self.collector.add_match(match, value)
        last = self.collector.last_field
        self.continuing = last if last in _MULTILINE else None

    def feed(self, line: str) -> None:
        """Read one line."""
        text = _SPACED_COLON.sub(":", line.strip())
        blank = bool(_TRAILING_LEADER.search(text))  # "Address ........" has no answer
        text = _LEADER.sub("\t", text).strip()
        if not text:
            self.finish()  # a line of leaders or blanks answers nothing
            self.continuing = None
            return
        columns = [part for part in _COLUMNS.split(text) if part]
        if len(columns) > 1 and self._columns(columns):
            return
        text = " ".join(columns)
        pair = _split_pair(text, self.collector)
        match = pair[0] if pair is not None else label_only(text, self.collector)
        if match is None:
            if self._dropped_label(text):
                self.finish()  # "Email: ..." in the person's section: nobody's field
                self.continuing = None
                return
            self._other(text)
            return
        self.finish()
        value = pair[1] if pair is not None else ""
        if value or blank:
            self._record(match, value)
        else:
            self.pending = match

    def _dropped_label(self, text: str) -> bool:
        """True for a known label that the current section gives to nobody."""
        if self.collector.section is None:
            return False
        section, self.collector.section = self.collector.section, None
        try:
            return is_label(text, self.collector)
        finally:
            self.collector.section = section

    def _other(self, text: str) -> None:
        """A line that holds no label: a value, a continuation or a heading.

        The line under a label waiting for its value is that value ("Sam Referrer" under
        "Referrer name"), unless it is one of the rules' section wordings.
        """
        # "Label: value" is no heading, but "Section 2: Referrer details" is.
        heading = self.headings and not re.search(r":\s*\S", strip_number(text))
        sections = self.collector.sections
        if self.pending is not None and heading:
            heading = sections.is_known(text)
        if heading and sections.role(text) is not None:
            self.finish()  # a label left blank just above the next section
            self.continuing = None
            self.collector.heading(text)
            return
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._record(pending, text)
            return
        if self.continuing is not None and _CLOSING.match(text):
            self.continuing = None
        if self.continuing is not None:
            self.collector.extend(self.continuing, text)
            return
        if heading:
            self.collector.heading(text)

    def _columns(self, columns: list[str]) -> bool:
        """Read a line of columns; returns False when no column was a label."""
        found = False
        index = 0
        while index < len(columns):
            part = columns[index]
            following = columns[index + 1] if index + 1 < len(columns) else None
            pair = _split_pair(part, self.collector)
            match = pair[0] if pair else label_only(part, self.collector)
            if match is None:
                if index == 0 and self._dropped_label(part):
                    # "Email   amira@..." in the person's section: nobody's, and no
                    # continuation of the address above it.
                    self.finish()
                    self.continuing = None
                    return True
                index += 1
                continue
            if not found:
                self.finish()
            found = True
            value = pair[1] if pair else ""
            if following is not None and not re.search(r"[^\W_]", following):
                index += 1  # a stray ":" or "-" column between a label and nothing
                following = None
            if not value and following is not None and not is_label(following, self.collector):
                value = following
                index += 1
            self._record(match, value)
            index += 1
        return found


def read_lines(lines: Iterable[str], collector: FieldCollector) -> None:
    """Feed lines of text into a collector (see the module docstring)."""
    LineReader(collector).feed_all(lines)


def decode_text(data: bytes) -> str:
    """Decode a text attachment: BOM, then UTF-8, then Windows-1252 (never fails)."""
    data = data[: MAX_TEXT_CHARS * 2]
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")[:MAX_TEXT_CHARS]
    try:
        return data.decode("utf-8")[:MAX_TEXT_CHARS]
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")[:MAX_TEXT_CHARS]


def html_to_lines(text: str) -> str:
    """Rough text of an HTML document: cells become tab-separated, blocks become lines."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?i)</t[dh]\s*>", "\t", text)
    text = re.sub(r"(?i)<br\s*/?>|</(?:p|div|tr|li|h[1-6])\s*>", "\n", text)
    text = re.sub(r"<[^>]{0,2000}>", " ", text)
    return html.unescape(text).replace("\u00a0", " ")


def read_text(data: bytes, label_map: LabelMap) -> ReadResult:
    """Read a plain-text (or HTML) attachment as "Label: value" lines."""
    text = decode_text(data)
    if re.search(r"(?i)<(?:html|body|table|p|div)\b", text[:4096]):
        text = html_to_lines(text)
    collector = FieldCollector(label_map)
    read_lines(text.splitlines(), collector)
    return ReadResult.from_collector(collector, "text")

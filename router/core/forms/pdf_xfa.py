"""Read the answers of an XFA form (Adobe LiveCycle) from its datasets packet.

XFA forms, common in government PDFs, keep what was typed in an XML data packet
(`/AcroForm /XFA`, the "datasets" part) and may leave the AcroForm fields empty. Each
element under `xfa:data` that holds text is a field: its element name is the label
("DateOfBirth", "txtPostcode") and the names of the elements around it give its section
("ReferrerDetails/Name" is the referrer's name), as parent names do for AcroForm fields.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

import structlog
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pypdf import PdfReader
from pypdf.generic import ArrayObject, StreamObject

from router.core.forms import limits
from router.core.forms.collect import FieldCollector
from router.core.forms.pdf_fields import as_dict, resolve

log = structlog.get_logger(__name__)

_MAX_XFA_BYTES = 8 * 1024 * 1024
_MAX_ELEMENTS = 20_000


def datasets_xml(reader: PdfReader) -> bytes | None:
    """The XFA datasets packet of a PDF, or None when it has none."""
    acroform = as_dict(as_dict(reader.trailer.get("/Root")).get("/AcroForm"))
    xfa = resolve(acroform.get("/XFA"))
    if isinstance(xfa, ArrayObject):
        packets = reader.xfa or {}
        return packets.get("datasets")
    if isinstance(xfa, StreamObject):  # one stream holding the whole XDP document
        data = xfa.get_data()[:_MAX_XFA_BYTES]
        start = data.find(b"<xfa:datasets")
        end = data.find(b"</xfa:datasets>", start)
        if start >= 0 and end > start:
            return data[start : end + len(b"</xfa:datasets>")]
    return None


def read_xfa(reader: PdfReader, collector: FieldCollector) -> bool:
    """Feed the XFA data values into the collector; True when any value was found."""
    try:
        packet = datasets_xml(reader)
    except RecursionError:
        raise
    except Exception as exc:  # pypdf's decoding limits, broken streams: the fields stand
        log.info("xfa_unreadable", error=type(exc).__name__)
        return False
    if not packet or len(packet) > _MAX_XFA_BYTES:
        return False
    try:
        root = fromstring(packet)  # no entities, no external references, no DTD tricks
    except (ParseError, DefusedXmlException) as exc:
        log.info("xfa_unreadable", error=type(exc).__name__)
        return False
    data = next((e for e in root.iter() if _local(e.tag) == "data"), None)
    if data is None:
        return False
    found = False
    stack: list[tuple[Element, list[str]]] = [(child, []) for child in reversed(data)]
    seen = 0
    while stack and seen < min(_MAX_ELEMENTS, limits.MAX_PDF_FIELDS * 10):
        element, parents = stack.pop()
        seen += 1
        children = list(element)
        name = _local(element.tag)
        if children:
            stack.extend((child, [*parents, name]) for child in reversed(children))
            continue
        value = (element.text or "").strip()
        section = next((r for r in map(collector.sections.role, reversed(parents)) if r), None)
        match = collector.labels.match(name, section)
        if match is not None:
            collector.add_match(match, value)
            collector.saw_section(section)
            found = found or bool(value)
    return found


def _local(tag: object) -> str:
    """An element's name without its namespace."""
    text = str(tag)
    return text.rpartition("}")[2] if "}" in text else text

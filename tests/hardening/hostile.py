"""Build hostile inputs for tests: slow, looping, bombing and deeply nested PDFs and DOCX."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence

from tests.formfactory import docx_table

_HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def raw_pdf(objects: Sequence[bytes], *, root: int = 1, extra_trailer: bytes = b"") -> bytes:
    """A PDF with the given object bodies (numbered from 1) and a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, root, extra_trailer, xref)
    )
    return out.getvalue()


def _stream(content: bytes) -> bytes:
    packed = zlib.compress(content, 9)
    return b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed)


def page_pdf(content: bytes) -> bytes:
    """A one-page PDF whose page content stream is `content` (Flate-compressed)."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            _stream(content),
            _HELVETICA,
        ]
    )


def slow_pdf(operations: int = 400_000, per_page: int = 24_000) -> bytes:
    """A small PDF (tens of KB) that takes tens of seconds to extract text from: pages of
    `per_page` text operations each, every page light enough for the readers to search
    (under `limits.MAX_PAGE_CONTENT_BYTES`), all of them showing a form label."""
    return pages_pdf(
        [b"BT /F1 12 Tf 50 700 Td (Name: x) Tj ET\n" * per_page] * -(-operations // per_page)
    )


def pages_pdf(contents: Sequence[bytes]) -> bytes:
    """A PDF with one page per content stream (Flate-compressed), sharing one font."""
    count = len(contents)
    kids = b" ".join(b"%d 0 R" % (3 + 2 * n) for n in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
    ]
    font = 3 + 2 * count
    for number, content in enumerate(contents):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + 2 * number, font)
        )
        objects.append(_stream(content))
    return raw_pdf([*objects, _HELVETICA])


def flate_bomb_pdf(size: int = 100 * 1024 * 1024) -> bytes:
    """A PDF whose content stream inflates to `size` bytes of spaces (about size/1000 packed)."""
    packer = zlib.compressobj(9)
    chunk = b" " * (1024 * 1024)
    packed = b"".join(packer.compress(chunk) for _ in range(size // len(chunk))) + packer.flush()
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed)
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            stream,
        ]
    )


def page_tree_loop_pdf() -> bytes:
    """A page tree whose /Kids point back at the root /Pages node."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
        ]
    )


def field_loop_pdf() -> bytes:
    """An AcroForm whose field /Kids form a cycle, with a /Parent loop too."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] >> >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            b"<< /T (Name) /Kids [5 0 R] /Parent 5 0 R >>",
            b"<< /T (DOB) /Kids [4 0 R] /Parent 4 0 R /V (x) >>",
        ]
    )


def outline_loop_pdf() -> bytes:
    """Outlines (bookmarks) whose /Next chain loops."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Outlines 4 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            b"<< /Type /Outlines /First 5 0 R /Last 5 0 R >>",
            b"<< /Title (A) /Parent 4 0 R /Next 6 0 R >>",
            b"<< /Title (B) /Parent 4 0 R /Next 5 0 R /Prev 5 0 R >>",
        ]
    )


def xref_loop_pdf() -> bytes:
    """A trailer whose /Prev points back at its own xref section."""
    base = page_pdf(b"BT /F1 12 Tf 50 700 Td (Name: x) Tj ET\n")
    xref = int(base.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    return base.replace(b"/Root 1 0 R ", b"/Root 1 0 R /Prev %d " % xref)


def deep_array_pdf(depth: int = 100_000) -> bytes:
    """A page dictionary holding an array nested `depth` levels deep."""
    nested = b"[" * depth + b"]" * depth
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Junk " + nested + b" >>",
        ]
    )


def _replace_member(docx: bytes, name: str, data: bytes) -> bytes:
    """A copy of a DOCX zip with one member's bytes replaced."""
    source = zipfile.ZipFile(io.BytesIO(docx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item.filename, data if item.filename == name else source.read(item))
    return out.getvalue()


def _document_xml(body: bytes, doctype: bytes = b"") -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + doctype + b"<w:document"
        b' xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body>" + body + b"</w:body></w:document>"
    )


def _paragraph(text: bytes) -> bytes:
    return b"<w:p><w:r><w:t>" + text + b"</w:t></w:r></w:p>"


def billion_laughs_docx() -> bytes:
    """A DOCX whose document.xml defines exponentially expanding entities."""
    entities = b'<!ENTITY lol0 "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, b"&lol%d;" % (n - 1) * 10) for n in range(1, 10)
    )
    doctype = b"<!DOCTYPE w:document [" + entities + b"]>\n"
    xml = _document_xml(_paragraph(b"Name: &lol9;") + _paragraph(b"DOB: x"), doctype)
    return _replace_member(docx_table([("Name", "x")]), "word/document.xml", xml)


def external_entity_docx(path: str) -> bytes:
    """A DOCX whose document.xml pulls a local file in through an external entity."""
    doctype = b'<!DOCTYPE w:document [<!ENTITY secret SYSTEM "file://%s">]>\n' % path.encode()
    xml = _document_xml(_paragraph(b"Name: &secret;") + _paragraph(b"DOB: 01/02/2001"), doctype)
    return _replace_member(docx_table([("Name", "x")]), "word/document.xml", xml)


def deep_xml_docx(depth: int = 5_000) -> bytes:
    """A DOCX whose body nests content controls `depth` levels deep."""
    body = b"<w:sdt><w:sdtContent>" * depth + _paragraph(b"Name: x")
    body += b"</w:sdtContent></w:sdt>" * depth
    return _replace_member(docx_table([("Name", "x")]), "word/document.xml", _document_xml(body))


def lying_zip_docx() -> bytes:
    """A DOCX whose central directory under-declares document.xml's size (a hidden bomb)."""
    big = _document_xml(_paragraph(b"Name: x") * 200_000)
    data = bytearray(_replace_member(docx_table([("Name", "x")]), "word/document.xml", big))
    declared = len(big).to_bytes(4, "little")
    small = (1000).to_bytes(4, "little")
    # Uncompressed size sits in both the local header and the central directory entry.
    position = data.find(declared)
    while position != -1:
        data[position : position + 4] = small
        position = data.find(declared, position + 4)
    return bytes(data)


def truncated_zip_docx() -> bytes:
    """A DOCX cut in half: the central directory is gone."""
    data = docx_table([("Name", "Jane"), ("DOB", "01/02/2001")])
    return data[: len(data) // 2]

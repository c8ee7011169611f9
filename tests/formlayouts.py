"""Build forms laid out the way people and tools really make them, at test time.

Sectioned forms (the individual's and the referrer's Name/Email/Telephone), Word content
controls and legacy fields left unfilled, macro-enabled and Strict Open XML packages,
encrypted and XFA PDFs, and a PDF that is very slow to read. The basic builders are in
`tests.formfactory`.
"""

from __future__ import annotations

import io

import docx
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from router.models import AttachmentKind
from tests.formfactory import _docx_bytes, fillable_pdf, text_pdf

# A form as sections: (heading, [(label, value), ...]) in reading order.
Sections = list[tuple[str, list[tuple[str, str]]]]
SECTIONED_LAYOUTS = ("docx_table", "docx_bold_lines", "text_pdf", "fillable_pdf")


def sectioned_form(sections: Sections, layout: str) -> tuple[bytes, AttachmentKind]:
    """A form whose rows sit under section headings, in one of `SECTIONED_LAYOUTS`.

    docx_table: one table, each heading a merged row; docx_bold_lines: a bold heading line
    before each section's own table; text_pdf: "Label: value" lines under heading lines;
    fillable_pdf: printed headings and labels with one AcroForm field per row, the field's
    name and tooltip being the label (repeats numbered "Name_2", as Acrobat names them).
    """
    if layout == "text_pdf":
        lines = [line for heading, rows in sections for line in [heading, *_pairs(rows)]]
        return text_pdf(lines), AttachmentKind.PDF
    if layout == "fillable_pdf":
        return _sectioned_fillable(sections), AttachmentKind.PDF
    document = docx.Document()
    document.add_paragraph("Prevent referral form")
    if layout == "docx_table":
        rows = [(heading, None) for heading, _ in sections[:0]]
        for heading, pairs in sections:
            rows += [(heading, None), *pairs]
        table = document.add_table(rows=len(rows), cols=2)
        for index, (label, value) in enumerate(rows):
            if value is None:
                table.cell(index, 0).merge(table.cell(index, 1)).text = label
            else:
                table.cell(index, 0).text = label
                table.cell(index, 1).text = value
    else:
        for heading, pairs in sections:
            document.add_paragraph().add_run(heading).bold = True
            table = document.add_table(rows=len(pairs), cols=2)
            for index, (label, value) in enumerate(pairs):
                table.cell(index, 0).text = label
                table.cell(index, 1).text = value
    return _docx_bytes(document), AttachmentKind.DOCX


def _pairs(rows: list[tuple[str, str]]) -> list[str]:
    """ "Label: value" lines."""
    return [f"{label}: {value}" for label, value in rows]


def _sectioned_fillable(sections: Sections) -> bytes:
    """Printed headings and labels, with a text field beside each label."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    y = 800.0
    names: dict[str, int] = {}
    for heading, rows in sections:
        if y < 120:
            pdf.showPage()
            y = 800.0
        pdf.setFont("Helvetica-Bold", 12)
        pdf.drawString(50, y, heading)
        pdf.setFont("Helvetica", 10)
        y -= 30
        for label, value in rows:
            if y < 60:
                pdf.showPage()
                y = 800.0
            names[label] = names.get(label, 0) + 1
            name = label if names[label] == 1 else f"{label}_{names[label]}"
            pdf.drawString(50, y + 6, label)
            pdf.acroForm.textfield(
                name=name, value=value, tooltip=label, x=320, y=y, width=240, height=20
            )
            y -= 30
    pdf.save()
    return buffer.getvalue()


W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
WORD_PROMPT = "Click or tap here to enter text."
EN_SPACES = "\u2002" * 5  # what Word puts in an unfilled legacy text field


def word_control(value: str | None, control: str, default: str = "") -> str:
    """The run-level XML of a content control ("sdt") or legacy FORMTEXT field ("formtext").

    None leaves it unfilled: the sdt shows Word's prompt, the FORMTEXT its `default` text
    (Word's five blanks when there is none).
    """
    if control == "sdt":
        if value is None:
            return (
                "<w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent><w:r><w:rPr>"
                '<w:rStyle w:val="PlaceholderText"/></w:rPr>'
                f"<w:t>{WORD_PROMPT}</w:t></w:r></w:sdtContent></w:sdt>"
            )
        return (
            f"<w:sdt><w:sdtPr/><w:sdtContent><w:r><w:t>{value}</w:t></w:r></w:sdtContent></w:sdt>"
        )
    result = (default or EN_SPACES) if value is None else value
    text_input = f'<w:textInput><w:default w:val="{default}"/></w:textInput>' if default else ""
    return (
        '<w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:name w:val="Text1"/><w:enabled/>'
        f"{text_input or '<w:textInput/>'}</w:ffData></w:fldChar></w:r>"
        '<w:r><w:instrText xml:space="preserve"> FORMTEXT </w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        f'<w:r><w:t xml:space="preserve">{result}</w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
    )


def docx_controls(rows: list[tuple[str, str | None, str]], table: bool) -> bytes:
    """A DOCX of (label, value or None, control) rows: "Label: <control>" paragraphs, or a
    table of label | control cells (`table`)."""
    from docx.oxml import parse_xml

    document = docx.Document()
    body = document.element.body
    if table:
        grid = document.add_table(rows=len(rows), cols=2)
        for index, (label, value, control) in enumerate(rows):
            grid.cell(index, 0).text = label
            cell = grid.cell(index, 1)._tc
            cell.remove(cell.find(f"{{{docx.oxml.ns.nsmap['w']}}}p"))
            cell.append(parse_xml(f"<w:p {W_NS}>{word_control(value, control)}</w:p>"))
        return _docx_bytes(document)
    for label, value, control in rows:
        paragraph = f'<w:p {W_NS}><w:r><w:t xml:space="preserve">{label}: </w:t></w:r>'
        body.insert(len(body) - 1, parse_xml(paragraph + word_control(value, control) + "</w:p>"))
    return _docx_bytes(document)


def encrypted_form(fields: dict[str, str], algorithm: str, user_password: str = "") -> bytes:
    """A fillable PDF encrypted with pypdf (`algorithm` such as "AES-256" or "RC4-128").

    An empty `user_password` is Acrobat's "restrict editing": anyone can open it.
    """
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(fillable_pdf(fields))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def slow_pdf(operations: int = 400_000) -> bytes:
    """A small, valid PDF whose text layer takes pypdf tens of seconds to extract.

    Its pages' content streams (deflated to a few kilobytes) show a form label, then set the
    text matrix and show one glyph again and again, `operations` times in all, each page
    light enough for the readers to search: a real document, just a very slow one to read.
    """
    from tests.hardening.hostile import pages_pdf

    page = (
        b"BT /F1 12 Tf 50 700 Td (Name: x) Tj ET BT /F1 1 Tf "
        + b"1 0 0 1 10 10 Tm (a) Tj " * 30_000
        + b"ET"
    )
    return pages_pdf([page] * -(-operations // 30_000))


_TRANSITIONAL_W = b"http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_STRICT_W = b"http://purl.oclc.org/ooxml/wordprocessingml/main"
_TRANSITIONAL_RELS = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_STRICT_RELS = b"http://purl.oclc.org/ooxml/officeDocument/relationships"
_DOCX_MAIN = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_DOCM_MAIN = b"application/vnd.ms-word.document.macroEnabled.main+xml"


def docx_variant(data: bytes, variant: str) -> bytes:
    """A python-docx document re-saved as Word would save it macro-enabled ("docm": the
    macro-enabled content type and a vbaProject.bin part) or as Strict Open XML ("strict":
    the purl.oclc.org namespaces and relationship types)."""
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if variant == "docm" and info.filename == "[Content_Types].xml":
                content = content.replace(_DOCX_MAIN, _DOCM_MAIN)
            if variant == "strict" and info.filename.endswith((".xml", ".rels")):
                content = content.replace(_TRANSITIONAL_W, _STRICT_W)
                content = content.replace(_TRANSITIONAL_RELS, _STRICT_RELS)
            target.writestr(info.filename, content)
        if variant == "docm":
            target.writestr(
                "word/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600
            )
    return buffer.getvalue()


def xfa_pdf(data_xml: str, acroform_names: list[str]) -> bytes:
    """A LiveCycle-style PDF: empty AcroForm fields named `acroform_names`, and the typed
    answers only in the XFA datasets packet (`data_xml` goes inside `xfa:data`)."""
    from pypdf.generic import ArrayObject, DecodedStreamObject, NameObject, TextStringObject

    blank = fillable_pdf(dict.fromkeys(acroform_names, ""))
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(blank)))
    packets = {
        "preamble": '<xdp:xdp xmlns:xdp="http://ns.adobe.com/xdp/">',
        "template": '<template xmlns="http://www.xfa.org/schema/xfa-template/3.3/"/>',
        "datasets": '<xfa:datasets xmlns:xfa="http://www.xfa.org/schema/xfa-data/1.0/">'
        f"<xfa:data>{data_xml}</xfa:data></xfa:datasets>",
        "postamble": "</xdp:xdp>",
    }
    array = ArrayObject()
    for name, text in packets.items():
        stream = DecodedStreamObject()
        stream.set_data(text.encode())
        array += [TextStringObject(name), writer._add_object(stream)]
    acroform = writer._root_object["/AcroForm"]
    acroform[NameObject("/XFA")] = array  # type: ignore[index]
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()

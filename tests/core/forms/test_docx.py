"""Word .docx forms: label | value tables, paragraphs, split runs, content controls, bombs."""

from __future__ import annotations

import io
import zipfile

import docx
from docx.oxml import parse_xml

from router.core.forms.docx import check_zip
from router.core.forms.read import read_attachment
from router.models import AttachmentKind, FormReading, FormStatus
from tests.formfactory import (
    attachment,
    complete_referral,
    default_form_rules,
    docx_paragraphs,
    docx_table,
    labelled,
)

W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def read_docx(data: bytes) -> FormReading:
    """Read DOCX bytes with the default form rules."""
    return read_attachment(attachment(data, AttachmentKind.DOCX, "form.docx"), default_form_rules())


def save(document: object) -> bytes:
    """Serialise a python-docx document."""
    buffer = io.BytesIO()
    document.save(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def test_two_column_table() -> None:
    """A label | value table reads to the canonical fields."""
    reading = read_docx(docx_table(list(labelled(complete_referral()).items())))
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()


def test_four_column_table() -> None:
    """Label | value | label | value rows read both pairs."""
    reading = read_docx(docx_table(list(labelled(complete_referral()).items()), columns=4))
    assert reading.fields == complete_referral()


def test_paragraphs_with_split_runs() -> None:
    """ "Label: value" paragraphs read whole even when Word split them into many runs."""
    lines = [f"{label}: {value}" for label, value in labelled(complete_referral()).items()]
    reading = read_docx(docx_paragraphs(lines, split_runs=True))
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()


def test_label_cells_with_hints_and_multiline_values() -> None:
    """Label cells with hint lines match; a multi-line address becomes one value."""
    reading = read_docx(
        docx_table(
            [
                ("Name of person being referred\n(include any aliases)", "Jane Testperson"),
                ("Home address", "1 Example Road\nLondon\nSE13 6LH"),
                ("D.O.B.", "01/02/2001"),
            ]
        )
    )
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "person_address": "1 Example Road, London, SE13 6LH",
        "person_dob": "01/02/2001",
    }


def test_header_row_over_value_row() -> None:
    """A row of labels above a row of values is read column by column."""
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    for column, (label, value) in enumerate(
        [("Forename(s)", "Jane"), ("Surname", "Testperson"), ("DOB", "01/02/2001")]
    ):
        table.cell(0, column).text = label
        table.cell(1, column).text = value
    reading = read_docx(save(document))
    assert reading.fields == {"person_name": "Jane Testperson", "person_dob": "01/02/2001"}


def test_sections_in_merged_heading_rows() -> None:
    """A merged heading row ("Your details") makes the rows below it the referrer's."""
    document = docx.Document()
    rows = [
        ("Details of the person being referred", None),
        ("Name", "Jane Testperson"),
        ("Email", "person@example.net"),
        ("Your details", None),
        ("Name", "Sam Referrer"),
        ("Email", "sam.referrer@example.org"),
        ("Organisation", "Example Academy"),
    ]
    table = document.add_table(rows=len(rows), cols=2)
    for index, (label, value) in enumerate(rows):
        if value is None:
            table.cell(index, 0).merge(table.cell(index, 1)).text = label
        else:
            table.cell(index, 0).text = label
            table.cell(index, 1).text = value
    reading = read_docx(save(document))
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "referrer_name": "Sam Referrer",
        "referrer_email": "sam.referrer@example.org",
        "referrer_organisation": "Example Academy",
    }


def test_content_controls_and_tick_boxes() -> None:
    """Text inside content controls is read, and a ticked box gives its option."""
    document = docx.Document()
    document.element.body.insert(
        0,
        parse_xml(
            f"<w:sdt {W_NS}><w:sdtContent><w:p><w:r><w:t>Full name: </w:t></w:r>"
            "<w:sdt><w:sdtContent><w:r><w:t>Jane Testperson</w:t></w:r></w:sdtContent></w:sdt>"
            "</w:p></w:sdtContent></w:sdt>"
        ),
    )
    document.add_paragraph("Is the person aware of the referral? Yes ☒ No ☐")
    document.add_paragraph("DOB: 01/02/2001")
    reading = read_docx(save(document))
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "consent": "Yes",
        "person_dob": "01/02/2001",
    }


def test_deleted_revisions_are_ignored() -> None:
    """Text deleted under track changes is not part of a value."""
    document = docx.Document()
    document.element.body.insert(
        0,
        parse_xml(
            f"<w:p {W_NS}><w:r><w:t>Name: Jane</w:t></w:r>"
            "<w:del><w:r><w:delText> Wrong</w:delText></w:r></w:del>"
            "<w:r><w:t> Testperson</w:t></w:r></w:p>"
        ),
    )
    document.add_paragraph("DOB: 01/02/2001")
    assert read_docx(save(document)).fields["person_name"] == "Jane Testperson"


def test_letter_is_supporting() -> None:
    """A Word letter without referral fields is a supporting document."""
    reading = read_docx(
        docx_paragraphs(["Dear colleague,", "Chronology of events follows.", "Kind regards"])
    )
    assert reading.status == FormStatus.SUPPORTING
    assert reading.fields == {}


def test_corrupt_docx_is_unreadable() -> None:
    """Bytes that are not a zip, or a zip without a document, are unreadable."""
    not_zip = read_docx(b"PK\x03\x04 this is not really a zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    no_document = read_docx(buffer.getvalue())
    for reading in (not_zip, no_document):
        assert reading.status == FormStatus.UNREADABLE
        assert reading.reason.startswith("corrupt DOCX: ")


def test_truncated_docx_never_raises() -> None:
    """Every truncation of a real DOCX gives a reading, not an exception."""
    data = docx_table(list(labelled(complete_referral()).items()))
    for cut in range(0, len(data), max(1, len(data) // 30)):
        assert isinstance(read_docx(data[:cut]), FormReading)


def test_zip_bomb_is_refused() -> None:
    """A DOCX with a hugely compressed member is refused before it is opened."""
    source = io.BytesIO(docx_table([("Name", "Jane"), ("DOB", "x")]))
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bomb,
    ):
        for member in original.infolist():
            bomb.writestr(member, original.read(member))
        bomb.writestr("word/media/padding.bin", b"\0" * (4 * 1024 * 1024))
    reading = read_docx(buffer.getvalue())
    assert reading.status == FormStatus.UNREADABLE
    assert reading.reason == "DOCX too large when decompressed"
    assert check_zip(source.getvalue()) is None


def national_style_form() -> bytes:
    """A DOCX laid out like the national Prevent form: sectioned tables, answer boxes."""
    document = docx.Document()
    document.add_paragraph("PREVENT REFERRAL FORM")
    rows: list[tuple[str, str | None]] = [
        ("Individual's details", None),
        ("Surname:", "Testperson"),
        ("Forename(s):", "Jane"),
        ("Date of Birth (DD/MM/YYYY):", "01/02/2001"),
        ("Place of Birth:", "Example Town"),
        ("Known Address(es):", "1 Example Road\nLondon SE13 6LH"),
        ("Contact details", "person@example.net"),
        ("Contact Number(s):", "07700 900000"),
        ("Email Address(es):", "person@example.net"),
        ("DESCRIBE CONCERNS", None),
        ("Fictional concern written for automated tests only.", None),
        ("REFERRER'S DETAILS", None),
        ("Name:", "Sam Referrer"),
        ("Profession/Job Title:", "Teacher"),
        ("Organisation:", "Example Academy"),
        ("Email Address:", "sam.referrer@example.org"),
        ("Telephone Number:", "020 7946 0000"),
    ]
    table = document.add_table(rows=len(rows), cols=2)
    for index, (label, value) in enumerate(rows):
        if value is None:
            table.cell(index, 0).merge(table.cell(index, 1)).text = label
        else:
            table.cell(index, 0).text = label
            table.cell(index, 1).text = value
    return save(document)


def test_national_style_form() -> None:
    """Sections, composite names, answer boxes and the person's own contacts read right."""
    reading = read_docx(national_style_form())
    assert reading.status == FormStatus.FORM
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "person_dob": "01/02/2001",
        "person_address": "1 Example Road, London SE13 6LH",
        "concern": "Fictional concern written for automated tests only.",
        "referrer_name": "Sam Referrer",
        "referrer_organisation": "Example Academy",
        "referrer_email": "sam.referrer@example.org",
        "referrer_phone": "020 7946 0000",
    }


def test_one_label_over_its_answer_but_not_over_another_row() -> None:
    """A row with one label and blank cells takes the text under the label as its answer;
    a row below with text across its cells is another question, not the answer."""
    document = docx.Document()
    table = document.add_table(rows=5, cols=2)
    for row, (left, right) in enumerate(
        [
            ("Name", "Jane Testperson"),
            ("Describe your concerns", ""),
            ("Fictional concern written under its label.", ""),
            ("Consent", ""),
            ("Signature", "J. Signer"),
        ]
    ):
        table.cell(row, 0).text = left
        table.cell(row, 1).text = right
    reading = read_docx(save(document))
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "concern": "Fictional concern written under its label.",
    }

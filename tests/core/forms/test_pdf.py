"""PDF forms: AcroForm fields, text layers, tables, encryption, scans and hostile files."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from router.core.forms.read import read_attachment
from router.models import AttachmentKind, FormReading, FormStatus
from tests.conftest import REALWORLD
from tests.formfactory import (
    FORM_LABELS,
    attachment,
    complete_referral,
    default_form_rules,
    encrypted_pdf,
    fillable_pdf,
    image_only_pdf,
    labelled,
    restricted_pdf,
    table_pdf,
    text_pdf,
)

REALWORLD_PDF = REALWORLD / "pdf"  # ../shared/realworld beside the repository


def read_pdf(data: bytes) -> FormReading:
    """Read PDF bytes with the default form rules."""
    return read_attachment(attachment(data, AttachmentKind.PDF, "form.pdf"), default_form_rules())


def test_fillable_pdf_reads_every_field() -> None:
    """AcroForm fields with human labels read back to the canonical fields."""
    reading = read_pdf(fillable_pdf(labelled(complete_referral())))
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()
    assert reading.filename == "form.pdf"


def test_machine_field_names() -> None:
    """Machine names such as txtDOB, Referrer_Email and fldPostcode are recognised."""
    reading = read_pdf(
        fillable_pdf(
            {
                "txtDOB": "01/02/2001",
                "Referrer_Email": "sam.referrer@example.org",
                "fldPostcode": "SE13 6LH",
            }
        )
    )
    assert reading.status == FormStatus.FORM
    assert reading.fields == {
        "person_dob": "01/02/2001",
        "referrer_email": "sam.referrer@example.org",
        "person_postcode": "SE13 6LH",
    }


def test_tooltips_count_as_labels() -> None:
    """Generic field names are read through their tooltips."""
    reading = read_pdf(
        fillable_pdf(
            {"Text1": "Jane Testperson", "Text2": "01/02/2001", "Text3": "Sam Referrer"},
            tooltips={
                "Text1": "Name of person being referred",
                "Text2": "Date of birth",
                "Text3": "Your name",
            },
        )
    )
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "person_dob": "01/02/2001",
        "referrer_name": "Sam Referrer",
    }


def test_composite_name_fields() -> None:
    """Forename(s) and Surname fields join into person_name."""
    reading = read_pdf(fillable_pdf({"Forename(s)": "Jane", "Surname": "Testperson", "DOB": "x"}))
    assert reading.fields["person_name"] == "Jane Testperson"


def test_checkbox_consent() -> None:
    """A ticked consent box reads Yes, an unticked one No."""
    ticked = read_pdf(fillable_pdf({"Name": "Jane", "DOB": "x"}, checkboxes={"chkConsent": True}))
    unticked = read_pdf(
        fillable_pdf({"Name": "Jane", "DOB": "x"}, checkboxes={"chkConsent": False})
    )
    assert ticked.fields["consent"] == "Yes"
    assert unticked.fields["consent"] == "No"


def test_blank_fillable_form_is_a_form() -> None:
    """A fillable form sent without answers is still a form (it will be incomplete)."""
    reading = read_pdf(fillable_pdf(dict.fromkeys(labelled(complete_referral()), "")))
    assert reading.status == FormStatus.FORM
    assert reading.fields == {}


def test_placeholders_are_kept_as_found() -> None:
    """Placeholder answers are reported as found; completeness decides what they mean."""
    reading = read_pdf(fillable_pdf(labelled(complete_referral(concern="N/A"))))
    assert reading.fields["concern"] == "N/A"


def test_generic_fields_fall_back_to_text_layer() -> None:
    """A PDF whose fields mean nothing is read from its printed text instead."""
    lines = [f"{label}: {value}" for label, value in labelled(complete_referral()).items()]
    reading = read_pdf(text_pdf(lines))
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()


def test_text_layer_over_pages() -> None:
    """ "Label: value" lines spread over several pages are all read."""
    lines = [f"{label}: {value}" for label, value in labelled(complete_referral()).items()]
    reading = read_pdf(text_pdf(["PREVENT REFERRAL FORM", *lines], pages=3))
    assert reading.fields == complete_referral()


def test_two_column_table() -> None:
    """A table of labels and values drawn in two columns is read pair by pair."""
    reading = read_pdf(table_pdf(list(labelled(complete_referral()).items())))
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()


def test_label_line_then_value_line() -> None:
    """A label alone on its line takes the next line as its value."""
    reading = read_pdf(text_pdf(["Date of birth", "01/02/2001", "Postcode:", "SE13 6LH"]))
    assert reading.fields == {"person_dob": "01/02/2001", "person_postcode": "SE13 6LH"}


def test_referrer_section_in_text() -> None:
    """Under a "Referrer details" heading, Name/Email/Telephone are the referrer's."""
    reading = read_pdf(
        text_pdf(
            [
                "Details of the person being referred",
                "Name: Jane Testperson",
                "Address: 1 Example Road, London SE13 6LH",
                "Referrer details",
                "Name: Sam Referrer",
                "Address: 2 School Lane",
                "Email: sam.referrer@example.org",
                "Telephone: 020 7946 0000",
            ]
        )
    )
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "person_address": "1 Example Road, London SE13 6LH",
        "referrer_name": "Sam Referrer",
        "referrer_email": "sam.referrer@example.org",
        "referrer_phone": "020 7946 0000",
    }


def test_letter_is_supporting() -> None:
    """A letter with no referral fields (one "Name:" line at most) is supporting."""
    reading = read_pdf(
        text_pdf(
            [
                "Dear colleague,",
                "Please find the chronology of events attached to the referral.",
                "Name: Example Academy safeguarding team",
                "Consent was discussed with the family on several occasions.",
                "Kind regards",
            ]
        )
    )
    assert reading.status == FormStatus.SUPPORTING
    assert reading.fields == {}


def test_encrypted_pdf_is_unreadable() -> None:
    """A PDF that needs a password is unreadable, with no content in the reason."""
    reading = read_pdf(encrypted_pdf(labelled(complete_referral())))
    assert reading.status == FormStatus.UNREADABLE
    assert reading.reason == "encrypted PDF"
    assert reading.fields == {}


def test_owner_password_only_pdf_is_read() -> None:
    """A PDF restricted by an owner password only opens and is read."""
    reading = read_pdf(restricted_pdf(labelled(complete_referral())))
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()


def test_image_only_pdf_is_unreadable() -> None:
    """A scan without a text layer is unreadable."""
    reading = read_pdf(image_only_pdf())
    assert reading.status == FormStatus.UNREADABLE
    assert reading.reason == "image-only PDF (no text layer)"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.4\n",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>",
        b"%PDF-1.4\n" + bytes(range(256)) * 40,
    ],
)
def test_corrupt_pdf_is_unreadable(data: bytes) -> None:
    """Corrupt bytes give an unreadable reading naming only the error class."""
    reading = read_pdf(data)
    assert reading.status == FormStatus.UNREADABLE
    assert reading.reason.startswith(("corrupt PDF", "image-only PDF"))


def test_truncated_form_never_raises() -> None:
    """Every truncation of a real form gives a reading, not an exception."""
    data = fillable_pdf(labelled(complete_referral()))
    for cut in range(0, len(data), max(1, len(data) // 40)):
        assert isinstance(read_pdf(data[:cut]), FormReading)


def test_reason_has_no_personal_data() -> None:
    """Reasons never quote the form's content."""
    data = encrypted_pdf(labelled(complete_referral()))
    for reading in (read_pdf(data), read_pdf(data[: len(data) // 2])):
        assert all(value not in reading.reason for value in complete_referral().values())


@pytest.mark.skipif(not REALWORLD_PDF.is_dir(), reason="no ../shared/realworld/pdf folder")
@pytest.mark.parametrize(
    "path",
    sorted(REALWORLD_PDF.glob("*.pdf")) if REALWORLD_PDF.is_dir() else [],
    ids=lambda path: path.name,
)
def test_realworld_pdfs_are_bounded(path: Path) -> None:
    """Each hostile real-world PDF gives a reading quickly (CPU time of this thread, which a
    busy machine does not inflate), never an exception or hang."""
    data = path.read_bytes()
    started = time.thread_time()
    reading = read_pdf(data)
    assert isinstance(reading, FormReading)
    assert time.thread_time() - started < 5
    if reading.status == FormStatus.UNREADABLE:
        assert reading.reason


def test_form_labels_cover_every_canonical_field() -> None:
    """The factory's human labels cover the whole complete referral."""
    assert set(FORM_LABELS) == set(complete_referral())


def generic_form(printed_above: bool = False) -> bytes:
    """A fillable PDF with fields named Text1.. and the real labels printed beside them."""
    referral = labelled(complete_referral())
    names = {f"Text{number}": label for number, label in enumerate(referral, start=1)}
    return fillable_pdf(
        {name: referral[label] for name, label in names.items()},
        printed=names,
        printed_above=printed_above,
    )


def test_generic_fields_labelled_by_position() -> None:
    """Fields named Text1.. are read through the label printed to their left."""
    reading = read_pdf(generic_form())
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()


def test_generic_fields_labelled_above() -> None:
    """Fields named Text1.. are read through the label printed just above them."""
    reading = read_pdf(generic_form(printed_above=True))
    assert reading.fields == complete_referral()


def test_unplaceable_filled_fields_need_review() -> None:
    """Printed labels with answers in fields we cannot place are not read as a blank form."""
    referral = labelled(complete_referral())
    data = fillable_pdf({f"Text{n}": value for n, value in enumerate(referral.values())})
    labels_page = text_pdf([f"{label}:" for label in referral])
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.append(PdfReader(io.BytesIO(labels_page)))
    buffer = io.BytesIO()
    writer.write(buffer)
    reading = read_pdf(buffer.getvalue())
    assert reading.status == FormStatus.UNREADABLE
    assert reading.reason == "fillable PDF whose fields could not be matched to labels"


def test_yes_no_check_box_pairs() -> None:
    """A ticked "ConsentNo" box answers consent with No; unticked boxes say nothing."""
    reading = read_pdf(
        fillable_pdf(
            {"Name": "Jane", "DOB": "x"},
            checkboxes={"chkConsentYes": False, "chkConsentNo": True},
        )
    )
    assert reading.fields["consent"] == "No"


def test_address_lines_join() -> None:
    """Numbered address lines and a town field join into one person_address."""
    reading = read_pdf(
        fillable_pdf(
            {
                "Name": "Jane Testperson",
                "Address line 1": "1 Example Road",
                "Address line 2": "Hither Green",
                "Town": "London",
                "Postcode": "SE13 6LH",
            }
        )
    )
    assert reading.fields["person_address"] == "1 Example Road, Hither Green, London"

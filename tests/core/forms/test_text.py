"""Plain-text attachments and the line reader shared by PDF text layers and paragraphs."""

from __future__ import annotations

from router.core.forms.read import read_attachment
from router.models import AttachmentKind, FormReading, FormStatus
from tests.formfactory import attachment, complete_referral, default_form_rules, labelled


def read_text(text: str | bytes) -> FormReading:
    """Read a text attachment with the default form rules."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return read_attachment(attachment(data, AttachmentKind.TEXT, "form.txt"), default_form_rules())


def test_pasted_form_is_a_form() -> None:
    """A form pasted into a text file as "Label: value" lines is read as a form."""
    lines = [f"{label}: {value}" for label, value in labelled(complete_referral()).items()]
    reading = read_text("\n".join(lines))
    assert reading.status == FormStatus.FORM
    assert reading.fields == complete_referral()


def test_sections_and_multiline_values() -> None:
    """Sections decide whose Name/Email it is; addresses and concerns run over lines."""
    reading = read_text(
        "Referrer details\n"
        "Name: Sam Referrer\n"
        "Email: sam.referrer@example.org\n"
        "Telephone: 020 7946 0000\n"
        "\n"
        "Details of the person being referred\n"
        "Name: Jane Testperson\n"
        "Address:\n"
        "1 Example Road\n"
        "London\n"
        "SE13 6LH\n"
        "\n"
        "Concerns:\n"
        "First line of the concern.\n"
        "Second line of the concern.\n"
    )
    assert reading.fields == {
        "referrer_name": "Sam Referrer",
        "referrer_email": "sam.referrer@example.org",
        "referrer_phone": "020 7946 0000",
        "person_name": "Jane Testperson",
        "person_address": "1 Example Road, London, SE13 6LH",
        "concern": "First line of the concern. Second line of the concern.",
    }


def test_tabs_and_questions() -> None:
    """Tab-separated pairs and "Question? answer" lines are read."""
    reading = read_text(
        "Full name\tJane Testperson\nIs the person aware of the referral? No\nDOB\t\t01/02/2001"
    )
    assert reading.fields == {
        "person_name": "Jane Testperson",
        "consent": "No",
        "person_dob": "01/02/2001",
    }


def test_two_pairs_on_one_line() -> None:
    """Two "Label: value" pairs separated by a wide gap are both read."""
    reading = read_text("Name: Jane Testperson     DOB: 01/02/2001")
    assert reading.fields == {"person_name": "Jane Testperson", "person_dob": "01/02/2001"}


def test_plain_note_is_supporting() -> None:
    """Ordinary text (a chronology) is a supporting document."""
    reading = read_text("12/01: phone call with school.\n13/01: meeting: concerns discussed.\n")
    assert reading.status == FormStatus.SUPPORTING


def test_html_and_legacy_encodings() -> None:
    """HTML tables and Windows-1252 text are read too."""
    html = read_text(
        "<html><body><table><tr><td>Name</td><td>Jane Testperson</td></tr>"
        "<tr><td>DOB</td><td>01/02/2001</td></tr></table></body></html>"
    )
    legacy = read_text("Name: Zoë Testperson\nDOB: 01/02/2001\n".encode("cp1252"))
    assert html.fields == {"person_name": "Jane Testperson", "person_dob": "01/02/2001"}
    assert legacy.fields["person_name"] == "Zoë Testperson"


def test_binary_noise_never_raises() -> None:
    """Arbitrary bytes labelled as text give a reading."""
    assert isinstance(read_text(bytes(range(256)) * 100), FormReading)

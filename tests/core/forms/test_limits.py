"""Resource bounds: page caps and never raising on arbitrary bytes of any kind."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core.forms import limits
from router.core.forms.read import read_attachment
from router.models import AttachmentKind, FormReading, FormStatus
from tests.formfactory import attachment, default_form_rules, docx_table, fillable_pdf, text_pdf

FORM_BYTES = {
    AttachmentKind.PDF: fillable_pdf({"Name": "Jane Testperson", "DOB": "01/02/2001"}),
    AttachmentKind.DOCX: docx_table([("Name", "Jane Testperson"), ("DOB", "01/02/2001")]),
    AttachmentKind.TEXT: b"Name: Jane Testperson\nDOB: 01/02/2001\n",
}


def test_pages_after_the_cap_are_not_read() -> None:
    """Labels beyond the page cap are not read (the document is then supporting)."""
    filler = [f"Page {n}" for n in range(limits.MAX_PDF_PAGES)]
    data = text_pdf([*filler, "Name: Jane Testperson", "DOB: 01/02/2001"], pages=52)
    reading = read_attachment(attachment(data, AttachmentKind.PDF), default_form_rules())
    assert reading.status == FormStatus.SUPPORTING


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(FORM_BYTES)),
    position=st.floats(min_value=0, max_value=1),
    noise=st.binary(min_size=1, max_size=64),
)
def test_mangled_forms_never_raise(kind: AttachmentKind, position: float, noise: bytes) -> None:
    """A real form with bytes overwritten anywhere always gives a reading."""
    data = FORM_BYTES[kind]
    start = int(position * len(data))
    mangled = data[:start] + noise + data[start + len(noise) :]
    reading = read_attachment(attachment(mangled, kind), default_form_rules())
    assert isinstance(reading, FormReading)
    assert reading.status in set(FormStatus)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(list(AttachmentKind)), data=st.binary(max_size=512))
def test_random_bytes_never_raise(kind: AttachmentKind, data: bytes) -> None:
    """Random bytes of any kind always give a reading."""
    assert isinstance(read_attachment(attachment(data, kind), default_form_rules()), FormReading)

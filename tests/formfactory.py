"""Build referral form attachments (fillable PDF, text PDF, DOCX) and form rules for tests.

`complete_referral()` gives canonical field name -> value for a complete referral of a
Lewisham person; `labelled()` turns it into the human labels a real form would print, so
`fillable_pdf(labelled(complete_referral()))` reads back to `complete_referral()`.
"""

from __future__ import annotations

import io
from pathlib import Path

import docx
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from router.core.rules.model import FormRules
from router.models import Attachment, AttachmentKind

# The labels of SPEC section 5, as a rules helper writes them into rules/forms.yaml.
FORM_RULES_DATA: dict[str, object] = {
    "labels": {
        "person_name": ["Name", "Full name", "Name of person being referred"],
        "person_dob": ["Date of birth", "DOB", "D.O.B."],
        "person_gender": ["Gender", "Sex"],
        "person_address": ["Address", "Home address", "Current address"],
        "person_postcode": ["Postcode", "Post code"],
        "local_authority": ["Local authority", "Council", "Borough", "District"],
        "concern": [
            "Concern(s)",
            "Reason for referral",
            "Describe your concerns",
            "Details of concern",
        ],
        "referrer_name": ["Referrer name", "Your name", "Name of referrer"],
        "referrer_organisation": ["Organisation", "Agency", "Referrer organisation", "Employer"],
        "referrer_email": ["Referrer email", "Your email", "Email address"],
        "referrer_phone": ["Referrer telephone", "Phone", "Contact number"],
        "consent": ["Is the person aware of the referral", "Consent"],
    },
    "composite": {
        "person_name": [["Forename(s)", "Surname"], ["First name", "Last name"]],
    },
    "prefixes": ["txt", "fld", "chk", "opt", "cb", "tb", "ddl"],
    "required": [
        "person_name",
        "person_dob",
        "person_address",
        "concern",
        "referrer_name",
        "referrer_organisation",
        "referrer_contact",
    ],
    "placeholders": ["N/A", "none", "unknown", "-", "TBC", "?"],
}

# A human label per canonical field, as the national form might print it.
FORM_LABELS: dict[str, str] = {
    "person_name": "Name of person being referred",
    "person_dob": "Date of birth",
    "person_gender": "Gender",
    "person_address": "Home address",
    "person_postcode": "Postcode",
    "local_authority": "Local authority",
    "concern": "Describe your concerns",
    "referrer_name": "Referrer name",
    "referrer_organisation": "Referrer organisation",
    "referrer_email": "Referrer email",
    "referrer_phone": "Referrer telephone",
    "consent": "Is the person aware of the referral?",
}


def default_form_rules(**overrides: object) -> FormRules:
    """The SPEC section 5 form rules, with top-level keys replaced by `overrides`."""
    return FormRules.model_validate({**FORM_RULES_DATA, **overrides})


def complete_referral(**overrides: str | None) -> dict[str, str]:
    """Canonical field -> value of a complete, fake Lewisham referral; None removes a field."""
    fields = {
        "person_name": "Jane Testperson",
        "person_dob": "01/02/2001",
        "person_gender": "Female",
        "person_address": "1 Example Road, London",
        "person_postcode": "SE13 6LH",
        "local_authority": "Lewisham",
        "concern": "Fictional concern written for automated tests only.",
        "referrer_name": "Sam Referrer",
        "referrer_organisation": "Example Academy",
        "referrer_email": "sam.referrer@example.org",
        "referrer_phone": "020 7946 0000",
        "consent": "Yes",
    }
    for name, value in overrides.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def labelled(fields: dict[str, str]) -> dict[str, str]:
    """The same fields keyed by the human labels of `FORM_LABELS`."""
    return {FORM_LABELS.get(name, name): value for name, value in fields.items()}


def fillable_pdf(
    fields: dict[str, str],
    tooltips: dict[str, str] | None = None,
    checkboxes: dict[str, bool] | None = None,
    printed: dict[str, str] | None = None,
    printed_above: bool = False,
) -> bytes:
    """A PDF with one AcroForm text field per entry (name = key, value = value).

    Args:
        fields: field name -> value.
        tooltips: field name -> tooltip (`/TU`).
        checkboxes: check box name -> ticked.
        printed: field name -> label printed on the page next to the field (to its left,
            or just above it with `printed_above`).
    """
    tooltips = tooltips or {}
    printed = printed or {}
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    y = 760.0
    entries = [(name, value, False) for name, value in fields.items()]
    entries += [(name, ticked, True) for name, ticked in (checkboxes or {}).items()]
    for name, value, is_box in entries:
        if y < 80:
            pdf.showPage()
            y = 760.0
        if name in printed:
            if printed_above:
                pdf.drawString(320, y + 26, printed[name])
            else:
                pdf.drawString(50, y + 6, printed[name])
        if is_box:
            pdf.acroForm.checkbox(name=name, checked=bool(value), x=320, y=y, size=16)
        else:
            pdf.acroForm.textfield(
                name=name,
                value=str(value),
                tooltip=tooltips.get(name, ""),
                x=320,
                y=y,
                width=240,
                height=20,
                borderStyle="inset",
                forceBorder=True,
            )
        y -= 48 if printed_above else 36
    pdf.save()
    return buffer.getvalue()


def text_pdf(lines: list[str], pages: int = 1) -> bytes:
    """A PDF whose text layer holds `lines` (one drawString each), spread over `pages`."""
    per_page = max(1, -(-len(lines) // max(pages, 1)))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for start in range(0, max(len(lines), 1), per_page):
        y = 800.0
        for line in lines[start : start + per_page]:
            pdf.drawString(50, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def table_pdf(rows: list[tuple[str, str]]) -> bytes:
    """A PDF drawing a two-column table: labels at x=50, values at x=300."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    y = 800.0
    for label, value in rows:
        pdf.drawString(50, y, label)
        pdf.drawString(300, y, value)
        pdf.line(45, y - 5, 550, y - 5)
        y -= 22
    pdf.save()
    return buffer.getvalue()


def image_only_pdf() -> bytes:
    """A scanned-looking PDF: a page with a drawn image and shapes but no text."""
    from PIL import Image

    image = Image.new("RGB", (60, 80), (235, 235, 235))
    image_buffer = io.BytesIO()
    image.save(image_buffer, format="PNG")
    image_buffer.seek(0)
    from reportlab.lib.utils import ImageReader

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.drawImage(ImageReader(image_buffer), 50, 200, width=480, height=600)
    pdf.rect(60, 700, 200, 40)
    pdf.circle(300, 300, 50)
    pdf.save()
    return buffer.getvalue()


def encrypted_pdf(fields: dict[str, str]) -> bytes:
    """A fillable PDF encrypted with a user password (cannot be opened without it)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(fillable_pdf(fields))))
    writer.encrypt(user_password="user-secret", owner_password="owner-secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def restricted_pdf(fields: dict[str, str]) -> bytes:
    """A fillable PDF encrypted with an owner password only (opens without a password)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(fillable_pdf(fields))))
    writer.encrypt(user_password="", owner_password="owner-secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def docx_table(rows: list[tuple[str, str]], columns: int = 2) -> bytes:
    """A DOCX with one table of label | value cells (`columns` 4: two pairs per row)."""
    document = docx.Document()
    document.add_paragraph("Prevent referral form")
    pairs_per_row = max(1, columns // 2)
    row_count = -(-len(rows) // pairs_per_row)
    table = document.add_table(rows=row_count, cols=pairs_per_row * 2)
    for index, (label, value) in enumerate(rows):
        row, pair = divmod(index, pairs_per_row)
        table.cell(row, pair * 2).text = label
        table.cell(row, pair * 2 + 1).text = value
    return _docx_bytes(document)


def docx_paragraphs(lines: list[str], split_runs: bool = False) -> bytes:
    """A DOCX with one paragraph per line; `split_runs` cuts each line into 3-letter runs."""
    document = docx.Document()
    for line in lines:
        paragraph = document.add_paragraph()
        chunks = [line[i : i + 3] for i in range(0, len(line), 3)] if split_runs else [line]
        for number, chunk in enumerate(chunks):
            run = paragraph.add_run(chunk)
            run.bold = number % 2 == 0 and split_runs
    return _docx_bytes(document)


def _docx_bytes(document: object) -> bytes:
    """Serialise a python-docx document."""
    buffer = io.BytesIO()
    document.save(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def attachment(
    data: bytes,
    kind: AttachmentKind,
    filename: str | None = None,
    inline: bool = False,
    index: int = 0,
) -> Attachment:
    """An `Attachment` around form bytes, as the mail parser would hand it over."""
    declared = {
        AttachmentKind.PDF: "application/pdf",
        AttachmentKind.DOCX: (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        ),
        AttachmentKind.TEXT: "text/plain",
        AttachmentKind.IMAGE: "image/png",
    }.get(kind, "application/octet-stream")
    return Attachment(
        index=index,
        filename=filename,
        declared_type=declared,
        kind=kind,
        data=data,
        inline=inline,
    )


def write_rules_yaml(path: Path) -> None:
    """Write `FORM_RULES_DATA` as YAML (for the rules helper's rules/forms.yaml)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(FORM_RULES_DATA, handle)

"""`read_attachment` dispatch: unsupported kinds, images and inline images."""

from __future__ import annotations

import pytest

from router.core.forms.read import read_attachment
from router.models import AttachmentKind, FormStatus
from tests.formfactory import attachment, default_form_rules

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.mark.parametrize(
    ("kind", "data", "reason"),
    [
        (
            AttachmentKind.DOC,
            OLE2,
            "legacy Word .doc is not supported; please send PDF or .docx",
        ),
        (AttachmentKind.ODT, b"PK\x03\x04mimetypeapplication/vnd.oasis", "OpenDocument"),
        (AttachmentKind.IMAGE, PNG, "image attachment (cannot be read)"),
        (AttachmentKind.ZIP, b"PK\x03\x04", "zip archive"),
        (AttachmentKind.OTHER, b"\x7fELF", "unsupported attachment type"),
        (
            AttachmentKind.DOC,
            OLE2 + "EncryptedPackage".encode("utf-16-le"),
            "encrypted Office document",
        ),
    ],
)
def test_unsupported_kinds_are_unreadable(kind: AttachmentKind, data: bytes, reason: str) -> None:
    """.doc, .odt, images, zips and other binaries are unreadable with a clear reason."""
    reading = read_attachment(attachment(data, kind, "file", index=3), default_form_rules())
    assert reading.status == FormStatus.UNREADABLE
    assert reading.reason.startswith(reason)
    assert reading.attachment_index == 3
    assert reading.kind == kind


def test_inline_image_is_skipped() -> None:
    """An inline image (logo, signature) is not a candidate form."""
    reading = read_attachment(
        attachment(PNG, AttachmentKind.IMAGE, "logo.png", inline=True), default_form_rules()
    )
    assert reading.status == FormStatus.SKIPPED


def test_kind_decides_not_name() -> None:
    """Text named form.pdf is read as the text it is: the sniffed kind decides, not the name."""
    reading = read_attachment(
        attachment(b"Name: Jane\nDOB: 01/02/2001", AttachmentKind.TEXT, "form.pdf"),
        default_form_rules(),
    )
    assert reading.status == FormStatus.FORM
    assert reading.filename == "form.pdf"

"""Tests of attachment sniffing by content."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest

from router.core.mail.sniff import sniff
from router.models import AttachmentKind
from tests.mailfactory import LOGO_PNG


def _docx_bytes() -> bytes:
    """A real Word document made by python-docx."""
    document = docx.Document()
    document.add_paragraph("Name: Test")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    """A zip archive holding `members`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_real_docx_is_docx() -> None:
    """A python-docx document sniffs as DOCX."""
    assert sniff(_docx_bytes()) is AttachmentKind.DOCX


def test_docx_found_by_content_types_only() -> None:
    """A zip whose [Content_Types].xml names the Word main part is DOCX."""
    types = (
        b'<Types><Override ContentType="application/'
        b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    assert (
        sniff(_zip({"[Content_Types].xml": types, "word/doc2.xml": b"<x/>"})) is AttachmentKind.DOCX
    )


def test_odt() -> None:
    """A zip with an OpenDocument `mimetype` member is ODT."""
    data = _zip({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"})
    assert sniff(data) is AttachmentKind.ODT


def test_plain_zip() -> None:
    """A zip of other files is ZIP."""
    assert sniff(_zip({"a.txt": b"hello"})) is AttachmentKind.ZIP


def test_truncated_docx_is_zip_not_crash() -> None:
    """A damaged zip (a .docx cut short) is ZIP, without raising."""
    assert sniff(_docx_bytes()[:300]) is AttachmentKind.ZIP


def test_zip_bomb_member_is_read_bounded() -> None:
    """A huge compressed [Content_Types].xml is only read in part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b" " * 5_000_000)
    assert sniff(buffer.getvalue()) is AttachmentKind.ZIP


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n1 0 obj", AttachmentKind.PDF),
        (b"\r\n\r\n" + b"junk" * 100 + b"%PDF-1.4\n", AttachmentKind.PDF),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, AttachmentKind.DOC),
        (LOGO_PNG, AttachmentKind.IMAGE),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", AttachmentKind.IMAGE),
        (b"GIF89a\x01\x00", AttachmentKind.IMAGE),
        (b"II*\x00\x08\x00", AttachmentKind.IMAGE),
        (b"MM\x00*\x00\x00", AttachmentKind.IMAGE),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", AttachmentKind.IMAGE),
        (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 20, AttachmentKind.IMAGE),
        (b"BMW owners club: Name: Jo Bloggs", AttachmentKind.TEXT),
        ("Name: Zoë Ünal\nConcern: …".encode(), AttachmentKind.TEXT),
        ("caf\xe9 na\xefve".encode("cp1252"), AttachmentKind.TEXT),
        ("Name: Jo".encode("utf-16"), AttachmentKind.TEXT),
        (b"\x00\x01\x02\x03binary\x00", AttachmentKind.OTHER),
        (bytes(range(256)) * 4, AttachmentKind.OTHER),
        (b"", AttachmentKind.OTHER),
    ],
)
def test_magic_bytes(data: bytes, kind: AttachmentKind) -> None:
    """Each signature gives its kind."""
    assert sniff(data) is kind


def test_pdf_marker_beyond_first_kilobyte_is_not_pdf() -> None:
    """%PDF- after the first 1024 bytes does not make a PDF."""
    assert sniff(b"a" * 1100 + b"%PDF-1.4") is AttachmentKind.TEXT


def test_utf8_cut_at_window_is_text() -> None:
    """Long UTF-8 text whose sniff window splits a character is still TEXT."""
    assert sniff(b"a" * 4095 + "é".encode() * 10) is AttachmentKind.TEXT


@pytest.mark.parametrize(
    ("streams", "kind"),
    [
        ({"WordDocument": b"w" * 600, "1Table": b"t" * 100}, AttachmentKind.DOC),
        ({"Workbook": b"x" * 600}, AttachmentKind.XLS),
        ({"Book": b"x" * 600}, AttachmentKind.XLS),
        (
            {"__properties_version1.0": b"\0" * 32, "__substg1.0_0037001F": b"S\0"},
            AttachmentKind.MSG,
        ),
        ({"EncryptionInfo": b"i" * 80, "EncryptedPackage": b"p" * 900}, AttachmentKind.DOC),
    ],
)
def test_ole2_directory_tells_doc_xls_and_msg_apart(
    streams: dict[str, bytes], kind: AttachmentKind
) -> None:
    """Word, Excel and Outlook files share one container; their streams say which is which."""
    from tests.cfbwriter import compound_file

    assert sniff(compound_file(streams)) is kind  # type: ignore[arg-type]


def test_outlook_msg_is_not_a_word_document() -> None:
    """An Outlook item saved as a file (what "attach item" sends) sniffs as MSG."""
    from tests.cfbwriter import outlook_msg

    assert sniff(outlook_msg("Referral", "See attached.", [("a.txt", b"x")])) is AttachmentKind.MSG

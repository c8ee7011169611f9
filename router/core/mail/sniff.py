"""Decide what an attachment is from its first bytes, never from its name or declared type."""

from __future__ import annotations

import io
import logging
import zipfile
import zlib

import olefile

from router.models import AttachmentKind

_PDF_WINDOW = 1024  # readers accept "%PDF-" anywhere in the first kilobyte
_TEXT_WINDOW = 4096
_ZIP_MAX_ENTRIES = 5000  # a zip with more members is not an office document we read
_ZIP_MAX_MEMBER_READ = 64 * 1024
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_MAX_ENTRIES = 10_000
# olefile reports damaged containers through logging, which may quote names: keep it quiet.
logging.getLogger("olefile").setLevel(logging.CRITICAL)
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_WORD_CONTENT_TYPE = b"wordprocessingml.document.main"
_ODF_MIMETYPE_PREFIX = b"application/vnd.oasis.opendocument."
_PRINTABLE_BYTES = frozenset({0x09, 0x0A, 0x0C, 0x0D, *range(0x20, 0x7F), *range(0xA0, 0x100)})

# Everything zipfile can raise on a damaged or hostile archive.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    RuntimeError,  # encrypted member
    NotImplementedError,  # unsupported compression method
    zlib.error,
    KeyError,
    UnicodeDecodeError,
)


def sniff(data: bytes) -> AttachmentKind:
    """Classify attachment bytes by their content.

    Args:
        data: the decoded attachment payload, exactly as received.

    Returns:
        The kind of file. Zip containers are opened (bounded) to tell DOCX and ODT from
        other zips; a damaged zip is `ZIP`. Empty data is `OTHER`.
    """
    if not data:
        return AttachmentKind.OTHER
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _sniff_zip(data)
    if data.startswith(_OLE2_MAGIC):
        return _sniff_ole(data)
    if _is_image(data):
        return AttachmentKind.IMAGE
    if b"%PDF-" in data[:_PDF_WINDOW]:
        return AttachmentKind.PDF
    if _is_text(data[:_TEXT_WINDOW], truncated=len(data) > _TEXT_WINDOW):
        return AttachmentKind.TEXT
    return AttachmentKind.OTHER


def _is_image(data: bytes) -> bool:
    """True for PNG, JPEG, GIF, TIFF, BMP and WEBP signatures."""
    if data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")):
        return True
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return True
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return True
    # "BM" alone would catch text starting with "BM": check the DIB header size too.
    return (
        data.startswith(b"BM")
        and len(data) >= 18
        and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES
    )


def _sniff_zip(data: bytes) -> AttachmentKind:
    """Look inside a zip for the members that mark a Word or OpenDocument file."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > _ZIP_MAX_ENTRIES:
                return AttachmentKind.ZIP
            names = {info.filename: info for info in infos}
            if "mimetype" in names:
                mimetype = _read_member(archive, names["mimetype"]).strip()
                if mimetype.startswith(_ODF_MIMETYPE_PREFIX):
                    return AttachmentKind.ODT
            if "word/document.xml" in names:
                return AttachmentKind.DOCX
            if "[Content_Types].xml" in names:
                content_types = _read_member(archive, names["[Content_Types].xml"])
                if _WORD_CONTENT_TYPE in content_types:
                    return AttachmentKind.DOCX
    except _ZIP_ERRORS:
        return AttachmentKind.ZIP
    return AttachmentKind.ZIP


def _sniff_ole(data: bytes) -> AttachmentKind:
    """Tell an Outlook .msg, an Excel .xls and a Word .doc apart by their OLE2 directory.

    A Word document has a "WordDocument" stream, a workbook "Workbook" (or "Book", Excel
    5), a message "__properties_version1.0" beside "__substg1.0_*" streams. Anything else
    that is OLE2 (or whose directory cannot be read) stays DOC, so it is reported as a
    legacy Office file, as before.
    """
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            names = {
                path[0] for path in ole.listdir(streams=True, storages=True)[:_OLE_MAX_ENTRIES]
            }
    except Exception:  # olefile raises many types on damaged containers
        return AttachmentKind.DOC
    if "WordDocument" in names:
        return AttachmentKind.DOC
    if "__properties_version1.0" in names and any(n.startswith("__substg1.0_") for n in names):
        return AttachmentKind.MSG
    if names & {"Workbook", "Book"}:
        return AttachmentKind.XLS
    return AttachmentKind.DOC


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read at most a bounded prefix of one member, so a zip bomb costs nothing."""
    with archive.open(info) as member:
        return member.read(_ZIP_MAX_MEMBER_READ)


def _is_text(head: bytes, *, truncated: bool) -> bool:
    """True when the bytes read as text: UTF-8 (or UTF-16 with a BOM), or mostly printable."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            head.decode("utf-16")
        except UnicodeDecodeError:
            return truncated  # an odd byte count cut mid-character when truncated
        return True
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # The window may cut a multi-byte character in two: that is still UTF-8.
        if truncated and error.start >= len(head) - 3 and error.reason == "unexpected end of data":
            return True
    else:
        return True
    # C1 controls (0x80-0x9F) count against: random binary is then ~75% "printable".
    printable = sum(1 for byte in head if byte in _PRINTABLE_BYTES)
    return printable >= 0.95 * len(head)

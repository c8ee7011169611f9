"""Tests of parse_message: addresses, subject, ids and attachments."""

from __future__ import annotations

import base64

from router.core.mail.parse import parse_message
from router.models import AttachmentKind
from tests.mailfactory import LOGO_PNG, build_email, forwarded

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"


def _raw_with_part(part_headers: str, payload: bytes = PDF) -> bytes:
    """A multipart/mixed email whose one attachment has the given raw MIME headers."""
    encoded = base64.encodebytes(payload)
    return (
        b"From: Teacher <teacher@school.example>\r\nTo: prevent@lewisham.gov.uk\r\n"
        b"Subject: referral\r\nMessage-ID: <m1@school.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
        b"--b\r\n"
        + part_headers.encode()
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--b--\r\n"
    )


def test_headers_are_read() -> None:
    """Message-ID, From, Subject, recipients and threading headers come out clean."""
    raw = build_email(
        sender='"Morgan, A" <A.Morgan@School.Example>',
        to=("Prevent Team <Prevent@Lewisham.gov.uk>",),
        cc=("mash@lewisham.gov.uk", "prevent@lewisham.gov.uk"),
        subject="=?utf-8?q?R=C3=A9f=C3=A9rral?= for review",
        message_id="<abc.123@school.example>",
        headers={
            "Delivered-To": "inbox@router.example",
            "X-Original-To": "prevent@lewisham.gov.uk",
            "In-Reply-To": "<prev@x.example>",
            "References": "<a@x.example>\r\n <prev@x.example>",
        },
    )
    parsed = parse_message(raw, envelope_recipients=["<Inbox@Router.example>", "other@r.example"])
    assert parsed.message_id == "<abc.123@school.example>"
    assert parsed.from_address == "a.morgan@school.example"
    assert parsed.subject == "Référral for review"
    assert parsed.recipients == [
        "prevent@lewisham.gov.uk",
        "mash@lewisham.gov.uk",
        "inbox@router.example",
        "other@r.example",
    ]
    assert parsed.in_reply_to == ["<prev@x.example>"]
    assert parsed.references == ["<a@x.example>", "<prev@x.example>"]
    assert parsed.automatic.acknowledge and not parsed.automatic.ignore


def test_folded_subject_and_message_id() -> None:
    """Folded headers lose their CR/LF; the Message-ID loses its whitespace."""
    raw = build_email(
        subject="x",
        headers={"Subject": "Prevent\r\n referral\r\n\tform", "Message-ID": "\r\n <id@x.example> "},
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Prevent referral form"
    assert parsed.message_id == "<id@x.example>"


def test_attachment_bytes_exact_and_indexed() -> None:
    """Attachments keep their bytes exactly, their declared type, and depth-first indexes."""
    docx_like = bytes(range(256)) * 10
    raw = build_email(
        attachments=[
            ("form.pdf", PDF, "application/pdf"),
            ("notes.bin", docx_like, "application/octet-stream"),
        ]
    )
    parsed = parse_message(raw)
    assert [(a.index, a.filename, a.declared_type) for a in parsed.attachments] == [
        (0, "form.pdf", "application/pdf"),
        (1, "notes.bin", "application/octet-stream"),
    ]
    assert parsed.attachments[0].data == PDF
    assert parsed.attachments[1].data == docx_like
    assert parsed.attachments[0].kind is AttachmentKind.PDF


def test_body_is_not_an_attachment_but_named_text_is() -> None:
    """The text body is not an attachment; a text file with a filename is."""
    raw = build_email(attachments=[("chronology.txt", b"1 May: met", "text/plain")])
    parsed = parse_message(raw)
    assert [(a.filename, a.kind) for a in parsed.attachments] == [
        ("chronology.txt", AttachmentKind.TEXT)
    ]


def test_sniffed_by_content_not_name() -> None:
    """A PDF named .docx is a PDF; a .pdf that holds a PNG is an image."""
    raw = build_email(
        attachments=[
            ("referral.docx", PDF, "application/vnd.openxmlformats-officedocument"),
            ("referral.pdf", LOGO_PNG, "application/pdf"),
        ]
    )
    kinds = [a.kind for a in parse_message(raw).attachments]
    assert kinds == [AttachmentKind.PDF, AttachmentKind.IMAGE]


def test_rfc2047_filename() -> None:
    """An encoded-word filename (Outlook style) is decoded."""
    raw = _raw_with_part(
        'Content-Type: application/pdf; name="=?UTF-8?B?UsOpZsOpcnJhbC5wZGY=?="\r\n'
        'Content-Disposition: attachment; filename="=?UTF-8?Q?R=C3=A9f=C3=A9rral?=\r\n'
        ' =?UTF-8?Q?_form.pdf?="'
    )
    assert parse_message(raw).attachments[0].filename == "Référral form.pdf"


def test_rfc2231_filename_with_continuations() -> None:
    """An RFC 2231 filename with charset and continuations is decoded."""
    raw = _raw_with_part(
        "Content-Type: application/pdf\r\n"
        "Content-Disposition: attachment;\r\n"
        " filename*0*=utf-8''R%C3%A9f%C3%A9rral;\r\n"
        " filename*1*=%20form.pdf"
    )
    assert parse_message(raw).attachments[0].filename == "Référral form.pdf"


def test_raw_utf8_filename() -> None:
    """A raw UTF-8 filename (no encoding at all) is read as UTF-8."""
    raw = _raw_with_part('Content-Type: application/pdf; name="Zoë.pdf"')
    assert parse_message(raw).attachments[0].filename == "Zoë.pdf"


def test_content_type_name_without_disposition() -> None:
    """A part with only Content-Type name= and no disposition is an attachment."""
    raw = _raw_with_part('Content-Type: application/pdf; name="form.pdf"')
    attachment = parse_message(raw).attachments[0]
    assert (attachment.filename, attachment.data) == ("form.pdf", PDF)


def test_inline_logo_marked_inline() -> None:
    """A Content-ID image in multipart/related is inline; the real attachment is not."""
    raw = build_email(
        attachments=[("form.pdf", PDF, "application/pdf")],
        inline_images=[("logo.png", LOGO_PNG, "image/png")],
    )
    attachments = parse_message(raw).attachments
    assert [(a.filename, a.inline) for a in attachments] == [
        ("logo.png", True),
        ("form.pdf", False),
    ]


def test_inline_pdf_is_not_marked_inline() -> None:
    """Apple Mail sends PDFs as Content-Disposition inline: they are still candidate forms."""
    raw = _raw_with_part(
        'Content-Type: application/pdf\r\nContent-Disposition: inline; filename="f.pdf"'
    )
    assert parse_message(raw).attachments[0].inline is False


def test_forwarded_referral_attachments_are_found() -> None:
    """Attachments inside message/rfc822 parts, nested twice, are collected depth first."""
    inner = build_email(attachments=[("inner.pdf", PDF, "application/pdf")])
    middle = forwarded(inner, attachments=[("cover.pdf", PDF, "application/pdf")])
    outer = forwarded(middle, sender="manager@school.example")
    parsed = parse_message(outer)
    assert [a.filename for a in parsed.attachments] == ["cover.pdf", "inner.pdf"]
    assert [a.index for a in parsed.attachments] == [0, 1]
    assert parsed.from_address == "manager@school.example"


def test_deep_rfc822_nesting_is_bounded() -> None:
    """Forwards nested beyond the depth limit stop with a defect instead of recursing."""
    raw = build_email(attachments=[("deep.pdf", PDF, "application/pdf")])
    for _ in range(15):
        raw = forwarded(raw)
    parsed = parse_message(raw)
    assert parsed.attachments == []
    assert "MIME nesting too deep" in parsed.defects


def test_too_many_attachments() -> None:
    """Attachments beyond max_attachments are dropped and flagged."""
    raw = build_email(attachments=[(f"{i}.pdf", PDF, "application/pdf") for i in range(5)])
    parsed = parse_message(raw, max_attachments=3)
    assert [a.filename for a in parsed.attachments] == ["0.pdf", "1.pdf", "2.pdf"]
    assert parsed.too_many_attachments


def test_single_part_pdf_message() -> None:
    """A message whose whole body is a PDF has that PDF as its one attachment."""
    raw = (
        b"From: a@school.example\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(PDF)
    )
    assert [a.data for a in parse_message(raw).attachments] == [PDF]


def test_x_uuencode_attachment() -> None:
    """An x-uuencode part is decoded."""
    import binascii

    encoded = b"begin 644 form.pdf\n" + binascii.b2a_uu(PDF) + b"`\nend\n"
    raw = _raw_with_part('Content-Type: application/pdf; name="form.pdf"', b"")
    raw = raw.replace(
        b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: x-uuencode"
    )
    raw = raw.replace(b"\r\n\r\n--b--", b"\r\n\r\n" + encoded + b"--b--")
    assert parse_message(raw).attachments[0].data == PDF


def test_base64_garbage_does_not_crash() -> None:
    """Broken base64 yields some bytes and a defect, never an exception."""
    raw = _raw_with_part('Content-Type: application/pdf; name="f.pdf"', b"")
    raw = raw.replace(b"\r\n\r\n--b--", b"\r\n\r\n%%%not base64!!!===\r\n--b--")
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 1
    assert parsed.defects


def test_garbage_headers() -> None:
    """Unparseable addresses and undeclared 8-bit headers never raise."""
    raw = (
        b"From: <<<@@>>>\r\nTo: ,,, undisclosed-recipients:;\r\nCc: \xff\xfe@\r\n"
        b"Subject: =?bogus-charset?B?!!!?= \xe9t\xe9\r\nMessage-ID: no brackets here\r\n\r\nhi"
    )
    parsed = parse_message(raw)
    assert parsed.from_address is None
    assert parsed.recipients == []
    assert "\r" not in parsed.subject and "\n" not in parsed.subject
    assert parsed.message_id == "nobracketshere"
    assert "unparseable From" in parsed.defects


def test_deeply_nested_multipart_does_not_crash() -> None:
    """Thousands of nested multiparts keep the headers and report a defect."""
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(3000)
    )
    parsed = parse_message(b"From: a@school.example\r\nSubject: deep\r\n" + nested + b"\r\nhi\r\n")
    assert parsed.from_address == "a@school.example"
    assert parsed.defects


def test_base64_encoded_rfc822_part_is_decoded() -> None:
    """A message/rfc822 part sent base64-encoded (not allowed, but seen) is still walked."""
    inner = build_email(attachments=[("inner.pdf", PDF, "application/pdf")])
    raw = _raw_with_part("Content-Type: message/rfc822", inner)
    assert [a.data for a in parse_message(raw).attachments] == [PDF]


def test_eml_file_attachment_is_walked() -> None:
    """An .eml sent as application/octet-stream is opened like a forwarded message."""
    inner = build_email(attachments=[("inner.pdf", PDF, "application/pdf")])
    raw = build_email(attachments=[("Fwd referral.eml", inner, "application/octet-stream")])
    assert [a.filename for a in parse_message(raw).attachments] == ["inner.pdf"]


def test_eml_name_on_non_email_stays_an_attachment() -> None:
    """A file named .eml that is not an email stays an ordinary attachment."""
    raw = build_email(attachments=[("notes.eml", b"just some notes\nno headers", "text/plain")])
    assert [a.filename for a in parse_message(raw).attachments] == ["notes.eml"]


def test_report_does_not_collect_the_returned_original() -> None:
    """The returned original inside a multipart/report is not taken as new attachments."""
    original = build_email(attachments=[("form.pdf", PDF, "application/pdf")])
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: referrals@localhost\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--r\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n--r--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.attachments == []
    assert parsed.automatic.kind == "bounce"


def test_outlook_msg_is_opened_like_an_attached_message() -> None:
    """A .msg attachment's body and attachments (and those of a .msg inside it) are examined."""
    from tests.cfbwriter import embedded_msg, outlook_msg

    inner = embedded_msg("Fwd", "inner body", [("inner-form.docx", b"PK\x03\x04 inner")])
    msg = outlook_msg("Referral", "Name: Amira Khan", [("form.pdf", PDF), ("Fwd: referral", inner)])
    parsed = parse_message(
        build_email(attachments=[("referral.msg", msg, "application/vnd.ms-outlook")])
    )
    found = [(a.filename, a.kind, a.data) for a in parsed.attachments]
    assert ("form.pdf", AttachmentKind.PDF, PDF) in found
    assert ("inner-form.docx", AttachmentKind.ZIP, b"PK\x03\x04 inner") in found
    body = [a for a in parsed.attachments if a.kind is AttachmentKind.TEXT]
    assert [a.data.decode().strip() for a in body] == ["Name: Amira Khan", "inner body"]
    assert not [a for a in parsed.attachments if a.kind in (AttachmentKind.DOC, AttachmentKind.MSG)]


def test_damaged_msg_stays_one_unreadable_attachment() -> None:
    """A .msg cut short is kept as one MSG attachment (read later as unreadable), no crash."""
    from tests.cfbwriter import outlook_msg

    msg = outlook_msg("Referral", "body", [("form.pdf", PDF * 200)])
    parsed = parse_message(build_email(attachments=[("referral.msg", msg[:1600], "x/y")]))
    assert [a.kind for a in parsed.attachments] in ([AttachmentKind.MSG], [AttachmentKind.DOC])

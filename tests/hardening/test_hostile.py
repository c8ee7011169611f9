"""Hostile attachments and MIME: caps hold; each failure is needs_review with a reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import aiosmtplib
import pytest

from router.core.analysis import Analysis, analyse
from router.core.routing import RoutingEngine
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.hardening import hostile
from tests.hardening.conftest import ROUTER_FROM
from tests.mailfactory import build_email

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LEWISHAM_TEAM = "prevent@lewisham.gov.uk"
SECONDS = 5.0  # far above what any of these takes; below the daemon's 20 s worker limit

HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "page tree loop": (hostile.page_tree_loop_pdf, PDF),
    "form field loop": (hostile.field_loop_pdf, PDF),
    "outline loop": (hostile.outline_loop_pdf, PDF),
    "xref loop": (hostile.xref_loop_pdf, PDF),
    "deeply nested array": (hostile.deep_array_pdf, PDF),
    "flate bomb": (hostile.flate_bomb_pdf, PDF),
    "billion laughs": (hostile.billion_laughs_docx, DOCX),
    "deeply nested XML": (hostile.deep_xml_docx, DOCX),
    "zip sizes that lie": (hostile.lying_zip_docx, DOCX),
    "zip cut in half": (hostile.truncated_zip_docx, DOCX),
}


def _analyse(engine: RoutingEngine, raw: bytes) -> Analysis:
    """Analyse in this process (no worker), checking the CPU time it took: this thread's, so
    that a machine busy with other work does not make a quick read look slow."""
    started = time.thread_time()
    result = analyse(raw, engine, router_from=ROUTER_FROM, envelope_recipients=(LEWISHAM_TEAM,))
    assert time.thread_time() - started < SECONDS
    return result


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_attachment_needs_review(engine: RoutingEngine, name: str) -> None:
    """A looping, bombing or broken attachment ends needs_review with a reason, quickly."""
    make, mime = HOSTILE[name]
    raw = build_email(attachments=[(f"referral.{mime.rpartition('.')[2][-4:]}", make(), mime)])
    [decision] = _analyse(engine, raw).decisions
    assert decision.outcome == "needs_review"
    assert decision.reason
    assert decision.to == [LEWISHAM_TEAM]
    assert decision.ack_to == "teacher@school.example"


def test_external_entities_are_not_read(engine: RoutingEngine, tmp_path: Path) -> None:
    """A DOCX cannot pull a local file into its fields (no XXE)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("XXE-SECRET-5d1c")
    raw = build_email(attachments=[("form.docx", hostile.external_entity_docx(str(secret)), DOCX)])
    analysis = _analyse(engine, raw)
    for reading in analysis.readings:
        assert "XXE-SECRET" not in " ".join(reading.fields.values())


def _nested_multipart(depth: int) -> bytes:
    head = b"From: teacher@school.example\r\nTo: prevent@lewisham.gov.uk\r\nSubject: x\r\n"
    body = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(depth)
    )
    return head + body + b"Content-Type: text/plain\r\n\r\nhello\r\n"


def _nested_messages(depth: int) -> bytes:
    inner = build_email(attachments=[("a.pdf", b"%PDF-1.4\n%%EOF\n", PDF)])
    for _ in range(depth):
        inner = (
            b"From: teacher@school.example\r\nTo: prevent@lewisham.gov.uk\r\n"
            b"Content-Type: message/rfc822\r\n\r\n" + inner
        )
    return inner


def _many_parts(count: int) -> bytes:
    head = (
        b"From: teacher@school.example\r\nTo: prevent@lewisham.gov.uk\r\n"
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n'
    )
    part = b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    return head + part * count + b"--x--\r\n"


HOSTILE_MIME: dict[str, Callable[[], bytes]] = {
    "multipart nested 5000 deep": lambda: _nested_multipart(5000),
    "message/rfc822 nested 200 deep": lambda: _nested_messages(200),
    "20000 MIME parts": lambda: _many_parts(20000),
    "a 2 MB Subject": lambda: b"Subject: " + b"x" * 2_000_000 + b"\r\n" + build_email(),
    "100000 header lines": lambda: b"X-Junk: y\r\n" * 100_000 + build_email(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MIME))
def test_hostile_mime_gets_a_decision(engine: RoutingEngine, name: str) -> None:
    """Deep, wide or bloated MIME gets its decision quickly, never an exception."""
    decisions = _analyse(engine, HOSTILE_MIME[name]()).decisions
    assert decisions
    assert all(d.reason for d in decisions)


def test_attachments_beyond_the_cap_go_to_a_person(engine: RoutingEngine) -> None:
    """With more attachments than the cap, the form is still routed and a person is asked
    to check the attachments that were not read (a second form may be among them)."""
    form = fillable_pdf(labelled(complete_referral()))
    extra = [(f"photo{n}.txt", b"evidence %d" % n, "text/plain") for n in range(25)]
    raw = build_email(attachments=[("referral.pdf", form, PDF), *extra])
    decisions = _analyse(engine, raw).decisions
    assert [d.outcome for d in decisions] == ["forward", "needs_review"]
    assert "only the first 20 were read" in decisions[1].reason
    assert decisions[1].to == [LEWISHAM_TEAM]


async def test_listener_refuses_mail_over_the_size_cap(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """The embedded SMTP inbox answers 552 to a message over max_message_bytes, storing nothing."""
    daemon = await daemon_factory(max_message_bytes=64 * 1024)
    raw = build_email(attachments=[("big.pdf", b"%PDF-1.4\n" + b"0" * 200_000, PDF)])
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await submit(daemon, raw)
    assert refused.value.code == 552
    assert daemon.journal.query("SELECT id FROM messages") == []


async def test_listener_takes_lines_longer_than_rfc_5321(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """A 50 000-character line (some clients send HTML that way) is stored, not bounced."""
    daemon = await daemon_factory()
    raw = build_email(body="x") + b"<p>" + b"y" * 50_000 + b"</p>\r\n"
    assert "Stored as" in await submit(daemon, raw)


async def test_oversize_inbox_message_needs_review(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """A message too large to download is still decided: needs_review, saying why."""
    daemon = await daemon_factory()
    await daemon.journal.accept_oversize(
        source_key="imap:1:1",
        size=90_000_000,
        message_id_header="<big@school.example>",
        sender="teacher@school.example",
    )
    await daemon.run_once()
    [row] = daemon.journal.query("SELECT outcome, record FROM decisions")
    assert row["outcome"] == "needs_review"
    assert "too large" in row["record"]

"""parse_message and sniff over real-world and fuzzed input: never raise, always quick."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core.mail.parse import ParsedMessage, parse_message
from router.core.mail.sniff import sniff
from router.models import AttachmentKind
from tests.mailfactory import LOGO_PNG, build_email, dsn, forwarded

REALWORLD = Path(__file__).resolve().parents[4] / "shared" / "realworld"
REAL_FILES = sorted(
    path for folder in ("mail", "pdf-mail") for path in (REALWORLD / folder).glob("*.eml")
)
# No example database: the runs stay independent of earlier ones and write nothing to the tree.
FUZZ = settings(database=None, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
SEEDS: list[bytes] = [
    build_email(
        attachments=[("form.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")],
        inline_images=[("logo.png", LOGO_PNG, "image/png")],
    ),
    forwarded(build_email(attachments=[("a.txt", b"Name: x", "text/plain")])),
    dsn("<f@router.example>"),
    *(path.read_bytes() for path in REAL_FILES[:12]),
]


def _check(parsed: ParsedMessage) -> None:
    """The result is well-formed and its text serialises (no lone surrogates)."""
    parsed.model_dump_json(exclude={"attachments": {"__all__": {"data"}}}).encode()
    assert [a.index for a in parsed.attachments] == list(range(len(parsed.attachments)))


@pytest.mark.skipif(not REAL_FILES, reason="no ../shared/realworld mail folder")
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda path: path.name)
def test_realworld_mail_parses_quickly(path: Path) -> None:
    """Every real-world email parses without raising, within a second of CPU time (this
    thread's: a machine busy with other work does not count)."""
    data = path.read_bytes()
    started = time.thread_time()
    parsed = parse_message(data)
    assert time.thread_time() - started < 1.0
    _check(parsed)


@pytest.mark.skipif(not REAL_FILES, reason="no ../shared/realworld mail folder")
def test_realworld_pdf_mail_attachments_found() -> None:
    """Each pdf-mail sample carries one attachment, found by the parser."""
    for path in (p for p in REAL_FILES if p.parent.name == "pdf-mail"):
        assert len(parse_message(path.read_bytes()).attachments) == 1, path.name


@pytest.mark.skipif(not REAL_FILES, reason="no ../shared/realworld mail folder")
def test_realworld_bounces_are_ignored_with_ids() -> None:
    """The real multipart/report samples are ignored bounces that name the original."""
    for path in (p for p in REAL_FILES if "multipart_report" in p.name):
        verdict = parse_message(path.read_bytes()).automatic
        assert verdict.ignore and verdict.kind == "bounce", path.name
        assert verdict.reported_message_ids, path.name


@settings(FUZZ, max_examples=200)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    """Any bytes at all give a ParsedMessage."""
    _check(parse_message(data))
    assert isinstance(sniff(data), AttachmentKind)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A seed email with a few bytes replaced, inserted or cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["replace", "insert", "cut"]))
        chunk = draw(
            st.one_of(
                st.binary(min_size=1, max_size=16),
                st.sampled_from([b"\r\n", b"--", b"=?", b"?=", b";", b'"', b"\x00", b"\xff"]),
            )
        )
        if action == "replace":
            data[position : position + len(chunk)] = chunk
        elif action == "insert":
            data[position:position] = chunk
        else:
            del data[position : position + len(chunk)]
    return bytes(data)


@pytest.mark.slow
@settings(FUZZ, max_examples=200)
@given(_mutated())
def test_mutated_emails_never_raise(data: bytes) -> None:
    """Real and generated emails with random damage give a ParsedMessage."""
    _check(parse_message(data))


@settings(FUZZ, max_examples=100)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "From",
                "To",
                "Cc",
                "Subject",
                "Message-ID",
                "References",
                "Auto-Submitted",
                "Content-Type",
                "Content-Disposition",
                "Return-Path",
                "Precedence",
            ]
        ),
        st.text(max_size=80),
        max_size=5,
    )
)
def test_hostile_header_values_never_raise(values: dict[str, str]) -> None:
    """Any text in the headers that matter gives a ParsedMessage."""
    clean = {name: value.replace("\r", " ").replace("\n", " ") for name, value in values.items()}
    _check(parse_message(build_email(headers=clean)))

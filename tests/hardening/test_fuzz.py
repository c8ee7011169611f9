"""Fuzzing the whole analysis: damaged forms, damaged MIME and arbitrary bytes always give
well-formed decisions within a time bound, and never an exception."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core.analysis import Analysis, analyse
from router.core.routing import RoutingEngine
from router.models import Outcome
from tests.formfactory import (
    complete_referral,
    docx_paragraphs,
    docx_table,
    fillable_pdf,
    labelled,
    text_pdf,
)
from tests.hardening.conftest import REVIEW, ROUTER_FROM
from tests.mailfactory import build_email, forwarded

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECONDS = 5.0
_LINES = [f"{label}: {value}" for label, value in labelled(complete_referral()).items()]
_ROWS = list(labelled(complete_referral()).items())
SEED_FORMS: dict[str, tuple[bytes, str]] = {
    "fillable.pdf": (fillable_pdf(labelled(complete_referral())), "application/pdf"),
    "text.pdf": (text_pdf(_LINES), "application/pdf"),
    "table.docx": (docx_table(_ROWS), "application/octet-stream"),
    "lines.docx": (docx_paragraphs(_LINES, split_runs=True), "application/octet-stream"),
    "form.txt": ("\n".join(_LINES).encode(), "text/plain"),
}
TOKENS = [
    # PDF structure
    b" 0 R",
    b" obj",
    b"endobj",
    b"<<",
    b">>",
    b"[",
    b"]",
    b"(",
    b"\\",
    b"stream\n",
    b"endstream",
    b"xref",
    b"trailer",
    b"startxref\n0",
    b"/Kids [1 0 R]",
    b"/Parent 2 0 R",
    b"/Length 999999999",
    b"/Filter /FlateDecode",
    b"/Encrypt 1 0 R",
    b"%%EOF",
    # zip structure
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"PK\x05\x06",
    b"\xff\xff\xff\xff",
    # XML and MIME
    b"<w:p>",
    b"</w:tbl>",
    b"<!DOCTYPE",
    b"\r\n--",
    b"\r\n\r\n",
    b"=?",
    b"\x00",
]
CHUNK = st.one_of(st.binary(min_size=1, max_size=24), st.sampled_from(TOKENS))


@st.composite
def damaged(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with a few bytes replaced, inserted, cut or a slice repeated."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["replace", "insert", "cut", "repeat"]))
        chunk = draw(CHUNK)
        if action == "replace":
            data[position : position + len(chunk)] = chunk
        elif action == "insert":
            data[position:position] = chunk
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 4096))]
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 512))] * 4
    return bytes(data)


@st.composite
def damaged_form(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """A damaged copy of one of the seed forms: (file name, bytes, declared type)."""
    name = draw(st.sampled_from(sorted(SEED_FORMS)))
    data, mime = SEED_FORMS[name]
    return name, draw(damaged(data)), mime


def _analyse(engine: RoutingEngine, raw: bytes) -> Analysis:
    """Analyse in this process, checking the CPU time (this thread's: a busy machine does not
    count) and the shape of every decision."""
    started = time.thread_time()
    analysis = analyse(
        raw, engine, router_from=ROUTER_FROM, envelope_recipients=("prevent@lewisham.gov.uk",)
    )
    assert time.thread_time() - started < SECONDS
    assert analysis.decisions
    for decision in analysis.decisions:
        json.dumps(decision.model_dump(mode="json"), ensure_ascii=False).encode()
        if decision.outcome is Outcome.IGNORED:
            assert decision.to == [] and decision.ack_to is None
            continue
        assert decision.to and decision.reason
        if decision.outcome is Outcome.NEEDS_REVIEW:
            assert decision.to in (["prevent@lewisham.gov.uk"], [REVIEW])
    return analysis


@pytest.mark.slow
@settings(FUZZ, max_examples=250)
@given(form=damaged_form())
def test_damaged_forms_are_decided(engine: RoutingEngine, form: tuple[str, bytes, str]) -> None:
    """A form damaged anywhere (structure tokens, cuts, repeats) is decided, quickly."""
    analysis = _analyse(engine, build_email(attachments=[form]))
    assert len(analysis.readings) == 1


@FUZZ
@given(data=st.binary(max_size=4096), mime=st.sampled_from(["application/pdf", "text/plain"]))
def test_arbitrary_attachment_bytes_are_decided(
    engine: RoutingEngine, data: bytes, mime: str
) -> None:
    """Any bytes at all, attached under any declared type, are decided."""
    _analyse(engine, build_email(attachments=[("referral.pdf", data, mime)]))


@FUZZ
@given(data=st.binary(max_size=4096))
def test_arbitrary_email_bytes_are_decided(engine: RoutingEngine, data: bytes) -> None:
    """Any bytes at all, as a whole email, are decided."""
    _analyse(engine, data)


SEED_EMAILS = [
    build_email(attachments=[("referral.pdf", *SEED_FORMS["fillable.pdf"])]),
    forwarded(build_email(attachments=[("referral.docx", *SEED_FORMS["table.docx"])])),
]


@FUZZ
@given(index=st.integers(0, len(SEED_EMAILS) - 1), data=st.data())
def test_damaged_emails_with_forms_are_decided(
    engine: RoutingEngine, index: int, data: st.DataObject
) -> None:
    """An email carrying a form, damaged anywhere in its MIME, is decided."""
    _analyse(engine, data.draw(damaged(SEED_EMAILS[index])))

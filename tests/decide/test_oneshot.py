"""One-shot reading in a directly forked child (`route`): same answers, same limits as the
daemon's worker, nothing left running."""

from __future__ import annotations

import os
import time

import pytest

from router.core.analysis import analyse
from router.core.routing import RoutingEngine
from router.core.rules.model import Rules
from router.decide.oneshot import analyse_forked
from router.decide.worker import AnalysisFailed
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.hardening.hostile import flate_bomb_pdf, slow_pdf
from tests.mailfactory import build_email

ROUTER_FROM = "referrals@router.example"
REFERRAL = build_email(
    attachments=[("referral.pdf", fillable_pdf(labelled(complete_referral())), "application/pdf")]
)


@pytest.fixture(scope="module")
def engine(bundled_rules: Rules) -> RoutingEngine:
    """A routing engine on the bundled rules."""
    return RoutingEngine(bundled_rules, review_address="review@router.example")


def _children() -> set[int]:
    """Process ids of this process's live children."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.add(int(entry))
    return found


def test_forked_reading_decides_as_in_process(engine: RoutingEngine) -> None:
    """The child's decisions and readings are the in-process ones; attachment bytes stay home."""
    before = _children()
    forked = analyse_forked(
        REFERRAL, engine, timeout=30, router_from=ROUTER_FROM, max_attachments=20
    )
    here = analyse(REFERRAL, engine, router_from=ROUTER_FROM, max_attachments=20)
    assert forked.decisions == here.decisions
    assert forked.decisions[0].outcome == "forward"
    assert forked.readings == here.readings
    assert [a.data for a in forked.message.attachments] == [b""]
    assert _children() == before


def test_overrun_is_cut_off_at_the_limit(engine: RoutingEngine) -> None:
    """A PDF that takes tens of seconds is killed at the time limit with the daemon's words."""
    raw = build_email(attachments=[("form.pdf", slow_pdf(), "application/pdf")])
    before = _children()
    started = time.monotonic()
    with pytest.raises(AnalysisFailed, match="longer than 1 s"):
        analyse_forked(raw, engine, timeout=1, router_from=ROUTER_FROM, max_attachments=20)
    assert time.monotonic() - started < 10
    assert _children() == before


def test_memory_bound_holds_a_decompression_bomb(engine: RoutingEngine) -> None:
    """Under a tight address-space limit a PDF bomb ends as a review reading or a failure."""
    raw = build_email(attachments=[("referral.pdf", flate_bomb_pdf(), "application/pdf")])
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = size * 1024 + 48 * 1024 * 1024  # what the process has mapped, and 48 MiB more
    try:
        analysis = analyse_forked(
            raw, engine, timeout=30, router_from=ROUTER_FROM, max_attachments=20, memory_bytes=limit
        )
    except AnalysisFailed as failed:
        assert "memory" in str(failed) or "died" in str(failed)
    else:
        assert [d.outcome for d in analysis.decisions] == ["needs_review"]

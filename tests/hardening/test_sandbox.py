"""The analysis sandbox: overruns and dead workers become AnalysisFailed, never a stall."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

from router.routing import RoutingEngine
from router.sandbox import AnalysisFailed, AnalysisSandbox
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.hardening.conftest import ROUTER_FROM
from tests.hardening.hostile import flate_bomb_pdf, slow_pdf
from tests.mailfactory import build_email

REFERRAL = build_email(
    attachments=[("referral.pdf", fillable_pdf(labelled(complete_referral())), "application/pdf")]
)


async def _analyse(sandbox: AnalysisSandbox, engine: RoutingEngine, raw: bytes):  # type: ignore[no-untyped-def]
    return await sandbox.analyse(
        raw,
        engine,
        router_from=ROUTER_FROM,
        envelope_recipients=("prevent@lewisham.gov.uk",),
        max_attachments=20,
    )


async def _until_no_worker(sandbox: AnalysisSandbox, seconds: float = 10.0) -> None:
    """Wait until the sandbox sees no live worker (a killed process takes a moment to go)."""
    deadline = time.monotonic() + seconds
    while sandbox.worker_pids():
        assert time.monotonic() < deadline, "the killed worker is still alive"
        await asyncio.sleep(0.02)


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    """A sandbox with a generous time limit, closed after the test."""
    box = AnalysisSandbox(timeout=30)
    yield box
    box.close()


async def test_tiny_time_limit_fails_then_next_message_works(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """An analysis that overruns its limit is AnalysisFailed; the next one gets a new worker."""
    assert (await _analyse(sandbox, engine, REFERRAL)).decisions[0].outcome == "forward"
    [first_worker] = sandbox.worker_pids()
    sandbox.timeout = 0.001
    with pytest.raises(AnalysisFailed, match=r"longer than 0\.001 s"):
        await _analyse(sandbox, engine, REFERRAL)
    sandbox.timeout = 30
    analysis = await _analyse(sandbox, engine, REFERRAL)
    assert analysis.decisions[0].outcome == "forward"
    assert sandbox.worker_pids() and first_worker not in sandbox.worker_pids()


async def test_slow_pdf_is_cut_off_at_the_limit(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """A small PDF that takes tens of seconds to read is stopped at the limit, not awaited."""
    await _analyse(sandbox, engine, REFERRAL)  # start the worker outside the measured time
    sandbox.timeout = 1.5
    hostile = build_email(attachments=[("referral.pdf", slow_pdf(), "application/pdf")])
    started = time.monotonic()
    with pytest.raises(AnalysisFailed):
        await _analyse(sandbox, engine, hostile)
    assert time.monotonic() - started < 5
    sandbox.timeout = 30
    assert (await _analyse(sandbox, engine, REFERRAL)).decisions[0].outcome == "forward"


async def test_worker_killed_while_idle_is_replaced(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """A worker that died between messages (OOM killer, an admin) does not fail the next one."""
    await _analyse(sandbox, engine, REFERRAL)
    [worker] = sandbox.worker_pids()
    os.kill(worker, signal.SIGKILL)
    await _until_no_worker(sandbox)
    analysis = await _analyse(sandbox, engine, REFERRAL)
    assert analysis.decisions[0].outcome == "forward"
    assert worker not in sandbox.worker_pids()


async def test_memory_bound_holds_a_decompression_bomb(engine) -> None:  # type: ignore[no-untyped-def]
    """Under a tight address-space limit a PDF bomb ends as a review reading or a failure."""
    box = AnalysisSandbox(timeout=30, memory_bytes=64 * 1024 * 1024)
    bomb = build_email(attachments=[("referral.pdf", flate_bomb_pdf(), "application/pdf")])
    try:
        analysis = await _analyse(box, engine, bomb)
    except AnalysisFailed as failed:
        assert "memory" in str(failed) or "died" in str(failed)
    else:
        assert [d.outcome for d in analysis.decisions] == ["needs_review"]
        assert analysis.decisions[0].reason
    finally:
        box.close()


async def test_daemon_decides_a_timed_out_message_and_carries_on(
    daemon_factory, smtp_capture
) -> None:  # type: ignore[no-untyped-def]
    """A message whose analysis overruns ends needs_review with the reason, goes to the
    inbox area's team and is acknowledged; the next message is forwarded as usual."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url, parse_timeout_seconds=0.001)
    await submit(daemon, REFERRAL)
    await daemon.run_once()
    [row] = daemon.journal.query("SELECT outcome, record FROM decisions")
    record = json.loads(row["record"])
    assert row["outcome"] == "needs_review"
    assert "took longer than 0.001 s" in record["reason"]
    assert record["area"] == "lewisham" and record["to"] == ["prevent@lewisham.gov.uk"]
    assert record["ack_to"] == "teacher@school.example"
    captured = await relay.wait_for_async(2, timeout=10)
    assert {c.rcpt_tos for c in captured} == {
        ("prevent@lewisham.gov.uk",),
        ("teacher@school.example",),
    }
    review = next(c for c in captured if "prevent@lewisham.gov.uk" in c.rcpt_tos)
    attached = [p.get_filename() for p in review.message.iter_attachments()]
    assert "original.eml" in attached  # the person reviewing gets the whole message

    daemon.sandbox.timeout = 30
    await submit(daemon, REFERRAL.replace(b"Please find attached.", b"Another referral."))
    await daemon.run_once()
    outcomes = [r["outcome"] for r in daemon.journal.query("SELECT outcome FROM decisions")]
    assert sorted(outcomes) == ["forward", "needs_review"]
    states = [r["state"] for r in daemon.journal.query("SELECT state FROM messages")]
    assert states == ["done", "done"]

"""The deciding and delivering loops of a running daemon: overlap, a bound, a runaway message."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from router.decide.bounds import WORKER_MEMORY_BYTES, WorkerUnavailable
from router.decide.decider import MAX_INTERRUPTED_ATTEMPTS
from router.journal.records import JournalUnavailable
from router.send import sender as delivering
from router.service.daemon import Daemon
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.hardening.hostile import slow_pdf
from tests.mailfactory import build_email
from tests.servers.smtp import CaptureServer

MET = "preventreferrals@met.pnn.police.uk"
PDF = fillable_pdf(labelled(complete_referral()))


def _referral(number: int, pdf: bytes = PDF) -> bytes:
    return build_email(
        attachments=[("referral.pdf", pdf, "application/pdf")],
        message_id=f"<stage-{number}@school.example>",
    )


@contextlib.asynccontextmanager
async def _running(daemon: Daemon) -> AsyncIterator[None]:
    """The daemon's loops running as in `serve`, stopped at the end."""
    task = asyncio.create_task(daemon.run())
    try:
        yield
    finally:
        daemon.stop_event.set()
        await asyncio.wait_for(task, 10)


async def test_burst_is_decided_and_delivered_with_overlap(daemon_factory, smtp_capture) -> None:  # type: ignore[no-untyped-def]
    """Twelve referrals are all forwarded and acknowledged once, and the first forwards went
    out before the last referral was decided (delivery does not wait for deciding)."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    async with _running(daemon):
        for number in range(12):
            await submit(daemon, _referral(number))
        captured = await relay.wait_for_async(24, timeout=60)
    assert sum(MET in c.rcpt_tos for c in captured) == 12
    [times] = daemon.journal.query(
        "SELECT (SELECT MIN(sent_at) FROM outbox) AS first_sent,"
        " (SELECT MAX(created_at) FROM decisions) AS last_decided"
    )
    assert times["first_sent"] < times["last_decided"]
    states = {r["state"] for r in daemon.journal.query("SELECT state FROM messages")}
    assert states == {"done"}


async def test_a_message_that_crashed_the_daemon_each_time_is_quarantined(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """A message whose handling in the daemon itself was cut short as many times as the
    bound (a crash loop: its attempt counted each time) is quarantined at the next try, with
    an alert to the review address, and neither forwarded nor acknowledged."""
    daemon = await daemon_factory()
    await submit(daemon, _referral(0))
    [message] = daemon.journal.query("SELECT id FROM messages")
    for _ in range(MAX_INTERRUPTED_ATTEMPTS):
        daemon.journal.count_attempt(message["id"])
    assert await daemon.pipeline.process_received() == 1
    [row] = daemon.journal.query("SELECT state, last_error FROM messages")
    assert row["state"] == "quarantined"
    assert f"interrupted {MAX_INTERRUPTED_ATTEMPTS} times" in row["last_error"]
    mails = daemon.journal.query("SELECT kind, recipients FROM outbox")
    assert [(m["kind"], m["recipients"]) for m in mails] == [("alert", '["review@router.example"]')]


async def test_no_worker_able_to_start_fails_no_referral(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """The worker dies and no new one can start (here an address-space bound below what one
    needs; in life a machine out of memory): that is the router failing, not the referral.
    It stays stored with no attempt counted, nothing is quarantined or alerted, the start's
    failure is there for /readyz, and once a worker can start the referral is forwarded."""
    daemon = await daemon_factory()
    await submit(daemon, _referral(0))
    [worker] = daemon.sandbox.worker_pids()
    daemon.sandbox.memory_bytes = 1024 * 1024
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(WorkerUnavailable):
        await daemon.pipeline.process_received()
    [row] = daemon.journal.query("SELECT state, attempts FROM messages")
    assert (row["state"], row["attempts"]) == ("received", 0)
    assert daemon.journal.query("SELECT kind FROM outbox") == []
    # The bound stops the worker as it starts or as it warms up: the error class varies
    # (BrokenProcessPool, MemoryError, OSError), and /readyz shows whichever it was.
    assert daemon.sandbox.start_error is not None
    daemon.sandbox.memory_bytes = WORKER_MEMORY_BYTES  # memory is back
    assert await daemon.pipeline.process_received() == 1
    mails = daemon.journal.query("SELECT kind, recipients FROM outbox ORDER BY kind")
    assert [m["kind"] for m in mails] == ["ack", "forward"] and MET in mails[1]["recipients"]
    assert daemon.sandbox.start_error is None


async def test_deciding_pauses_while_too_much_mail_is_unsent(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """With the relay down, deciding stops once the unsent mail reaches the bound, leaving
    the rest stored (not decided into a growing outbox); it resumes when mail goes out."""
    down = CaptureServer()  # configured, never started: its port refuses connections
    daemon = await daemon_factory(relay=down.url, retry_base_seconds=0.05)
    daemon.stages.unsent_limit = 2  # one referral's forward and acknowledgment
    for number in range(4):
        await submit(daemon, _referral(number))
    async with _running(daemon):
        await asyncio.wait_for(daemon.stages.paused.wait(), 30)
        states = [r["state"] for r in daemon.journal.query("SELECT state FROM messages")]
        assert sorted(states) == ["decided", "received", "received", "received"]
        down.start()  # the relay comes back: everything drains
        try:
            captured = await down.wait_for_async(8, timeout=60)
        finally:
            daemon.stop_event.set()
            down.stop()
    assert sum(MET in c.rcpt_tos for c in captured) == 4


async def test_referrals_behind_a_runaway_one_are_forwarded(daemon_factory, smtp_capture) -> None:  # type: ignore[no-untyped-def]
    """A referral whose form overruns the time limit ends needs_review; the referrals stored
    after it are read by a fresh worker and forwarded, none failed or quarantined."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url, parse_timeout_seconds=1.5)
    await daemon.sandbox.started()
    await submit(daemon, _referral(0, slow_pdf()))
    for number in (1, 2):
        await submit(daemon, _referral(number))
    async with _running(daemon):
        captured = await relay.wait_for_async(6, timeout=60)
    outcomes = sorted(r["outcome"] for r in daemon.journal.query("SELECT outcome FROM decisions"))
    assert outcomes == ["forward", "forward", "needs_review"]
    assert sum(MET in c.rcpt_tos for c in captured) == 2
    assert daemon.sandbox.replaced == 1


async def test_mail_read_ahead_is_bounded_and_the_rest_read_in_turn(  # type: ignore[no-untyped-def]
    daemon_factory, smtp_capture, monkeypatch
) -> None:
    """The due mail's bytes are read with it only up to the read-ahead bound; the mail
    beyond it is read when its turn comes, and every mail goes out once, byte for byte."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    for number in range(3):
        await submit(daemon, _referral(number))
    await daemon.pipeline.process_received()
    monkeypatch.setattr(delivering, "_READ_AHEAD_BYTES", 1)  # only the first mail's bytes
    due = await asyncio.to_thread(daemon.delivery._due, time.time())
    assert [item.kind for item, _ in due] == ["forward"] * 3  # acks wait for their forward
    assert due[0][1] is not None and [data for _, data in due[1:]] == [None, None]
    ids = [row["id"] for row in daemon.journal.query("SELECT id FROM outbox")]
    spooled = [daemon.journal.outgoing_data(mail_id) for mail_id in ids]
    assert await daemon.delivery.deliver_due() == 3
    assert await daemon.delivery.deliver_due() == 3  # the acknowledgments
    captured = await relay.wait_for_async(6, timeout=30)
    assert sorted(c.data for c in captured) == sorted(spooled)
    assert {r["state"] for r in daemon.journal.query("SELECT state FROM outbox")} == {"sent"}


async def test_sending_stops_when_the_journal_cannot_record_it(  # type: ignore[no-untyped-def]
    daemon_factory, smtp_capture, monkeypatch
) -> None:
    """A sent mark that fails (the journal went away) stops the round: the mail already
    read ahead is not sent on, since none of it could be recorded. The next round records
    the mail whose mark failed and sends the rest: nothing goes twice."""
    relay = smtp_capture()
    daemon = await daemon_factory(relay=relay.url)
    for number in range(3):
        await submit(daemon, _referral(number))
    await daemon.pipeline.process_received()
    journal = daemon.journal
    mark_sent = journal.mark_sent

    def unavailable(mail_id: str, reply: str | None = None) -> None:
        raise JournalUnavailable("OperationalError")

    monkeypatch.setattr(journal, "mark_sent", unavailable)
    with pytest.raises(JournalUnavailable):
        await daemon.delivery.deliver_due(concurrency=1)
    assert len(relay.messages) == 1
    monkeypatch.setattr(journal, "mark_sent", mark_sent)
    # The forward recorded at last, the two others, and the first one's acknowledgment.
    assert await daemon.delivery.deliver_due() == 4
    forwards = [c for c in relay.messages if MET in c.rcpt_tos]
    assert len(forwards) == 3 and len({c.data for c in forwards}) == 3

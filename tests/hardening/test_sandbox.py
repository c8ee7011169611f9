"""The analysis sandbox: overruns and dead workers become AnalysisFailed, never a stall."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import time
from pathlib import Path

import pytest

from router.core.routing import RoutingEngine
from router.decide.worker import AnalysisFailed, AnalysisSandbox
from tests.cfbwriter import outlook_msg
from tests.conftest import submit
from tests.formfactory import complete_referral, docx_table, fillable_pdf, labelled
from tests.hardening.conftest import ROUTER_FROM
from tests.hardening.hostile import flate_bomb_pdf, slow_pdf
from tests.mailfactory import build_email
from tests.service.test_lifecycle import RouterProcess, listen_port

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


async def test_overrun_fails_then_next_message_works(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """An analysis that overruns its limit is AnalysisFailed; the next one gets a new worker.

    The overrun is a PDF that takes tens of seconds to read, not a tiny limit on a quick
    one: on a busy machine a quick answer can be in before a 1 ms limit is looked at,
    and an answer in hand is rightly taken."""
    assert (await _analyse(sandbox, engine, REFERRAL)).decisions[0].outcome == "forward"
    [first_worker] = sandbox.worker_pids()
    sandbox.timeout = 0.25
    hostile = build_email(attachments=[("referral.pdf", slow_pdf(), "application/pdf")])
    with pytest.raises(AnalysisFailed, match=r"longer than 0\.25 s"):
        await _analyse(sandbox, engine, hostile)
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


async def test_worker_killed_just_before_a_message_does_not_fail_it(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """A message handed over the moment after its worker was killed, before anything has
    seen the death, is read by the replacement worker, not sent to review."""
    for _ in range(3):
        await _analyse(sandbox, engine, REFERRAL)
        [worker] = sandbox.worker_pids()
        os.kill(worker, signal.SIGKILL)
        analysis = await _analyse(sandbox, engine, REFERRAL)  # no wait for the death
        assert analysis.decisions[0].outcome == "forward"


async def test_memory_bound_holds_a_decompression_bomb(engine) -> None:  # type: ignore[no-untyped-def]
    """Under a tight address-space limit a PDF bomb ends as a review reading or a failure.

    The limit leaves a worker room to start (its own address space is 160 to 240 MB here,
    most of it shared libraries; 64 MB worked only while spare allocator arenas lasted) and
    to read a form, not to inflate the bomb's 100 MB stream."""
    box = AnalysisSandbox(timeout=30, memory_bytes=320 * 1024 * 1024)
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
    daemon = await daemon_factory(relay=relay.url, parse_timeout_seconds=0.25)
    await submit(daemon, build_email(attachments=[("referral.pdf", slow_pdf(), "application/pdf")]))
    await daemon.run_once()
    [row] = daemon.journal.query("SELECT outcome, record FROM decisions")
    record = json.loads(row["record"])
    assert row["outcome"] == "needs_review"
    assert "took longer than 0.25 s" in record["reason"]
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


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren...), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def _maps(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/maps").read_text()
    return ""


def _until_worker_started(pid: int, seconds: float = 30.0) -> list[int]:
    """Wait (bounded) until the daemon has a forkserver with a worker below it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        below = _descendants(pid)
        if any(_descendants(child) for child in below):
            return below
        time.sleep(0.05)  # polling another process's state
    raise AssertionError("no analysis worker was started at boot")


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux 5.3+)")
def test_worker_is_warm_at_boot_and_nothing_survives_sigkill(
    tmp_path: Path, rules_dir: Path
) -> None:
    """`serve` starts its worker before any mail, from a forkserver that has already loaded
    the parsers; SIGKILL of the daemon alone leaves no forkserver, tracker or worker behind."""
    shutil.copytree(rules_dir, tmp_path / "rules")
    port = listen_port()
    router = RouterProcess(
        tmp_path, {"ROUTER_INBOX": f"smtp://127.0.0.1:{port}", "ROUTER_HTTP": ""}, port
    )
    try:
        router.start()
        assert router.process is not None
        daemon = router.process.pid
        watched: list[int] = []
        below = _until_worker_started(daemon)
        forkserver = next(pid for pid in below if _descendants(pid))
        assert "lxml/etree" in _maps(forkserver)  # preloaded before any worker was forked
        watched = [os.pidfd_open(pid) for pid in below]
        os.kill(daemon, signal.SIGKILL)
        router.process.wait(5)
        deadline = time.monotonic() + 10
        pending = list(watched)
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(pending, [], [], deadline - time.monotonic())
            pending = [fd for fd in pending if fd not in ready]
        alive = [pid for pid, fd in zip(below, watched, strict=True) if fd in pending]
        assert not alive, f"processes left behind: {alive}"
    finally:
        for fd in watched:
            os.close(fd)
        router.stop()
        if router.process is not None:  # whatever a failure left in the daemon's session
            with contextlib.suppress(ProcessLookupError):
                os.killpg(router.process.pid, signal.SIGKILL)


async def test_overrun_worker_is_replaced_at_once(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """After an overrun the next worker is started straight away, before any message asks."""
    first = await sandbox.started()
    sandbox.timeout = 0.25
    hostile = build_email(attachments=[("referral.pdf", slow_pdf(), "application/pdf")])
    with pytest.raises(AnalysisFailed):
        await _analyse(sandbox, engine, hostile)
    second = await sandbox.started()
    assert second != first and sandbox.worker_pids() == [second]
    assert sandbox.replaced == 1


async def test_message_queued_behind_a_runaway_one_is_read_not_failed(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """Two messages handed over at once: the one that overruns fails alone, and the one
    waiting behind it is read by the replacement worker within its own time limit."""
    await sandbox.started()
    sandbox.timeout = 1.5
    hostile = build_email(attachments=[("referral.pdf", slow_pdf(), "application/pdf")])
    runaway = asyncio.ensure_future(_analyse(sandbox, engine, hostile))
    innocent = asyncio.ensure_future(_analyse(sandbox, engine, REFERRAL))
    with pytest.raises(AnalysisFailed, match="longer than"):
        await runaway
    assert (await innocent).decisions[0].outcome == "forward"
    assert sandbox.replaced == 1


async def test_a_referral_inside_an_outlook_item_is_read_by_the_worker(sandbox, engine) -> None:  # type: ignore[no-untyped-def]
    """A form in a Word file attached to an Outlook item (.msg), the way a referrer forwards
    an email by dragging it in, is read by the worker and forwarded: its first .msg loads the
    Outlook reader within the message's own time limit."""
    form = docx_table(list(labelled(complete_referral()).items()))
    item = outlook_msg("FW: referral", "Please see the attached form.", [("Prevent.docx", form)])
    raw = build_email(attachments=[("FW referral.msg", item, "application/vnd.ms-outlook")])
    await _analyse(sandbox, engine, REFERRAL)  # a warm worker, as serve has before any mail
    sandbox.timeout = 10
    [decision] = (await _analyse(sandbox, engine, raw)).decisions
    assert decision.outcome == "forward" and decision.area == "lewisham"
    assert decision.fields == complete_referral()
    assert sandbox.replaced == 0


def test_new_worker_warms_up_on_the_sample_referral(engine) -> None:  # type: ignore[no-untyped-def]
    """A new worker's first task reads the bundled sample with the current rules, so the
    routing engine the first real message needs is built before that message arrives."""
    from router.decide import in_worker as module

    module._ENGINE.clear()
    assert module.warm(None, "") == os.getpid()  # no rules yet: only proves it runs
    assert not module._ENGINE
    assert module.warm(engine.rules, engine.review_address) == os.getpid()
    assert module._ENGINE[engine.rules.version].review_address == engine.review_address


def test_daemon_imports_no_reader() -> None:
    """The daemon loads no document reader, Outlook or OAuth library (only its worker reads
    attachments, from a forkserver that has them preloaded): it starts faster and smaller."""
    import subprocess
    import sys

    heavy = ("pypdf", "docx", "lxml", "extract_msg", "msal", "google", "requests", "cryptography")
    code = (
        "import sys, router.service.process, router.cli; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

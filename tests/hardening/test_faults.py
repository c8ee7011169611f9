"""Faults of the machine, against a real `serve`: a locked journal and a full disk make the
router answer 451, say so on /healthz, and carry on by itself once the fault clears."""

from __future__ import annotations

import resource
import sqlite3
import threading
import time

import pytest

from tests.hardening.serve import (
    MET,
    ServeProcess,
    referral,
    send_until_stored,
    wait_for_forwards,
)
from tests.servers.smtp import CaptureServer

SENDER = "teacher@school.example"


def _wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling another process's endpoint


def _send_in_background(router: ServeProcess, numbers: range, deadline: float) -> threading.Thread:
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for number in numbers:
                send_until_stored(router.port, referral(number), sender=SENDER, deadline=deadline)
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def _join(thread: threading.Thread) -> None:
    thread.join(90)
    assert not thread.is_alive()
    for error in thread.errors:  # type: ignore[attr-defined]
        raise error


@pytest.mark.slow
def test_journal_locked_longer_than_the_busy_timeout(
    serve: tuple[ServeProcess, CaptureServer],
) -> None:
    """Another process holds the journal's write lock for 9 s: mail is answered 451 (never
    5xx), the delivery loop's failure is counted and shown on /readyz (/healthz stays 200),
    and after the lock goes
    everything is forwarded within 30 s by the same process."""
    router, capture = serve
    router.env["ROUTER_RETRY_BASE_SECONDS"] = "3"
    router.start()
    # At RCPT to the force: the start-up check (MAIL and RCPT to the review address) is not it.
    capture.fail_with(451, "4.3.0 try again later", at="RCPT", times=1, recipients={MET})
    deadline = time.monotonic() + 100
    send_until_stored(router.port, referral(0), sender=SENDER, deadline=deadline)
    # The forward was deferred once: its retry falls due while the journal is locked.
    _wait_for(lambda: router.metric("router_mail_retries_total") >= 1, 30, "a deferral")

    lock = sqlite3.connect(router.cwd / "state" / "journal.sqlite3", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    locked_at = time.monotonic()
    sender = _send_in_background(router, range(1, 3), deadline)
    # The deferred forward's retry falls due in the delivery loop (router.service.stages).
    _wait_for(
        lambda: router.metric("router_task_restarts_total", task="delivery") >= 1,
        30,
        "the delivery loop's failure to be counted",
    )
    assert router.health()[0] == 200  # alive: restarting it would not help
    status, report, _ = router.ready()
    assert status == 503
    failing = report["checks"]["tasks"]["failing"]  # type: ignore[index]
    assert failing["delivery"]["error"] == "OperationalError"
    time.sleep(max(0.0, locked_at + 9 - time.monotonic()))  # hold the lock 9 s in all
    # ... and until a store has failed: the journal's one connection serves its callers in
    # turn, so a store queued behind the delivery loop's own 5 s wait may start late.
    _wait_for(lambda: '"store_failed"' in router.log_text(), 30, "a 451 while locked")
    lock.execute("ROLLBACK")
    lock.close()
    released = time.monotonic()

    _join(sender)
    counts = wait_for_forwards(capture, range(3), timeout=30)
    assert set(counts) == {f"<referral-{n}@school.example>" for n in range(3)}
    assert time.monotonic() - released < 30
    assert router.process is not None and router.process.poll() is None  # no restart
    _wait_for(lambda: router.ready()[0] == 200, 15, "/readyz to recover")
    # a 451 was given while the lock held (store_failed)
    router.wait_logged("task_failed", "task_recovered", "store_failed")
    _assert_every_copy_has_its_row(router)


@pytest.mark.slow
def test_full_disk_for_a_few_seconds_under_load(
    serve: tuple[ServeProcess, CaptureServer],
) -> None:
    """No file of the daemon may grow (a file-size limit, as on a full disk) for 8 s while
    a referral is being decided, the relay defers and more referrals arrive: they are
    answered 451 or stored, /readyz says so, and every one is forwarded, none
    quarantined, once space returns."""
    router, capture = serve
    router.start()
    capture.fail_with(451, "4.3.0 try again later", at="MAIL")  # the pipeline keeps waking
    deadline = time.monotonic() + 100
    send_until_stored(router.port, referral(0), sender=SENDER, deadline=deadline)
    _wait_for(lambda: router.metric("router_mail_retries_total") >= 1, 30, "a deferral")
    send_until_stored(router.port, referral(1), sender=SENDER, deadline=deadline)
    router.limit(resource.RLIMIT_FSIZE, 0)  # while referral 1 is being decided
    full_until = time.monotonic() + 8
    sender = _send_in_background(router, range(2, 7), deadline)

    def journal_reported() -> bool:
        status, report, _ = router.ready()
        return status == 503 and report["checks"]["journal"]["ok"] is False  # type: ignore[index,no-any-return]

    # Within a second: the probe trusts the journal's own durable writes that recent.
    _wait_for(journal_reported, 5, "/readyz to report the journal")
    time.sleep(max(0.0, full_until - time.monotonic()))  # the disk stays full for 8 s
    router.limit(resource.RLIMIT_FSIZE, resource.RLIM_INFINITY)
    capture.reset()

    _join(sender)
    counts = wait_for_forwards(capture, range(7), timeout=60)
    assert set(counts) == {f"<referral-{n}@school.example>" for n in range(7)}
    assert router.metric("router_quarantine_size") == 0
    _assert_every_copy_has_its_row(router)
    assert router.process is not None and router.process.poll() is None
    _wait_for(lambda: router.ready()[0] == 200, 15, "/readyz to recover")


def _assert_every_copy_has_its_row(router: ServeProcess) -> None:
    """A message refused with 451 left no stored copy behind."""
    with sqlite3.connect(router.cwd / "state" / "journal.sqlite3") as db:
        ids = {row[0] for row in db.execute("SELECT id FROM messages")}
    stored = {path.stem for path in (router.cwd / "state" / "messages").glob("*.eml")}
    assert stored <= ids

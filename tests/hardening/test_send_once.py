"""Sent once, and never half failed: a real `serve` whose journal refuses one write (a
trigger in its own database, the fault injected at the journal's boundary) while mail is with
the relay, or just after the relay refused a forward for good."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hardening.serve import ServeProcess, forwards, referral, send_until_stored
from tests.servers.smtp import CaptureServer
from tests.service.test_lifecycle import MET

SENDER = "teacher@school.example"
REVIEW = "review@localhost"  # the default review address of `serve`


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling another process's journal and log


def _rows(router: ServeProcess, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
    """Read (or change) the daemon's journal from outside, on either backend."""
    url = router.env.get("ROUTER_JOURNAL")
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            cursor = db.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []
    path = Path(router.env["ROUTER_STATE_DIR"]) / "journal.sqlite3"
    with sqlite3.connect(path, timeout=30, isolation_level=None) as db:
        return db.execute(sql, params).fetchall()


def _forward_id(router: ServeProcess, number: int) -> str:
    [(mail_id,)] = _rows(
        router,
        "SELECT o.id FROM outbox o JOIN messages m ON m.id = o.message_id"
        " WHERE o.kind = 'forward' AND m.message_id_header = ?",
        (f"<referral-{number}@school.example>",),
    )
    return str(mail_id)


def _inject(router: ServeProcess, table: str, when: str) -> None:
    """Make the journal refuse the updates of `table` rows that match `when` (until `_clear`)."""
    if router.env.get("ROUTER_JOURNAL"):
        _rows(
            router,
            "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
        )
        _rows(
            router,
            f"CREATE TRIGGER injected_fault BEFORE UPDATE ON {table} FOR EACH ROW"
            f" WHEN ({when}) EXECUTE FUNCTION injected_fault()",
        )
    else:
        _rows(
            router,
            f"CREATE TRIGGER injected_fault BEFORE UPDATE ON {table} WHEN {when}"
            " BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
        )


def _clear(router: ServeProcess, table: str) -> None:
    on = f" ON {table}" if router.env.get("ROUTER_JOURNAL") else ""
    _rows(router, f"DROP TRIGGER injected_fault{on}")


def _to(capture: CaptureServer, address: str) -> int:
    return sum(address in message.rcpt_tos for message in capture.messages)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_failed_sent_mark_sends_nothing_twice(
    serve: tuple[ServeProcess, CaptureServer], backend: str, request: pytest.FixtureRequest
) -> None:
    """Two forwards go at once; the journal refuses the sent mark of one while the relay still
    holds the other: each forward and each acknowledgment reaches the relay exactly once (on
    PostgreSQL with a fixed node name, so the restarted router may take its own claims)."""
    router, capture = serve
    if backend == "postgresql":
        router.env["ROUTER_JOURNAL"] = request.getfixturevalue("postgres_url")
        router.env["ROUTER_NODE_NAME"] = "router-1"
    router.env["ROUTER_RETRY_BASE_SECONDS"] = "0.1"
    router.env["ROUTER_RETRY_MAX_SECONDS"] = "0.2"
    capture.fail_with(451, "4.3.0 try again later", at="MAIL")
    router.start()
    deadline = time.monotonic() + 60
    for number in (0, 1):
        send_until_stored(router.port, referral(number), sender=SENDER, deadline=deadline)
    _wait_for(
        lambda: (
            _rows(router, "SELECT COUNT(*) FROM outbox WHERE kind = 'forward' AND attempts > 0")
            == [(2,)]
        ),
        30,
        "both forwards to be deferred",
    )
    router.stop()  # both forwards are due at once when it starts again: one round sends both
    capture.reset()
    holds = [
        capture.hold(lambda data, n=n: f"<referral-{n}@school.example>".encode() in data)
        for n in (0, 1)
    ]
    router.start()
    assert holds[0].held.wait(30) and holds[1].held.wait(30), "both forwards under way at once"
    _inject(router, "outbox", f"OLD.id = '{_forward_id(router, 0)}' AND NEW.state = 'sent'")
    holds[0].release()  # accepted: its sent mark fails while forward 1 is still with the relay
    _wait_for(
        lambda: '"task_failed"' in router.log_text() or '"sent_not_recorded"' in router.log_text(),
        30,
        "the failed sent mark",
    )
    # A restarted delivery loop would hand both forwards to the relay again by now.
    seen = capture.messages
    capture.wait_beyond(len(seen), timeout=3)
    _clear(router, "outbox")
    holds[1].release()

    _wait_for(lambda: _to(capture, SENDER) >= 2, 30, "both acknowledgments")
    _wait_for(
        lambda: _rows(router, "SELECT COUNT(*) FROM outbox WHERE state != 'sent'") == [(0,)],
        30,
        "every mail recorded as sent",
    )
    assert forwards(capture.messages) == {
        "<referral-0@school.example>": 1,
        "<referral-1@school.example>": 1,
    }
    assert _to(capture, SENDER) == 2
    assert router.metric("router_quarantine_size") == 0


def test_a_refused_forward_is_failed_quarantined_and_alerted_at_once(
    serve: tuple[ServeProcess, CaptureServer],
) -> None:
    """The relay refuses a forward for good and the journal refuses the quarantine: nothing is
    half recorded, and once the journal works again the referral is quarantined, its
    acknowledgment held and the review address alerted, once."""
    router, capture = serve
    capture.fail_with(550, "5.1.1 no such user", at="RCPT", recipients={MET})
    router.start()
    _inject(router, "messages", "NEW.state = 'quarantined'")
    send_until_stored(router.port, referral(0), sender=SENDER, deadline=time.monotonic() + 30)
    _wait_for(lambda: '"task_failed"' in router.log_text(), 30, "the refused quarantine")
    _clear(router, "messages")

    _wait_for(lambda: _to(capture, REVIEW) >= 1, 20, "the alert to the review address")
    _wait_for(
        lambda: _rows(router, "SELECT state FROM messages") == [("quarantined",)],
        10,
        "the referral to be quarantined",
    )
    states = dict(_rows(router, "SELECT kind, state FROM outbox WHERE kind != 'alert'"))
    assert states == {"forward": "failed", "ack": "failed"}
    assert _to(capture, REVIEW) == 1
    assert _to(capture, SENDER) == 0 and _to(capture, MET) == 0
    assert router.metric("router_quarantine_size") == 1

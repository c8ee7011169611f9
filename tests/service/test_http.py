"""The operations endpoint of a running daemon: /metrics, /healthz, /readyz, and bad requests."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.decide.worker import AnalysisSandbox
from tests.conftest import submit
from tests.formfactory import complete_referral, fillable_pdf, labelled
from tests.journal.backends import break_health_probe
from tests.mailfactory import build_email

MET = "preventreferrals@met.pnn.police.uk"


def _referral() -> bytes:
    pdf = fillable_pdf(labelled(complete_referral()))
    return build_email(attachments=[("referral.pdf", pdf, "application/pdf")])


async def fetch(daemon: Any, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request with urllib (a real client) to the daemon's endpoint: status, headers, body."""
    url = f"http://127.0.0.1:{daemon.http.port}{path}"

    def call() -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    return await asyncio.to_thread(call)


async def samples(daemon: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Scrape /metrics and index every sample by (name, labels)."""
    status, headers, body = await fetch(daemon, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


async def test_metrics_count_a_referral_by_outcome_and_area(daemon_factory, smtp_capture):
    """After one referral flowed, /metrics shows it received, decided (outcome and area
    labels), forwarded, timed, and the inbox connected."""
    relay = smtp_capture()
    daemon = await daemon_factory(http="127.0.0.1:0", relay=relay.url)
    await submit(daemon, _referral())
    await daemon.run_once()
    await relay.wait_for_async(2, timeout=10)

    scraped = await samples(daemon)
    decided = ("router_decisions_total", frozenset({("outcome", "forward"), ("area", "lewisham")}))
    assert scraped[decided] == 1
    assert scraped[("router_messages_received_total", frozenset({("inbox", "smtp")}))] == 1
    assert scraped[("router_mail_sent_total", frozenset({("kind", "forward")}))] == 1
    assert scraped[("router_mail_sent_total", frozenset({("kind", "ack")}))] == 1
    assert scraped[("router_arrival_to_forward_seconds_count", frozenset())] == 1
    assert scraped[("router_inbox_connected", frozenset())] == 1
    assert scraped[("router_quarantine_size", frozenset())] == 0
    assert scraped[("router_oldest_undelivered_seconds", frozenset())] == 0


async def test_gauges_are_read_from_the_journal_at_scrape_time(daemon_factory, smtp_capture):
    """A quarantined message shows in the gauge, and leaves it as soon as it is re-queued,
    without waiting for the pipeline's next round."""
    relay = smtp_capture()
    relay.fail_with(550, "no such user", at="RCPT", times=1, recipients={MET})
    daemon = await daemon_factory(http="127.0.0.1:0", relay=relay.url)
    await submit(daemon, _referral())
    await daemon.run_once()
    await relay.wait_for_async(1, timeout=10)  # the alert (the ack is held back)
    assert (await samples(daemon))[("router_quarantine_size", frozenset())] == 1

    [row] = daemon.journal.query("SELECT id FROM messages")
    assert daemon.journal.reprocess(row["id"])
    scraped = await samples(daemon)
    assert scraped[("router_quarantine_size", frozenset())] == 0
    assert scraped[("router_oldest_undelivered_seconds", frozenset())] > 0


async def test_healthz_and_readyz_report_their_checks(daemon_factory, smtp_capture):
    """A daemon with a writable journal, a listening inbox and a working relay is healthy
    and ready; each check is named in the JSON body."""
    relay = smtp_capture()
    daemon = await daemon_factory(http="127.0.0.1:0", relay=relay.url)
    await submit(daemon, _referral())
    await daemon.run_once()

    status, headers, body = await fetch(daemon, "/healthz")
    assert status == 200 and headers["Content-Type"] == "application/json"
    report = json.loads(body)
    assert report["status"] == "ok"
    assert set(report["checks"]) == {"event_loop", "tasks"}
    assert report["checks"]["tasks"] == {"ok": True}

    assert await asyncio.to_thread(daemon.http.checks.next_round)
    status, _, body = await fetch(daemon, "/readyz")
    report = json.loads(body)
    assert status == 200 and report["status"] == "ok"
    assert report["checks"]["journal"]["ok"] is True
    assert report["checks"]["inbox"] == {"ok": True, "state": "listening"}
    assert report["checks"]["relay"]["ok"] is True
    assert report["checks"]["relay"]["last_success_seconds_ago"] is not None
    assert report["checks"]["undecided"]["ok"] is True
    assert report["checks"]["undecided"]["oldest_seconds"] is None
    worker = {"ok": True, "state": "started", "replaced": 0}
    assert report["checks"]["analysis_worker"] == worker


class _Unstartable(AnalysisSandbox):
    """A sandbox whose worker process exits in its initializer, before taking any task."""

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(1, context, initializer=os._exit, initargs=(3,))


async def test_readyz_fails_when_the_analysis_worker_cannot_start(
    daemon_factory, smtp_capture, bundled_rules, tmp_path
):
    """A worker that dies as it starts makes /readyz 503 naming the analysis worker and
    the error; the mail stored meanwhile waits in the journal."""
    from router.service.daemon import Daemon
    from tests.conftest import make_settings

    relay = smtp_capture()
    settings = make_settings(tmp_path, http="127.0.0.1:0", relay=relay.url)
    daemon = Daemon(settings, bundled_rules)
    daemon.sandbox = daemon.pipeline.sandbox = _Unstartable(timeout=30)
    try:
        await daemon.start()
        await submit(daemon, _referral())
        with pytest.raises(BrokenProcessPool):
            await daemon.sandbox.started()
        status, _, body = await fetch(daemon, "/readyz")
        check = json.loads(body)["checks"]["analysis_worker"]
        assert status == 503
        assert check["ok"] is False and check["state"] == "failed to start"
        assert check["error"] == "BrokenProcessPool"
        assert [r["state"] for r in daemon.journal.query("SELECT state FROM messages")] == [
            "received"
        ]
    finally:
        await daemon.close()


async def test_readyz_fails_while_the_relay_keeps_failing(daemon_factory, smtp_capture):
    """Transient relay failures past the grace period make /readyz 503 (not /healthz); the
    next successful send makes it ready again."""
    relay = smtp_capture()
    relay.fail_with(451, "try again later", at="MAIL")
    daemon = await daemon_factory(http="127.0.0.1:0", relay=relay.url)
    daemon.http.relay_grace = 0.0
    await submit(daemon, _referral())
    await daemon.run_once()

    status, _, body = await fetch(daemon, "/readyz")
    report = json.loads(body)
    assert status == 503 and report["status"] == "failing"
    assert report["checks"]["relay"]["ok"] is False
    assert report["checks"]["relay"]["failure_streak"] >= 1
    assert (await fetch(daemon, "/healthz"))[0] == 200

    relay.reset()
    for _ in range(50):
        await _until_due(daemon)
        await daemon.run_once()
        if relay.messages:
            break
    assert relay.messages
    assert await asyncio.to_thread(daemon.http.checks.next_round)  # the journal's, checked
    assert (await fetch(daemon, "/readyz"))[0] == 200


async def test_readyz_fails_when_the_inbox_stops(daemon_factory):
    """With its listener closed the daemon cannot take mail: /readyz says so."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    await daemon.inbox.stop()
    status, _, body = await fetch(daemon, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["inbox"] == {"ok": False, "state": "stopped"}
    assert (await samples(daemon))[("router_inbox_connected", frozenset())] == 0


async def test_readyz_fails_when_the_state_directory_cannot_take_a_file(daemon_factory):
    """If the journal cannot take a write (its directory, or its database), /readyz answers
    503 naming the error, and /healthz stays 200."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    error = break_health_probe(daemon.journal)
    assert await asyncio.to_thread(daemon.http.checks.next_round)
    status, _, body = await fetch(daemon, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["journal"] == {"ok": False, "error": error}
    assert (await fetch(daemon, "/healthz"))[0] == 200


async def test_unknown_paths_methods_and_garbage_are_refused(daemon_factory):
    """404 for an unknown path, 405 (Allow: GET) for POST, 400 for a malformed request."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    assert (await fetch(daemon, "/nope"))[0] == 404
    status, headers, _ = await fetch(daemon, "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET"
    assert (await fetch(daemon, "/healthz?verbose=1"))[0] == 200

    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.http.port)
    writer.write(b"HELLO\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 400 ")


async def test_empty_setting_turns_the_endpoint_off(daemon_factory):
    """ROUTER_HTTP empty: no endpoint is started."""
    daemon = await daemon_factory()
    assert daemon.http is None


async def test_a_taken_port_is_a_clear_start_up_error(daemon_factory):
    """When the HTTP port is taken, start fails with an OSError naming the endpoint."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"HTTP endpoint 127.0.0.1:{port}"):
            await daemon_factory(http=f"127.0.0.1:{port}")


async def _until_due(daemon: Any) -> None:
    """Wait until the journal's next retry is due (bounded by the test settings' backoff)."""
    import time

    due = daemon.journal.next_due()
    if due is not None:
        await asyncio.sleep(max(0.0, min(1.0, due - time.time())))


async def test_readyz_fails_while_a_message_waits_too_long_for_its_decision(daemon_factory):
    """A stored message still undecided past the bound makes /readyz 503 and shows on
    /metrics as router_oldest_undecided_seconds; once decided, ready again and 0."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    daemon.http.checks.undecided_grace = 0.0
    await submit(daemon, _referral())
    assert await asyncio.to_thread(daemon.http.checks.next_round)

    status, _, body = await fetch(daemon, "/readyz")
    report = json.loads(body)
    assert status == 503 and report["checks"]["undecided"]["ok"] is False
    assert report["checks"]["undecided"]["oldest_seconds"] >= 0
    assert (await samples(daemon))[("router_oldest_undecided_seconds", frozenset())] > 0

    await daemon.run_once()
    assert await asyncio.to_thread(daemon.http.checks.next_round)
    assert (await fetch(daemon, "/readyz"))[0] == 200
    assert (await samples(daemon))[("router_oldest_undecided_seconds", frozenset())] == 0


async def test_connections_beyond_the_cap_are_answered_503_at_once(daemon_factory):
    """With the endpoint's connections all held open by idle clients, one more is answered
    503 at once and closed; once they go, /healthz answers 200 again."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    daemon.http.max_connections = 8
    idle = [
        await asyncio.open_connection("127.0.0.1", daemon.http.port)
        for _ in range(daemon.http.max_connections)
    ]
    try:
        for _ in range(200):  # the endpoint's own thread takes them in
            if len(daemon.http._connections) == daemon.http.max_connections:
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.http.port)
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 503 ") and b"too many connections" in reply
    finally:
        for _, held in idle:
            held.close()
    for _ in range(100):
        status = (await fetch(daemon, "/healthz"))[0]
        if status == 200:
            break
        await asyncio.sleep(0.05)  # the endpoint's thread sees the closes in its own time
    assert status == 200

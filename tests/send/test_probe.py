"""The start-up check of the relay: an unusable relay is logged and fails /readyz, and is
retried until it works."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from router.logs import configure_logging
from router.send.probe import RelayProbe
from router.send.relay import RelaySecurityError
from router.service.daemon import Daemon
from tests.conftest import make_settings
from tests.hardening.test_transport import _remote_relay, remote_server  # noqa: F401
from tests.servers.smtp import TlsAuthority, free_port
from tests.service.test_http import fetch


async def _next_check(probe: RelayProbe) -> None:
    probe.checked.clear()
    await asyncio.wait_for(probe.checked.wait(), timeout=30)


async def test_relay_missing_at_start_fails_readyz_until_it_comes(
    tmp_path: Path, bundled_rules, smtp_capture
) -> None:
    """No relay listening: a `relay_unusable` warning and /readyz 503 naming the probe; once
    a relay listens on that port, the retry finds it and /readyz is 200."""
    port = free_port()
    settings = make_settings(tmp_path, relay=f"smtp://127.0.0.1:{port}", http="127.0.0.1:0")
    daemon = Daemon(settings, bundled_rules)
    daemon.relay_probe.first_retry = 0.05
    try:
        buffer = io.StringIO()
        configure_logging("info", "json", stream=buffer)  # the real rendered lines
        try:
            await daemon.start()
            await daemon.sandbox.started()  # /readyz waits for it too: not what is tested
            await asyncio.wait_for(daemon.relay_probe.checked.wait(), timeout=30)
        finally:
            configure_logging("info", "json")
        logs = [json.loads(line) for line in buffer.getvalue().splitlines()]
        warning = next(line for line in logs if line["event"] == "relay_unusable")
        assert warning["relay"].startswith(f"smtp://127.0.0.1:{port}")
        status, _, body = await fetch(daemon, "/readyz")
        relay = json.loads(body)["checks"]["relay"]
        assert status == 503
        assert relay["ok"] is False and relay["probe"] == "failing" and relay["probe_error"]

        smtp_capture(port=port)
        while not daemon.relay_probe.ok:
            await _next_check(daemon.relay_probe)
        assert await asyncio.to_thread(daemon.http.checks.next_round)  # the journal's, too
        status, _, body = await fetch(daemon, "/readyz")
        assert status == 200
        assert json.loads(body)["checks"]["relay"]["probe"] == "ok"
    finally:
        await daemon.close()


async def test_maildir_relay_needs_no_probe(daemon_factory) -> None:
    """A Maildir relay is not probed and /readyz is 200 from the start."""
    daemon = await daemon_factory(http="127.0.0.1:0")
    # The journal's first check (a durable write, in its thread) is not the relay's: under
    # load it can end after the worker is up, and /readyz says "not checked yet" until then.
    assert await asyncio.to_thread(daemon.http.checks.next_round)
    status, _, body = await fetch(daemon, "/readyz")
    assert status == 200
    assert json.loads(body)["checks"]["relay"]["probe"] == "not probed"


async def test_remote_relay_without_starttls_is_reported_at_start(
    remote_server,  # noqa: F811
    tls_ca: TlsAuthority,
) -> None:
    """A relay off loopback that offers no STARTTLS is found unusable by the probe, before
    any referral is sent, and the probe keeps trying until stopped."""
    server = remote_server("none")
    relay = _remote_relay(server, tls_ca)
    with pytest.raises(RelaySecurityError, match="STARTTLS"):
        await relay.probe()
    probe = RelayProbe(relay, first_retry=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(probe.run(stop))
    await _next_check(probe)
    await _next_check(probe)
    assert probe.attempts >= 2 and "STARTTLS" in (probe.error or "")
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert server.messages == []

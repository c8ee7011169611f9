"""The relay connection pool against real aiosmtpd servers: reuse, stale connections, faults."""

from __future__ import annotations

import pytest

from router.send.pool import PooledSmtpRelay
from router.send.relay import PermanentDeliveryError, TransientDeliveryError
from tests.send.test_relay import CC, SENDER, TO, RelayMaker, _message
from tests.servers.smtp import CaptureFactory


async def test_one_connection_carries_several_mails(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """Five mails sent one after another over STARTTLS arrive over a single connection."""
    server = smtp_capture(tls="starttls")
    pool = PooledSmtpRelay(relay_for(server))
    try:
        for number in range(5):
            await pool.send(_message(f"mail {number}\n"), sender=SENDER, recipients=[TO, CC])
        captured = await server.wait_for_async(5)
    finally:
        await pool.close()
    assert [c.rcpt_tos for c in captured] == [(TO, CC)] * 5
    assert all(c.tls for c in captured)
    assert server.connections == 1 and pool.opened == 1


async def test_connection_dropped_while_idle_is_replaced_and_mail_sent_once(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """When the relay closed the idle connection (here: it restarted), the next mail is
    still delivered, exactly once, on a fresh connection."""
    first = smtp_capture()
    pool = PooledSmtpRelay(relay_for(first))
    try:
        await pool.send(_message("before\n"), sender=SENDER, recipients=[TO])
        first.stop()  # closes every client connection
        second = smtp_capture(port=first.port)
        await pool.send(_message("after\n"), sender=SENDER, recipients=[TO])
        [captured] = await second.wait_for_async(1)
    finally:
        await pool.close()
    assert b"after" in captured.data
    assert len(first.messages) == 1 and len(second.messages) == 1
    assert pool.opened == 2


async def test_refused_recipient_keeps_the_connection(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """A 550 for a recipient fails that mail for good; the next mail uses the same connection."""
    server = smtp_capture()
    server.fail_with(550, "5.1.1 no such user", at="RCPT", recipients={CC}, times=1)
    pool = PooledSmtpRelay(relay_for(server))
    try:
        with pytest.raises(PermanentDeliveryError):
            await pool.send(_message(), sender=SENDER, recipients=[TO, CC])
        await pool.send(_message(), sender=SENDER, recipients=[TO, CC])
        [captured] = await server.wait_for_async(1)
    finally:
        await pool.close()
    assert captured.rcpt_tos == (TO, CC)
    assert server.connections == 1


@pytest.mark.parametrize("fault", ["451", "drop", "stall"])
async def test_failure_after_data_is_not_retried_here(
    smtp_capture: CaptureFactory, relay_for: RelayMaker, fault: str
) -> None:
    """A 451, a dropped connection or a stall at DATA is a transient failure for the caller
    (no silent resend that could duplicate it); the next mail goes through once."""
    server = smtp_capture()
    pool = PooledSmtpRelay(relay_for(server, timeout=0.5))
    try:
        await pool.send(_message("warm\n"), sender=SENDER, recipients=[TO])  # a kept connection
        if fault == "451":
            server.fail_with(451, "4.3.0 try later", at="DATA", times=1)
        elif fault == "drop":
            server.drop_connection_mid_data()
        else:
            server.stall(3, at="DATA")
        with pytest.raises(TransientDeliveryError):
            await pool.send(_message("faulty\n"), sender=SENDER, recipients=[TO])
        await pool.send(_message("next\n"), sender=SENDER, recipients=[TO])
        captured = await server.wait_for_async(2)
    finally:
        await pool.close()
    bodies = [c.data for c in captured]
    assert sum(b"next" in body for body in bodies) == 1
    assert sum(b"faulty" in body for body in bodies) <= (1 if fault == "stall" else 0)


async def test_idle_connection_is_not_reused_after_the_idle_limit(
    smtp_capture: CaptureFactory, relay_for: RelayMaker
) -> None:
    """A connection idle for longer than the limit is closed, and the next mail opens a new one."""
    server = smtp_capture()
    pool = PooledSmtpRelay(relay_for(server), idle_seconds=0.0)
    try:
        await pool.send(_message(), sender=SENDER, recipients=[TO])
        await pool.send(_message(), sender=SENDER, recipients=[TO])
        await server.wait_for_async(2)
    finally:
        await pool.close()
    assert pool.opened == 2 and server.connections == 2

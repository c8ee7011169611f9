"""First connection to a mailbox (ROUTER_IMAP_START) against a real Dovecot and the real journal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.inbox.imap_start import UidRanges
from router.journal.mailbox_start import MailboxStarts
from router.journal.opener import open_journal
from router.journal.protocol import Journal
from tests.conftest import make_settings
from tests.inbox.recording_sink import RecordingSink
from tests.inbox.test_imap import mail, running, settings_for
from tests.servers.dovecot import Dovecot

FOLDER = "Referrals"


def _day(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _settings(dovecot: Dovecot, imap_start: str):  # type: ignore[no-untyped-def]
    inbox = f"imap://{dovecot.user}@127.0.0.1:{dovecot.imap_port}/{FOLDER}"
    return settings_for(dovecot, inbox=inbox, imap_start=imap_start)


@pytest.fixture
def real_journal(tmp_path: Path, journal: str):  # type: ignore[no-untyped-def]
    """A real journal on each backend (`journal` is the backend setting, tests/conftest.py)."""
    opened = open_journal(make_settings(tmp_path, journal=journal))
    yield opened
    opened.close()


@pytest.fixture
def starts(real_journal: Journal) -> MailboxStarts:
    """First-connection records in a real journal."""
    return MailboxStarts(real_journal)


@pytest.mark.dovecot
async def test_mail_there_first_stays_untouched_across_restart_and_recreation(
    dovecot: Dovecot, starts: MailboxStarts
) -> None:
    """With `new`, the 3 messages in the folder at the first start are never taken (flags
    unchanged), not after a restart nor after the folder is recreated with a new UIDVALIDITY
    and the old mail put back; mail that arrives afterwards is taken, once."""
    for n in (1, 2, 3):
        dovecot.append(mail(n), FOLDER, flags=r"(\Seen \Flagged)" if n == 2 else "")
    flags_before = dovecot.flags(FOLDER)
    settings, sink = _settings(dovecot, "new"), RecordingSink()
    async with running(settings, sink, starts=starts) as run:
        await run.reach("idle")
        assert sink.accepts == []
        await asyncio.to_thread(dovecot.append, mail(4), FOLDER)
        await sink.until(lambda: len(sink.raw) == 1)
    async with running(settings, sink, starts=starts) as run:  # a restart
        await run.reach("idle")
    assert list(sink.raw.values()) == [mail(4)]
    assert {k: v for k, v in dovecot.flags(FOLDER).items() if "-4@" not in k} == flags_before

    uidvalidity = dovecot.uidvalidity(FOLDER)
    dovecot.recreate(FOLDER)
    for n in (1, 2, 3, 4):  # put back by hand: new UIDs, and today's INTERNALDATE
        dovecot.append(mail(n), FOLDER)
    assert dovecot.uidvalidity(FOLDER) != uidvalidity
    async with running(settings, sink, starts=starts) as run:
        await run.reach("idle")
        await asyncio.to_thread(dovecot.append, mail(5), FOLDER)
        await sink.until(lambda: len(sink.raw) == 2)
    assert sorted(sink.raw.values()) == [mail(4), mail(5)]
    assert sink.rekeys and sink.rekeys[-1][0] == "j1"  # mail 4 recognised, not stored again


@pytest.mark.dovecot
async def test_start_date_takes_mail_from_that_day(dovecot: Dovecot, starts: MailboxStarts) -> None:
    """With a date, mail that arrived before it is left alone and mail from it on is taken."""
    dovecot.append(mail(1), FOLDER, arrived=_day("2026-01-10T09:00:00"))
    dovecot.append(mail(2), FOLDER, arrived=_day("2026-02-01T00:30:00"))
    dovecot.append(mail(3), FOLDER, arrived=_day("2026-03-05T12:00:00"))
    sink = RecordingSink()
    async with running(_settings(dovecot, "2026-02-01"), sink, starts=starts) as run:
        await run.reach("idle")
    assert sorted(sink.raw.values()) == [mail(2), mail(3)]


@pytest.mark.dovecot
async def test_start_all_takes_everything(dovecot: Dovecot, starts: MailboxStarts) -> None:
    """With `all`, mail already in the folder at the first start is taken too."""
    for n in (1, 2, 3):
        dovecot.append(mail(n), FOLDER)
    sink = RecordingSink()
    async with running(_settings(dovecot, "all"), sink, starts=starts) as run:
        await run.reach("idle")
    assert len(sink.raw) == 3


async def test_setting_changed_later_does_not_take_old_mail(
    tmp_path: Path, dovecot: Dovecot, starts: MailboxStarts
) -> None:
    """Switching to `all` after the first start does not take the mail that was there first."""
    dovecot.append(mail(1), FOLDER)
    sink = RecordingSink()
    async with running(_settings(dovecot, "new"), sink, starts=starts) as run:
        await run.reach("idle")
    async with running(_settings(dovecot, "all"), sink, starts=starts) as run:
        await run.reach("idle")
    assert sink.raw == {}


@pytest.mark.dovecot
async def test_upgraded_router_keeps_processing(
    dovecot: Dovecot, real_journal: Journal, starts: MailboxStarts
) -> None:
    """A journal that already holds IMAP mail (a router from before ROUTER_IMAP_START) has met
    the mailbox before: mail that arrived while it was being upgraded is still processed."""
    real_journal.accept_sync(mail(0), source_key="imap:1:1")
    for n in (1, 2):
        dovecot.append(mail(n), FOLDER)
    sink = RecordingSink()
    async with running(_settings(dovecot, "new"), sink, starts=starts) as run:
        await run.reach("idle")
    assert sorted(sink.raw.values()) == [mail(1), mail(2)]


def test_uid_ranges_are_compact_and_exact() -> None:
    """UID sets merge into ranges, survive a round trip through text, and answer membership."""
    ranges = UidRanges.of([1, 2, 3, 7, 9, 10]).union(UidRanges.of([4, 8]))
    assert str(ranges) == "1:4,7:10"
    parsed = UidRanges.parse(str(ranges))
    assert [uid for uid in range(12) if uid in parsed] == [1, 2, 3, 4, 7, 8, 9, 10]
    assert len(parsed) == 8


@pytest.mark.dovecot
async def test_daemon_never_sends_what_was_there_first(
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_capture,
    tls_ca,
    bundled_rules,  # type: ignore[no-untyped-def]
) -> None:
    """The daemon with default settings forwards and acknowledges only the referral that
    arrives after its first start; the 3 referrals already there stay in the folder, flags
    unchanged, also after a restart."""
    from router.service.daemon import Daemon
    from tests.conftest import make_settings
    from tests.service.test_daemon_imap import MET, _referral, _until

    for n in (1, 2, 3):
        dovecot.append(_referral(n))
    flags = dovecot.flags()
    relay = smtp_capture(tls="starttls")
    settings = make_settings(
        tmp_path,
        inbox=f"imap://{dovecot.user}@127.0.0.1:{dovecot.imap_port}/INBOX",
        inbox_password=dovecot.password,
        relay=relay.url,
        relay_ca_file=tls_ca.ca_file,
    )
    for run in (1, 2):
        daemon = Daemon(settings, bundled_rules)
        await daemon.start()
        worker = asyncio.create_task(daemon.run())
        try:
            await _until(lambda d=daemon: d.inbox is not None and d.inbox.state == "idle")
            if run == 1:
                await asyncio.to_thread(dovecot.append, _referral(4))
                captured = await relay.wait_for_async(2, timeout=30)  # forward and ack
                await _until(lambda: len(dovecot.uids("Processed")) == 1)
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(worker, 10)
            await daemon.close()
    forwards = [c for c in relay.messages if MET in c.rcpt_tos]
    assert len(forwards) == 1 and len(captured) == 2 and len(relay.messages) == 2
    assert str(forwards[0].message["References"]).split()[-1] == "<imap-4@school.example>"
    assert dovecot.flags() == flags

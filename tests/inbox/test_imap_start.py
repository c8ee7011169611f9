"""First connection to a mailbox (ROUTER_IMAP_START) against a real Dovecot and the real journal."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.core.mailbox import imap_source_prefix, imap_uidvalidity_prefix
from router.inbox.imap_start import UidRanges
from router.inbox.imap_support import source_key
from router.journal.mailbox_start import MailboxStarts
from router.journal.opener import message_id_header, open_journal
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
    """A journal that already holds IMAP mail of this mailbox (a router from before
    ROUTER_IMAP_START, whose keys named only the folder's UIDVALIDITY) has met the mailbox
    before: mail that arrived while it was being upgraded is still processed."""
    for n in (1, 2):
        dovecot.append(mail(n), FOLDER)
    real_journal.accept_sync(mail(0), source_key=f"imap:{dovecot.uidvalidity(FOLDER)}:99")
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


@pytest.mark.dovecot
async def test_a_second_mailbox_is_met_for_the_first_time(
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_capture,  # type: ignore[no-untyped-def]
    tls_ca,
    bundled_rules,
    journal: str,
) -> None:
    """The journal holds the first mailbox's mail; pointed at a second one (another folder)
    under `new`, the router leaves the 3 referrals already there untouched (nothing sent,
    flags unchanged) and forwards only the one that arrives afterwards."""
    from router.service.daemon import Daemon
    from tests.service.test_daemon_imap import MET, _referral, _until

    relay = smtp_capture(tls="starttls")

    async def run(folder: str, arriving: int, processed: int) -> None:
        settings = make_settings(
            tmp_path,
            journal=journal,
            inbox=f"imap://{dovecot.user}@127.0.0.1:{dovecot.imap_port}/{folder}",
            inbox_password=dovecot.password,
            relay=relay.url,
            relay_ca_file=tls_ca.ca_file,
        )
        daemon = Daemon(settings, bundled_rules)
        await daemon.start()
        worker = asyncio.create_task(daemon.run())
        try:
            await _until(lambda: daemon.inbox is not None and daemon.inbox.state == "idle")
            await asyncio.to_thread(dovecot.append, _referral(arriving), folder)
            await _until(lambda: len(dovecot.uids("Processed")) >= processed)
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(worker, 10)
            await daemon.close()

    await run("INBOX", 1, processed=1)
    for n in (2, 3, 4):  # the second mailbox's mail from before the router met it
        dovecot.append(_referral(n), "Referrals")
    flags = dovecot.flags("Referrals")
    await run("Referrals", 5, processed=2)
    forwards = [c for c in relay.messages if MET in c.rcpt_tos]
    originals = sorted(str(f.message["References"]).split()[-1] for f in forwards)
    assert originals == ["<imap-1@school.example>", "<imap-5@school.example>"]
    assert dovecot.flags("Referrals") == flags
    assert len(dovecot.uids("Processed")) == 2


async def test_look_ups_and_settling_stay_in_their_mailbox(real_journal: Journal) -> None:
    """The same bytes stored from two mailboxes (folders `Old_Mail` and `OldXMail`): an identity
    look-up for one finds only its own message (or one whose key from before names no
    mailbox, which it can then adopt), and its settlements list only its own."""
    mine, other = "u@h/Old_Mail", "u@h/OldXMail"
    raw = mail(1)
    theirs = real_journal.accept_sync(raw, source_key=source_key(other, 7, 1))

    async def find(message: bytes) -> str | None:
        return await real_journal.find_source(
            message_id_header=message_id_header(message),
            sha256=hashlib.sha256(message).hexdigest(),
            source_prefix=imap_source_prefix(mine),
        )

    assert await find(raw) is None
    own = real_journal.accept_sync(raw, source_key=source_key(mine, 7, 1))
    assert await find(raw) == own
    with real_journal.transaction() as tx:
        tx.run("UPDATE messages SET state = 'done'")
    assert [s.message_id for s in await real_journal.settlements(imap_source_prefix(mine))] == [own]
    assert theirs != own
    legacy = real_journal.accept_sync(mail(2), source_key="imap:7:2")
    assert await find(mail(2)) == legacy
    assert await real_journal.adopt_sources("imap:7:", imap_uidvalidity_prefix(mine, 7)) == 1
    assert await real_journal.find_source(source_key=source_key(mine, 7, 2)) == legacy


def test_one_mailbox_whatever_the_port(tmp_path: Path) -> None:
    """`imaps://u@h/INBOX` and `imaps://u@h:993/INBOX` are one mailbox (one key for its mail,
    its first connection and its watcher's lease); another folder or server is another."""
    from router.inbox.imap import ImapInbox

    def mailbox(inbox: str) -> str:
        settings = make_settings(tmp_path, inbox=inbox, inbox_password="secret")
        return ImapInbox(settings, RecordingSink()).mailbox

    same = {mailbox("imaps://U@Mail.Example/INBOX"), mailbox("imaps://u@mail.example:993/inbox")}
    assert same == {"u@mail.example/INBOX"}
    assert mailbox("imaps://u@mail.example/Referrals") != "u@mail.example/INBOX"
    assert mailbox("imaps://u@other.example/INBOX") != "u@mail.example/INBOX"

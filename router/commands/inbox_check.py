"""`referral-router inbox check`: try the inbox and the relay with the current settings.

It connects, authenticates (password or OAuth 2.0), opens the folder and says what the router
would do there: how many messages it holds, how many the router would process under
`ROUTER_IMAP_START`, whether the Processed and Failed folders exist. It then connects to the
relay (STARTTLS, AUTH) and quits without sending. A graph:// inbox or relay is looked at
through Microsoft Graph (router.commands.graph_check): token, permissions, mailbox, folder.
Nothing is stored, moved or flagged, and no first-connection record is made. Its output
names no sender, subject or referral.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TextIO

from router.core.mailbox import legacy_imap_prefix
from router.inbox.imap_config import ImapConfigError, check_settings, imap_ssl_context
from router.inbox.imap_session import ImapConnectionError, ImapSession
from router.inbox.imap_start import FirstConnection, MemoryStartStore, StartStore
from router.inbox.imap_support import mailbox_key, source_key
from router.journal.opener import open_journal
from router.journal.protocol import Journal
from router.journal.sqlite import JOURNAL_FILE
from router.oauth.base import OAuthError
from router.oauth.sources import OAuthSources
from router.send.graph_relay import GraphRelay
from router.send.relay import DeliveryError, SmtpRelay
from router.send.relays import make_relay
from router.settings import Settings

EXIT_OK, EXIT_FAILED = 0, 1


class CheckFailed(Exception):
    """The router could not run: the message says why and what to check."""


@dataclass
class Report:
    """Lines printed as they come, and the first reason the router could not run."""

    out: TextIO
    problem: str | None = None
    lines: list[str] = field(default_factory=list)

    def say(self, label: str, text: str) -> None:
        line = f"{label:<10} {text}"
        self.lines.append(line)
        self.out.write(line + "\n")
        self.out.flush()


def inbox_check(settings: Settings, out: TextIO) -> int:
    """Run the check; returns 0 when the router could run, else 1 (the reason is printed).

    Raises:
        CommandError: never; every problem is a line of the report.
    """
    report = Report(out)
    try:
        asyncio.run(_check(settings, report))
    except CheckFailed as exc:
        report.problem = str(exc)
    if report.problem is None:
        report.say("result", "ok: the router could run with these settings")
        return EXIT_OK
    report.say("result", f"cannot run: {report.problem}")
    return EXIT_FAILED


async def _check(settings: Settings, report: Report) -> None:
    try:
        oauth = OAuthSources(settings)
    except ValueError as exc:
        raise CheckFailed(str(exc)) from None
    endpoint = settings.inbox_endpoint
    if endpoint.scheme == "smtp":
        report.say("inbox", f"embedded SMTP listener on {endpoint.host}:{endpoint.port}")
    elif endpoint.scheme == "graph":
        from router.commands.graph_check import check_graph_inbox

        await check_graph_inbox(
            settings, oauth.inbox, lambda: _journal(settings), report.say, CheckFailed
        )
    else:
        await _check_imap(settings, oauth, report)
    await _check_relay(settings, oauth, report)


async def _token(oauth: OAuthSources, role: str, report: Report) -> str | None:
    source = oauth.sources.get(role)
    if source is None:
        return None
    try:
        token = await source.token()
    except OAuthError as exc:
        raise CheckFailed(f"no OAuth token for the {role}: {exc}") from None
    left = token.expires_at - time.monotonic()
    report.say("token", f"{source.provider}: obtained for the {role}, valid {left:.0f} s")
    if oauth.certificate is not None:
        days = oauth.certificate_seconds() / 86400
        report.say(
            "cert",
            f"thumbprint {oauth.certificate.thumbprint_sha1}, expires in {days:.0f} days"
            + (" (renew it soon)" if days < 30 else ""),
        )
    return token.value


async def _check_imap(settings: Settings, oauth: OAuthSources, report: Report) -> None:
    endpoint = settings.inbox_endpoint
    try:
        check_settings(settings)
        ssl_context = imap_ssl_context(settings)
    except ImapConfigError as exc:
        raise CheckFailed(str(exc)) from None
    assert endpoint.user is not None  # check_settings
    where = f"{endpoint.scheme}://{endpoint.user}@{endpoint.host}:{endpoint.port}"
    report.say("inbox", f"{where}/{endpoint.folder}")
    method = "AUTHENTICATE XOAUTH2" if settings.inbox_auth == "oauth2" else "LOGIN (password)"
    report.say("auth", f"{settings.inbox_auth}: {method}")
    token = await _token(oauth, "inbox", report)
    try:
        session = await ImapSession.open(
            host=endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            password=settings.secret("inbox"),
            token=token,
            folder=endpoint.folder,
            ssl_context=ssl_context,
        )
    except ImapConnectionError as exc:
        raise CheckFailed(f"IMAP: {exc}") from None
    try:
        await _survey(settings, session, report)
    except ImapConnectionError as exc:
        raise CheckFailed(f"IMAP: {exc}") from None
    finally:
        await session.logout()


async def _survey(settings: Settings, session: ImapSession, report: Report) -> None:
    endpoint = settings.inbox_endpoint
    assert endpoint.user is not None
    uids = await session.search("ALL")
    report.say(
        "folder", f"{endpoint.folder}: {len(uids)} messages (UIDVALIDITY {session.uidvalidity})"
    )
    journal = _journal(settings)
    try:
        store: StartStore = MemoryStartStore()
        known: set[int] = set()
        mailbox = mailbox_key(endpoint.user, endpoint.host, endpoint.folder)
        if journal is not None:
            store = journal.mailbox_starts()
            for uid in uids:
                legacy = f"{legacy_imap_prefix(session.uidvalidity)}{uid}"
                keys = (source_key(mailbox, session.uidvalidity, uid), legacy)
                for key in keys:  # a journal from before keys named the mailbox: the old key
                    if await journal.find_source(source_key=key) is not None:
                        known.add(uid)
        first = FirstConnection(settings.imap_start, mailbox, store)
        start = await store.load(first.mailbox, session.uidvalidity)
        unknown = [uid for uid in uids if uid not in known]
        untouched = await first.untouched(session, unknown, record=False)
    finally:
        if journal is not None:
            journal.close()
    when = (
        f"first connected {time.strftime('%Y-%m-%d', time.gmtime(start.started_at))}"
        f" with {start.mode}"
        if start is not None
        else "not connected before"
    )
    report.say(
        "start",
        f"ROUTER_IMAP_START={settings.imap_start} ({when}): would process"
        f" {len(unknown) - len(untouched)}, leave {len(untouched)} untouched,"
        f" {len(known)} already in the journal",
    )
    folders = await session.folders()
    for name in (settings.processed_folder, settings.failed_folder):
        exists = name in folders
        report.say(
            "folders", f"{name}: {'exists' if exists else 'missing (created at the first move)'}"
        )
    report.say("moves", "MOVE" if session.has_capability("MOVE") else "COPY + EXPUNGE (no MOVE)")


def _journal(settings: Settings) -> Journal | None:
    """The daemon's journal when there is one (it is only read)."""
    if not settings.journal and not (settings.state_dir / JOURNAL_FILE).is_file():
        return None
    return open_journal(settings)


async def _check_relay(settings: Settings, oauth: OAuthSources, report: Report) -> None:
    try:
        relay = make_relay(settings, oauth.relay)
    except (ValueError, OSError) as exc:
        raise CheckFailed(f"relay: {exc}") from None
    if not isinstance(relay, SmtpRelay | GraphRelay):
        report.say("relay", f"{relay.describe()} (a Maildir: nothing is sent)")
        return
    report.say("relay", relay.describe())
    try:
        done = await relay.probe()
    except DeliveryError as exc:
        raise CheckFailed(f"relay: {exc}") from None
    finally:
        await relay.close()
    report.say("relay", f"connected, {done}; nothing sent")

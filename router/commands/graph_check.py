"""`referral-router inbox check` for a graph:// inbox: token, mailbox, folder, counts, the
settle folders and the application's permissions, through Microsoft Graph, changing nothing."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from router.graph.client import GraphClient, GraphError, MailboxGate, make_client
from router.graph.folders import find_folder
from router.inbox.graph import sync_key
from router.journal.protocol import Journal
from router.oauth.base import OAuthError
from router.oauth.cache import CachedTokenSource
from router.send.graph_relay import token_roles
from router.settings import Settings

_HINTS = {
    401: "Graph refused the token: check the tenant and that the app is consented",
    403: "Graph denied access: grant Mail.ReadWrite (application) with admin consent, and"
    " check that the mailbox is within the app's application access policy or RBAC scope",
    404: "no such mailbox or folder: check ROUTER_INBOX",
}


class Say(Protocol):
    def __call__(self, label: str, text: str) -> None: ...


async def check_graph_inbox(
    settings: Settings,
    tokens: CachedTokenSource | None,
    journal: Callable[[], Journal | None],
    say: Say,
    fail: Callable[[str], Exception],
) -> None:
    """Look at the mailbox as the inbox would, and say what the router would do there.

    Raises:
        Exception: `fail(reason)` when the router could not run.
    """
    endpoint = settings.inbox_endpoint
    assert endpoint.user is not None and tokens is not None  # graph:// implies OAuth 2.0
    say("inbox", f"graph://{endpoint.user}/{endpoint.folder} via {settings.graph_url}")
    client = make_client(settings, tokens, MailboxGate())
    try:
        await _guarded(_survey(settings, client, journal, say), fail)
    finally:
        await client.close()


async def _guarded(work: Awaitable[None], fail: Callable[[str], Exception]) -> None:
    try:
        await work
    except OAuthError as exc:
        raise fail(f"no OAuth token for the inbox: {exc}") from None
    except GraphError as exc:
        hint = _HINTS.get(exc.status or 0, "")
        raise fail(f"Graph: {exc}" + (f" ({hint})" if hint else "")) from None


async def _survey(
    settings: Settings, client: GraphClient, journal: Callable[[], Journal | None], say: Say
) -> None:
    endpoint = settings.inbox_endpoint
    assert endpoint.user is not None
    token = await client.tokens.token()
    roles = token_roles(token.value)
    say("token", f"obtained for Graph ({settings.graph_scope})")
    if roles is not None:
        for role in ("Mail.ReadWrite", "Mail.Send"):
            say("permission", f"{role}: {'granted' if role in roles else 'MISSING'}")
        if "Mail.Send" not in roles and settings.relay_endpoint.scheme == "graph":
            say("hint", "a graph:// relay needs the Mail.Send application permission")
    folder = await find_folder(client, endpoint.user, endpoint.folder)
    if folder is None:
        raise GraphError(404, "folder_not_found", f"no folder {endpoint.folder!r} in the mailbox")
    count = folder.get("totalItemCount")
    say("folder", f"{endpoint.folder}: {count} messages")
    _say_start(settings, journal, say, count)
    for name in (settings.processed_folder, settings.failed_folder):
        exists = await find_folder(client, endpoint.user, name) is not None
        say("folders", f"{name}: {'exists' if exists else 'missing (created at the first move)'}")


def _say_start(
    settings: Settings, journal: Callable[[], Journal | None], say: Say, count: object
) -> None:
    endpoint = settings.inbox_endpoint
    assert endpoint.user is not None
    opened = journal()
    state = None
    if opened is not None:
        try:
            state = opened.graph_sync().state(sync_key(endpoint.user, endpoint.folder))
        finally:
            opened.close()
    if state is not None and state.delta_link:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(state.synced_at or 0))
        say("start", f"continues from the delta link kept in the journal (synced {when} UTC)")
        return
    mode = settings.imap_start
    what = {
        "new": f"leave the {count} messages there untouched; only later mail is processed",
        "all": f"process the {count} messages there",
    }.get(mode, f"process what arrived on or after {mode}, leave the rest untouched")
    say("start", f"first connection, ROUTER_IMAP_START={mode}: would {what}")

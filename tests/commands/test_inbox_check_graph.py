"""`referral-router inbox check` on Microsoft Graph, as an admin runs it: the loopback Graph
and token endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.mailfactory import build_email
from tests.servers.graph import GraphServer
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer

MAILBOX = "referrals@council.example"


def run_check(
    tmp_path: Path, graph: GraphServer, tokens: TokenServer
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        ROUTER_STATE_DIR=str(tmp_path / "state"),
        ROUTER_INBOX=f"graph://{MAILBOX}/Inbox",
        ROUTER_RELAY=f"graph://{MAILBOX}",
        ROUTER_GRAPH_URL=graph.base_url,
        ROUTER_OAUTH_PROVIDER="generic",
        ROUTER_OAUTH_TOKEN_URL=tokens.token_url,
        ROUTER_OAUTH_CLIENT_ID=CLIENT_ID,
        ROUTER_OAUTH_CLIENT_SECRET=CLIENT_SECRET,
    )
    return subprocess.run(
        [sys.executable, "-m", "router", "inbox", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_reports_the_mailbox_and_changes_nothing(
    tmp_path: Path, graph_server: GraphServer, token_server: TokenServer
) -> None:
    """It gets a token for Graph, finds the folder and counts it, says the 2 messages there
    would be left alone, that the settle folders are missing and the permissions granted,
    probes the relay without sending, exits 0, and moves, creates and sends nothing."""
    for number in (1, 2):
        graph_server.deliver(MAILBOX, build_email(message_id=f"<c-{number}@school.example>"))
    done = run_check(tmp_path, graph_server, token_server)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Inbox: 2 messages" in out
    assert "ROUTER_IMAP_START=new: would leave the 2 messages there untouched" in out
    assert "Processed: missing (created at the first move)" in out
    assert "Mail.Send: granted" in out and "nothing sent" in out
    assert "school.example" not in out and "Prevent referral" not in out
    assert graph_server.sent == [] and len(graph_server.folder_messages(MAILBOX, "Inbox")) == 2
    assert not [s for s in graph_server.seen if s.method != "GET"]


def test_check_says_why_graph_refuses(
    tmp_path: Path, graph_server: GraphServer, token_server: TokenServer
) -> None:
    """An application without Mail.ReadWrite is told so, with what to grant, and exits 1."""
    graph_server.mailbox(MAILBOX)
    token_server.roles = ["Mail.Send"]
    done = run_check(tmp_path, graph_server, token_server)
    assert done.returncode == 1
    assert "Mail.ReadWrite: MISSING" in done.stdout
    assert "ErrorAccessDenied" in done.stdout and "application access policy" in done.stdout

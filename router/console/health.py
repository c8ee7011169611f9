"""Each node's health and readiness in words, for the console's overview.

This node's comes from its own `/readyz` (ROUTER_HTTP), read over HTTP like a load balancer
reads it, so the console depends on that contract only; the other nodes sharing the journal
are known by their heartbeat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx2

from router.journal.records import NodeSeen

READYZ_TIMEOUT_SECONDS = 2.0

# What each /readyz check means when it is fine, and when it is not.
_WORDS = {
    "inbox": ("Inbox connected", "Inbox not connected"),
    "relay": ("Relay answering", "Relay not answering"),
    "journal": ("Journal writable", "Journal not writable"),
    "analysis_worker": ("Worker ready", "Worker not ready"),
    "event_loop": ("Router responsive", "Router not responsive"),
    "tasks": ("Every task running", "A task keeps failing"),
    "undecided": ("Messages decided in time", "Messages waiting too long for a decision"),
    "oauth": ("Mail account sign-in working", "Mail account sign-in failing"),
}


@dataclass(frozen=True)
class Line:
    """One statement about a node: fine or not, in words, with the reason when not."""

    ok: bool
    text: str
    reason: str = ""


@dataclass(frozen=True)
class NodeHealth:
    """A node's name, whether it is ready, and the lines that say why."""

    name: str
    ready: bool | None  # None: not known from here
    lines: list[Line]


def describe(checks: dict[str, dict[str, Any]]) -> list[Line]:
    """The checks of a /readyz answer as lines of words."""
    lines = []
    for name, check in checks.items():
        good, bad = _WORDS.get(name, (name.replace("_", " ").capitalize() + " fine", name))
        ok = bool(check.get("ok"))
        lines.append(Line(ok, good if ok else bad, "" if ok else _reason(check)))
    return lines


def _reason(check: dict[str, Any]) -> str:
    for key in ("reason", "error", "probe_error", "last_error", "state"):
        if check.get(key):
            return str(check[key])
    if "failing" in check:
        return ", ".join(f"{name}: {item.get('error')}" for name, item in check["failing"].items())
    if check.get("oldest_seconds") is not None:
        return f"the oldest has waited {round(check['oldest_seconds'])} s"
    details = {key: value for key, value in check.items() if key != "ok"}
    return ", ".join(f"{key} {value}" for key, value in details.items())


async def this_node(name: str, http_bind: tuple[str, int] | None) -> NodeHealth:
    """This node's readiness from its /readyz; unknown when ROUTER_HTTP is off."""
    if http_bind is None:
        line = Line(False, "Readiness not known", "the health endpoint is off (ROUTER_HTTP)")
        return NodeHealth(name, None, [line])
    host, port = http_bind
    wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104
    host = wildcard.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"
    try:
        async with httpx2.AsyncClient(timeout=READYZ_TIMEOUT_SECONDS) as client:
            answer = await client.get(url)
        body = answer.json()
    except (httpx2.HTTPError, ValueError) as exc:
        line = Line(False, "Readiness not known", f"/readyz did not answer ({type(exc).__name__})")
        return NodeHealth(name, None, [line])
    return NodeHealth(name, body.get("status") == "ok", describe(body.get("checks", {})))


def other_nodes(nodes: list[NodeSeen], me: str, now: float | None = None) -> list[NodeHealth]:
    """The other routers sharing the journal, by their last heartbeat."""
    now = time.time() if now is None else now
    found = []
    for node in nodes:
        if node.name == me:
            continue
        seconds = max(0, round(now - node.last_heartbeat))
        alive = seconds < 30
        text = f"Last heard from {seconds} s ago"
        found.append(NodeHealth(node.name, None, [Line(alive, text, "" if alive else "silent")]))
    return found

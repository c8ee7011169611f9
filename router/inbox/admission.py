"""Who may open an SMTP session with the listener: an allow-list of client networks, bounds
on concurrent sessions, overall and per client address, and on the DATA bytes held in
memory by all sessions together (each session's own bound is the message size cap)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> tuple[Network, ...]:
    """`ROUTER_INBOX_ALLOW`: comma- or space-separated CIDRs (a bare address is one host).

    Raises:
        ValueError: naming the entry that is not a network.
    """
    networks: list[Network] = []
    for entry in value.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"ROUTER_INBOX_ALLOW: {entry!r} is not a network (CIDR)") from exc
    return tuple(networks)


@dataclass(frozen=True)
class Refusal:
    """Why a connection is turned away, and what the client is told."""

    reason: str  # a metrics label: not_allowed, too_many, too_many_from_client
    reply: bytes


_NOT_ALLOWED = Refusal(
    "not_allowed", b"554 5.7.1 Connections from your network are not accepted\r\n"
)
_TOO_MANY = Refusal("too_many", b"421 4.3.2 Too many connections; try again later\r\n")
_TOO_MANY_FROM_CLIENT = Refusal(
    "too_many_from_client", b"421 4.7.0 Too many connections from your address; try again later\r\n"
)


class Admission:
    """Counts open sessions; `admit` says whether one more may start, `release` ends one;
    `take_data` and `give_data` keep the DATA bytes of all sessions within `data_budget`.

    Args:
        allow: client networks allowed to connect; empty allows every address.
        max_sessions: open sessions in all.
        max_per_client: open sessions from one client address.
        data_budget: DATA bytes all sessions may hold at once (None: no bound).
    """

    def __init__(
        self,
        allow: Sequence[Network],
        max_sessions: int,
        max_per_client: int,
        data_budget: int | None = None,
    ) -> None:
        self.allow = tuple(allow)
        self.max_sessions = max_sessions
        self.max_per_client = max_per_client
        self.open: Counter[str] = Counter()
        self.total = 0
        self.data_budget = data_budget
        self.data_held = 0
        self.sessions: set[Any] = set()  # the admitted sessions (told 421 at shutdown)

    def take_data(self, octets: int) -> bool:
        """Count `octets` more DATA held in memory, or False (nothing counted) when that
        would pass the budget."""
        if self.data_budget is not None and self.data_held + octets > self.data_budget:
            return False
        self.data_held += octets
        return True

    def give_data(self, octets: int) -> None:
        """Give back DATA bytes counted by `take_data` (the message was stored or dropped)."""
        self.data_held = max(0, self.data_held - octets)

    def data_room(self) -> int | None:
        """DATA bytes that may still be taken, or None without a budget."""
        return None if self.data_budget is None else self.data_budget - self.data_held

    def admit(self, peer: Any) -> Refusal | None:
        """Take a session slot for `peer` (a socket's peername), or say why not."""
        host = _host(peer)
        if self.allow and not self._allowed(host):
            return _NOT_ALLOWED
        if self.total >= self.max_sessions:
            return _TOO_MANY
        if self.open[host] >= self.max_per_client:
            return _TOO_MANY_FROM_CLIENT
        self.open[host] += 1
        self.total += 1
        return None

    def release(self, peer: Any) -> None:
        """Give back the slot `admit` took for `peer`."""
        host = _host(peer)
        self.total -= 1
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)


def _host(peer: Any) -> str:
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return str(peer)

"""Free loopback ports that cannot collide between pytest-xdist workers or with outgoing
connections.

Each worker (`PYTEST_XDIST_WORKER`, e.g. `gw2`) takes ports from its own block below the
ephemeral range (Linux: 32768 and up), so no other worker picks the same port, and no client
socket of this machine (the 2,000 idle connections of a listener test, a daemon's own
connections) can take a port between the moment it was found free and the moment a server
binds it. Not `random`: pytest-randomly reseeds it before every test, so every test (and
every worker) would draw the same "random" ports.
"""

from __future__ import annotations

import itertools
import os
import socket

_FIRST = 20000
_LAST = 32000  # below the ephemeral range


def worker_number() -> int:
    """This pytest-xdist worker's number (0 for gw0, or without xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw") or 0)


def worker_count() -> int:
    """How many pytest-xdist workers run (1 without xdist)."""
    return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def _block() -> tuple[int, int]:
    size = (_LAST - _FIRST) // max(worker_count(), worker_number() + 1)
    return _FIRST + worker_number() * size, size


_START, _SIZE = _block()
# Start at a different place in the block in each process: two test runs side by side on
# one machine (two checkouts) then rarely probe the same ports.
_counter = itertools.count(os.getpid() % _SIZE)


def free_port() -> int:
    """A TCP port on 127.0.0.1, free now, from this worker's block (servers such as aiosmtpd
    or PostgreSQL need the number before they bind).

    Raises:
        RuntimeError: every port of the block is taken.
    """
    for _ in range(_SIZE):
        port = _START + next(_counter) % _SIZE
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_START}..{_START + _SIZE - 1}")

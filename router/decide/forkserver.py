"""Starts the forkserver that analysis workers are forked from, with the readers preloaded.

It is a fresh interpreter that imports the readers (pypdf, python-docx, lxml, pydantic: about
0.5 s) once; every worker forked from it starts with them loaded. `serve` starts it first
thing, before importing the daemon, so that on a machine with two cores both imports run at
once and a warm worker is ready by the time the inbox opens. This module imports nothing
heavy itself.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver

# The daemon itself imports none of the readers: only its workers read attachments. Outlook
# items (.msg) are the exception: extract-msg, with the BeautifulSoup it brings, took 0.15 to
# 0.2 s of CPU at every start for an attachment few referrals have, so a worker loads it when
# its first .msg arrives (within that message's time limit), and each worker without one is
# that much smaller.
PRELOAD = ("router.decide.readers",)


def preload() -> None:
    """Have the forkserver, when it starts, import the readers (no effect once it runs)."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))


def start() -> None:
    """Launch the forkserver now; it imports the readers while the caller goes on.

    Returns as soon as the process is spawned: the first worker to be forked waits, in the
    forkserver's listen queue, until the imports are done.
    """
    preload()
    forkserver.ensure_running()

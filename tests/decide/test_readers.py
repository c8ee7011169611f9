"""Workers fork from a forkserver that loaded the readers with the cyclic garbage collector
off and froze them (router/decide/readers.py): a worker collects as usual, without scanning
what it inherited."""

from __future__ import annotations

import gc
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

from router.decide import forkserver


def _collector() -> tuple[bool, int, bool]:
    return gc.isenabled(), gc.get_freeze_count(), "pypdf" in sys.modules


def test_a_worker_has_the_readers_frozen_and_collects() -> None:
    forkserver.preload()
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        enabled, frozen, readers_loaded = pool.submit(_collector).result(timeout=60)
    assert enabled
    assert readers_loaded
    assert frozen > 10_000  # the readers' objects (about 100 000), not a stray few


def test_the_tests_themselves_run_with_the_collector_on() -> None:
    """tests/conftest.py loads the test modules with it off and turns it on before the first
    test: a test that finds it off would hide a leak of cycles."""
    assert gc.isenabled()

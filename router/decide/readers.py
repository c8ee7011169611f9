"""The readers a worker needs, loaded once by the process that forks workers (the forkserver,
or `route` after its first file), as Python's documentation advises for a process that forks
without exec: the cyclic garbage collector off while they load, their objects then frozen.

Frozen, the modules, classes and schemas that every worker inherits are never scanned by a
worker's collections, and never written to by them either, so their pages stay shared with
the forkserver. Loading them with collections off saves the collector passes over a heap that
only grows while they load (about a fifth of the import's CPU time).

`.msg` items load in the worker that meets one (`router.decide.forkserver` says why).
"""

from __future__ import annotations

import gc

gc.disable()
try:
    from router.core.forms import docx, pdf, read  # noqa: F401
    from router.core.mail import outlook  # noqa: F401
    from router.decide import worker  # noqa: F401
finally:
    gc.freeze()
    gc.enable()

"""Work spread over forked processes: the compile of a big repository by ``validate``,
``plan`` and ``apply`` (one process per core the command may use).

A fork copies the parent's memory, locks included, so it is safe only while one thread runs:
with more (a controller's HTTP server, a command's AWS readers), or where the platform cannot
fork, the work runs in this process. ``RECONCILER_COMPILE_PROCESSES`` sets the number of
processes (1: never fork); the default is the cores this process may run on.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

PROCESSES_VARIABLE = "RECONCILER_COMPILE_PROCESSES"
T = TypeVar("T")


def processes(environ: Any = None) -> int:
    """How many processes to spread work over."""
    asked = str((os.environ if environ is None else environ).get(PROCESSES_VARIABLE, "")).strip()
    if asked.isdigit() and int(asked) > 0:
        return int(asked)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def forked_map(function: Callable[[Any], T], items: list[Any]) -> list[T]:
    """``[function(i) for i in items]``, in order, over forked processes where that is safe.
    ``function`` must be a module-level function; what it needs beyond its item it finds in
    module state set before the call (a fork inherits it, nothing is sent)."""
    workers = min(processes(), len(items))
    if workers <= 1 or threading.active_count() > 1 \
            or "fork" not in multiprocessing.get_all_start_methods():
        return [function(item) for item in items]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(function, items)

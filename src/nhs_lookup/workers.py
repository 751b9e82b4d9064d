"""Worker processes that never outlive their parent.

A ``ProcessPoolExecutor`` worker blocks on its task queue forever once the parent is gone (it holds
the queue's write end itself, so it never sees end-of-file): after ``kill -9`` of ``nhs-lookup train``
or of the server, each worker would stay alive holding its engine (~340 MB). Pool initializers call
:func:`exit_with_parent`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 1.0


def _exit_if_orphaned(parent_pid: int, interval: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent is gone (even kill -9): nothing will ever read our results
        time.sleep(interval)


def exit_with_parent(parent_pid: int, interval: float = PARENT_POLL_S) -> None:
    """Make this worker process end when *parent_pid* dies, however it dies (kill -9 included).

    On Linux the kernel sends SIGTERM at once (``prctl(PR_SET_PDEATHSIG)`` through ctypes); everywhere a
    daemon thread also polls ``os.getppid()`` every *interval* seconds (portable fallback, and it covers
    a parent that died before the prctl call)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:  # no libc symbol: the polling thread still works
            log.debug("prctl unavailable (%s); relying on parent polling", exc)
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(
        target=_exit_if_orphaned, args=(parent_pid, interval), name="exit-with-parent", daemon=True
    ).start()

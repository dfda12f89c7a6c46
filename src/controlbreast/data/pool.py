"""Worker processes that die with the run that started them.

A run killed with SIGKILL cannot stop its pool, and on Linux its workers would keep decoding into a
folder nobody will ever swap in. Each worker asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); elsewhere this is skipped and workers end when their task queue
closes, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Pool initializer: SIGKILL this process when ``parent`` dies (Linux; a no-op elsewhere).

    The parent may already be gone before the request is made, so it is checked afterwards.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` whose processes die with this one."""
    return ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))

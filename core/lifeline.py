"""Helper processes die with the process that started them, whatever killed it.

A ``kill -9`` of `extract` (the OOM killer's way) used to leave its worker forkserver, the decode
workers and the resource tracker alive for good: 4 processes and ~1.7 GB per kill on the tiny
preset. Each helper asks the kernel for a signal when its parent dies (``PR_SET_PDEATHSIG``, Linux),
and checks right after asking that the parent is still the one it was forked by, which closes
the window between fork and prctl. The chain main -> forkserver -> workers then unwinds by itself;
the resource tracker exits once the last of them has closed its pipe.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(expected_parent: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Have this process receive ``sig`` when its parent dies; exit now if it has already died.

    ``expected_parent`` is the pid this process was started by, when the caller knows it; without
    it, a parent that died before this call is only caught when this process was re-parented to
    init. Returns False where the kernel has no such request (not Linux): then nothing is set.
    PR_SET_PDEATHSIG follows the parent *thread*; every helper here is started by the thread that
    owns it for its whole life (the main thread, or the forkserver's only thread).
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    parent = os.getppid()
    if parent == 1 or (expected_parent is not None and parent != expected_parent):
        os._exit(1)  # the parent died before the request took effect: nothing left to help
    return True

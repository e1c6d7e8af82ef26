"""Imported only as a preload of the decode workers' forkserver: the server dies with its parent.

Python's forkserver exits when its "alive" pipe reaches EOF, but it hands the write end of that
pipe to every worker it forks, and the workers in turn only watch the server: after a kill -9 of
the main process each keeps the other alive for good. Importing this module inside the server
(and only there: see the stack check) asks the kernel to kill the server with its parent,
and every worker with the server from the moment it is forked.
"""

from __future__ import annotations

import functools
import os
import sys
from multiprocessing import forkserver

from core.lifeline import die_with_parent


def _imported_by_forkserver() -> bool:
    """True when forkserver.main is on the stack, i.e. this import is the server's preload."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


def _child_dies_with_server(server: int) -> None:
    die_with_parent(expected_parent=server)


if _imported_by_forkserver():
    die_with_parent()
    # Every worker, right after the server forks it: still unpickling its dataset is no way out.
    os.register_at_fork(after_in_child=functools.partial(_child_dies_with_server, os.getpid()))

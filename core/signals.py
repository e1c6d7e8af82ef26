"""SIGTERM stops a command the way Ctrl-C does, and a command takes one stop signal, not two.

SLURM, Kubernetes and ``timeout`` stop a job with SIGTERM, whose default action kills Python on the spot:
no lock released, no temp folder removed, no word on stderr. Within ``stop_signals`` it raises
``Terminated``, a KeyboardInterrupt, so every cleanup that Ctrl-C runs (``finally`` blocks, ``except
KeyboardInterrupt``) runs for it too. Once one stop signal is taken, a second is ignored: a second
Ctrl-C during that cleanup would otherwise break it off with a traceback from whatever exit handler
(torch's, multiprocessing's) it landed in. A third ends the process at once (``FORCE_AFTER``): a cleanup
that hangs, or a first signal Python lost (raised inside fork's hooks, where the exception is printed and
dropped), must not leave a command no key stops. Every writer is crash-safe, as after a kill.

Imports nothing heavy: the CLI installs it before the stage imports torch.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORCE_AFTER = 3  # the stop signal that ends the process without cleanup


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: the same cleanup runs, and the CLI can still
    tell the two apart (its exit status and message)."""


@contextmanager
def stop_signals(*, keep_ignoring: bool = False) -> Iterator[None]:
    """Within: SIGINT raises KeyboardInterrupt, SIGTERM raises Terminated, and after either, both are
    ignored, as are children's exits (SIGCHLD). The previous handlers come back on exit; with
    ``keep_ignoring`` not once a signal was taken, for a process that exits next and still runs exit
    handlers a second Ctrl-C would break into.

    Outside the main thread (where Python cannot set handlers) it changes nothing. A child forked while it
    is in force (a DataLoader worker, a forkserver helper) inherits the handler: there a signal does what
    the previous handler did, so a worker still dies quietly and only this process says anything.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    displaced: dict[int, Any] = {}
    taken = 0

    def later(signum: int, frame: FrameType | None) -> None:
        """A handler, not SIG_IGN: a signal already caught but not yet handled would then print 'Signal N
        ignored due to race condition' with a traceback."""
        nonlocal taken
        taken += 1
        if taken >= FORCE_AFTER:
            os.write(2, b"stopped without cleanup\n")
            os._exit(128 + signum)

    def take(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        if os.getpid() != owner:
            _as_before(signum, frame, previous)
            return
        taken = 1
        for s in STOP_SIGNALS:
            signal.signal(s, later)
        # Workers dying of the same signal (``timeout`` and SLURM signal every process) are no error:
        # torch's SIGCHLD handler would raise "DataLoader worker ... killed by signal" into the cleanup.
        displaced[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _ignore)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    for s in STOP_SIGNALS:
        signal.signal(s, take)
    try:
        yield
    finally:
        if displaced and keep_ignoring:
            # Through the exit handlers: the kernel's ignore, since at exit Python resets a handler of its
            # own (``later``) to the default action, and a late second Ctrl-C would kill the process.
            for s in STOP_SIGNALS:
                signal.signal(s, signal.SIG_IGN)
        else:
            for s, handler in {**previous, **displaced}.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Taken, and nothing done: the command is already stopping."""


def _as_before(signum: int, frame: FrameType | None, previous: dict[int, Any]) -> None:
    """In a forked child: put the handlers back as they were before the fork's parent set its own, and
    act on this signal as they would have (Python's KeyboardInterrupt, or the default action)."""
    for s, handler in previous.items():
        signal.signal(s, signal.SIG_DFL if handler is None else handler)
    handler = previous[signum]
    if callable(handler):
        handler(signum, frame)
    elif handler != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # the default action (for SIGTERM: the quiet death it always was)


@contextmanager
def held_from_children(signum: int = signal.SIGINT) -> Iterator[None]:
    """Processes started within never receive ``signum``: it is blocked while they are started, and a
    child keeps its parent's blocked set through fork and exec (what multiprocessing's resource tracker
    does). A signal sent meanwhile waits and reaches this process on exit; none is lost.

    For worker processes that the parent stops itself: a terminal's Ctrl-C goes to every process in its
    foreground group, and a worker caught importing torch or waiting for work would print a traceback.
    """
    from multiprocessing import resource_tracker

    # The tracker, started on first need, unblocks SIGINT and SIGTERM once it runs: started first, it
    # cannot undo the block for the processes after it.
    resource_tracker.ensure_running()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

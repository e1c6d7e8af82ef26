"""A warm interpreter that forks CLI runs, so each kill -9 trial does not pay ~6 s of imports.

Run as ``python -m faults.zygote`` by ``faults.harness.Zygote``. The children it forks call
``pipeline.main(argv)`` (exactly what ``python pipeline.py ARGV`` calls after its imports) or a
``module:function``, in a fresh process with its own pid, stdout/stderr redirected to a log file.
An uncaught exception prints its traceback and exits 1, and native libraries shut down as in a
real process (a crash at exit shows as a signal), so exit-status and "no Traceback" checks stay
meaningful.

Protocol, one JSON object per line. Requests on stdin::

    {"op": "spawn", "id": n, "argv": [...] | "call": "mod:func", "args": [...], "log": path,
     "kill_after": seconds | null, "fsize": bytes | null, "env": {...}}
    {"op": "signal", "pid": pid, "sig": signum}

Replies on a private copy of stdout: ``{"ready": true, "import_seconds": s}``,
``{"id": n, "pid": pid}``, and when a child ends
``{"pid": pid, "status": exitcode, "killed": bool, "elapsed": s}``. A watcher thread per child
reaps it and does the timed SIGKILL under one lock with ``signal``, so no signal can reach a reaped
(and possibly reused) pid.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import json
import os
import resource
import signal
import sys
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_reply_fd = os.dup(1)
os.dup2(2, 1)  # libraries that print while importing must not corrupt the protocol
_reply = os.fdopen(_reply_fd, "w", buffering=1)
_lock = threading.Lock()
_reaped: dict[int, bool] = {}


def _send(obj: dict) -> None:
    with _lock:
        _reply.write(json.dumps(obj) + "\n")


def _warm_imports() -> None:
    """Everything a CLI run would import, and the libraries encoder builds import lazily."""
    import albumentations  # noqa: F401
    import av  # noqa: F401
    import cv2  # noqa: F401
    import h5py  # noqa: F401
    import timm  # noqa: F401
    import transformers  # noqa: F401
    import ultralytics  # noqa: F401

    import cache.assemble  # noqa: F401
    import cache.verify  # noqa: F401
    import extract.run  # noqa: F401
    import pipeline  # noqa: F401
    import train.evaluate  # noqa: F401
    import train.fit  # noqa: F401


def _child(req: dict) -> None:
    """Runs in the forked process and never returns: it ends the way ``python pipeline.py`` would.

    An uncaught exception prints its traceback and exits 1, as the interpreter does. The exit runs
    Python's atexit handlers and then the C library's exit, so native libraries shut down as in a
    real process (HDF5's shutdown crashed after a failed write: that must show as a signal here);
    only Python's module teardown is skipped, which in a forked child costs seconds of copy-on-write.
    """
    fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    rc = 1
    try:
        os.environ.update(req.get("env") or {})
        if req.get("fsize"):
            # A full disk, emulated: writes past this many bytes per file fail with EFBIG.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
        if "argv" in req:
            import pipeline

            sys.argv = ["pipeline.py", *req["argv"]]
            rc = pipeline.main(req["argv"])
        else:
            module, name = req["call"].split(":")
            getattr(importlib.import_module(module), name)(*req.get("args", []))
            rc = 0
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            rc = e.code or 0
        else:
            print(e.code, file=sys.stderr)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        ctypes.CDLL(None).exit(int(rc))


def _watch(pid: int, started: float, kill_after: float | None) -> None:
    killed = False
    while True:
        with _lock:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                _reaped[pid] = True
                break
            if kill_after is not None and not killed and time.monotonic() - started >= kill_after:
                os.kill(pid, signal.SIGKILL)
                killed = True
        time.sleep(0.002)
    code = os.waitstatus_to_exitcode(status)
    _send(
        {"pid": pid, "status": code, "killed": code == -signal.SIGKILL, "elapsed": time.monotonic() - started}
    )


def main() -> None:
    started = time.monotonic()
    _warm_imports()
    _send({"ready": True, "import_seconds": time.monotonic() - started})
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "signal":
            with _lock:
                if not _reaped.get(req["pid"], True):
                    os.kill(req["pid"], req["sig"])
            continue
        with _lock:  # no watcher may reap (or signal) while the new pid is being registered
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child(req)
            _reaped[pid] = False
        threading.Thread(target=_watch, args=(pid, started, req.get("kill_after")), daemon=True).start()
        _send({"id": req["id"], "pid": pid})


if __name__ == "__main__":
    main()
    os._exit(0)  # stdin closed: the suite is done; skip seconds of module teardown

"""Stop signals as a user sees them: SIGTERM (SLURM, Kubernetes, ``timeout``) runs Ctrl-C's cleanup and says
so in one line, a second Ctrl-C during that cleanup prints nothing more, and a parallel sweep stops as one.

The commands run as real subprocesses in their own session, so a signal can go to the whole process group
as a terminal's Ctrl-C does; each is sent once the command is seen at work, not after a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from train_fixtures import write_synthetic_cache

import pipeline
from core.signals import Terminated, held_from_children, stop_signals

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1"}
TRAIN_HINT = pipeline.AFTER_INTERRUPT["train"]
SWEEP_HINT = pipeline.AFTER_INTERRUPT["sweep"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    return write_synthetic_cache(root, counts={"train": 24, "val": 6, "test": 0}, frames=4, key="sig00001")


@pytest.fixture(scope="module")
def long_epochs(tmp_path_factory) -> Path:
    """Epochs of 60 small batches: a signal sent just after an epoch line lands amid its batches, not in the
    DataLoader's fork of its workers (an exception raised in fork's hooks is printed and lost, Ctrl-C's
    too)."""
    root = tmp_path_factory.mktemp("long")
    return write_synthetic_cache(root, counts={"train": 240, "val": 6, "test": 0}, frames=4, key="sig00002")


class Command:
    """``pipeline.py ARGS`` in its own session; stderr read on a thread so a test can wait for a line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "pipeline.py"), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=ENV,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_until(self, seen: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not seen():
            assert self.proc.poll() is None, f"ended first ({self.proc.returncode}): {self.lines}"
            assert time.monotonic() < deadline, f"not seen in {timeout} s: {self.lines}"
            time.sleep(0.05)

    def wait_for_line(self, text: str) -> None:
        self.wait_until(lambda: any(text in line for line in self.lines))

    def signal(self, signum: int, *, group: bool = False) -> None:
        """``signum`` to the command, or to its whole process group (a terminal's Ctrl-C, ``timeout``)."""
        (os.killpg if group else os.kill)(self.proc.pid, signum)

    def finish(self, timeout: float = 30.0) -> tuple[int, list[str]]:
        """Exit status and stderr lines, the progress bars' left out."""
        status = self.proc.wait(timeout)
        self._reader.join(5)
        return status, [line for line in self.lines if line.strip() and "\r" not in line]


def _train(cache: Path, out: Path, *extra: str) -> Command:
    return Command("train", "--cache", str(cache), "--out", str(out), "--epochs", "500", "--patience", "0",
                   "--device", "cpu", *extra)  # fmt: skip


def _sweep(cache: Path, out: Path) -> Command:
    """Three runs two at a time: one stays queued while the first two train."""
    args = [
        "--epochs",
        "500",
        "--patience",
        "0",
        "--device",
        "cpu",
        "--parallel",
        "2",
        "--grid",
        "seed=0,1,2",
    ]
    return Command("sweep", "--cache", str(cache), "--out", str(out), "--name", "s", *args)


def _no_traceback(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback" not in text and "Exception ignored" not in text, text


def test_sigterm_stops_train_like_ctrl_c_with_one_line_and_status_143(cache, tmp_path):
    """What a preempted job sees: the interrupted-run hint, said as 'terminated', and 128 + SIGTERM."""
    cmd = _train(cache, tmp_path)
    cmd.wait_for_line("epoch   1")
    cmd.signal(signal.SIGTERM)
    status, lines = cmd.finish()
    _no_traceback(lines)
    assert status == 143 == pipeline.EXIT_TERMINATED, lines
    assert lines[-1] == f"terminated; {TRAIN_HINT}", lines
    assert sum("terminated" in line for line in lines) == 1, lines


def test_sigterm_to_the_group_leaves_dataloader_workers_quiet(long_epochs, tmp_path):
    """``timeout`` and SLURM signal every process: the DataLoader workers (forked, so they inherit the
    handler) die quietly and the command alone says it was terminated, once."""
    cmd = _train(long_epochs, tmp_path, "--workers", "2", "--batch-size", "4")
    cmd.wait_for_line("epoch   1")
    time.sleep(0.3)  # past the fork of the next epoch's workers
    cmd.signal(signal.SIGTERM, group=True)
    status, lines = cmd.finish()
    _no_traceback(lines)
    assert status == 143, lines
    assert [line for line in lines if "terminated" in line or "killed" in line] == [
        f"terminated; {TRAIN_HINT}"
    ], lines


def test_a_second_ctrl_c_during_cleanup_prints_no_traceback(long_epochs, tmp_path):
    """An impatient user: Ctrl-C twice. The second one, landing in the first one's cleanup or in the
    interpreter's exit handlers (torch's, multiprocessing's), is ignored instead of raising there."""
    cmd = _train(long_epochs, tmp_path, "--workers", "2", "--batch-size", "4")
    cmd.wait_for_line("epoch   1")
    time.sleep(0.3)  # past the fork of the next epoch's workers
    cmd.signal(signal.SIGINT, group=True)
    time.sleep(0.05)
    cmd.signal(signal.SIGINT, group=True)
    status, lines = cmd.finish()
    _no_traceback(lines)
    assert status == 130 == pipeline.EXIT_INTERRUPTED, lines  # not killed by the second SIGINT (-2)
    assert lines[-1] == f"interrupted; {TRAIN_HINT}", lines


def _spawned_workers(pid: int) -> list[int]:
    """The multiprocessing workers ``pid`` started (the resource tracker left out)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += (task / "children").read_text().split()
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_ctrl_c_on_a_parallel_sweep_says_one_line_while_its_workers_start(cache, tmp_path):
    """Ctrl-C while ``--parallel`` workers are still importing torch: they printed a traceback each. Now
    they never see SIGINT; the sweep stops them and says its one line, and the queued run never starts."""
    cmd = _sweep(cache, tmp_path)
    cmd.wait_until(lambda: len(_spawned_workers(cmd.proc.pid)) >= 2)
    started = time.monotonic()
    cmd.signal(signal.SIGINT, group=True)
    status, lines = cmd.finish()
    _no_traceback(lines)
    assert status == 130, lines
    assert lines == [f"interrupted; {SWEEP_HINT}"], lines
    assert time.monotonic() - started < 20, "the sweep went on training after Ctrl-C"
    assert not (tmp_path / "s" / "seed=2").exists(), "the queued run started after Ctrl-C"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("group", [False, True], ids=["to-the-sweep", "to-the-group"])
def test_sigterm_on_a_parallel_sweep_mid_training_stops_every_run(cache, tmp_path, group):
    """SIGTERM to the sweep alone (Kubernetes) or to every process (``timeout``) while both workers train:
    the sweep ends its workers instead of waiting for their trainings and the queued one, and says so once."""
    cmd = _sweep(cache, tmp_path)
    cmd.wait_for_line("epoch   2")
    workers = _spawned_workers(cmd.proc.pid)
    started = time.monotonic()
    cmd.signal(signal.SIGTERM, group=group)
    status, lines = cmd.finish()
    _no_traceback(lines)
    assert status == 143, lines
    assert [line for line in lines if not line.startswith("[seed=")] == [f"terminated; {SWEEP_HINT}"], lines
    assert time.monotonic() - started < 20, "the sweep went on training after SIGTERM"
    assert not (tmp_path / "s" / "seed=2").exists(), "the queued run started after SIGTERM"
    assert workers and not [p for p in workers if _running(p)], "left a worker behind"


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited one waiting to be reaped is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_signals_raise_once_then_ignore_and_restore_the_handlers():
    """In-process (tests and notebooks call main()): SIGTERM raises Terminated, a KeyboardInterrupt, so
    Ctrl-C's cleanup runs for it; a later signal is ignored; the caller's handlers come back after."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Terminated), stop_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises here
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # during cleanup: ignored
            time.sleep(0.05)
    assert issubclass(Terminated, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_third_ctrl_c_ends_a_command_whose_first_was_lost():
    """Python drops a KeyboardInterrupt raised inside fork's hooks (a DataLoader starting its workers): the
    command carries on with stop signals taken. The second Ctrl-C is still ignored (it protects a
    cleanup), the third ends the process at once, with Ctrl-C's status."""
    code = (
        "import os, signal, sys, time\n"
        "from core.signals import stop_signals\n"
        "with stop_signals():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT); time.sleep(1)\n"
        "    except KeyboardInterrupt:\n"
        "        print('lost', flush=True)  # as fork's hooks would drop it\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "lost"
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None  # the second: ignored
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(10) == 130
    assert proc.stderr is not None and proc.stderr.read().strip() == "stopped without cleanup"


def test_a_child_forked_within_dies_of_sigterm_quietly():
    """A forked helper inherits the handler: SIGTERM there is the quiet death it always was, not a second
    'terminated' from a process that never ran the command."""
    read, write = os.pipe()
    with stop_signals():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(read)
            os.write(write, b"x")
            time.sleep(30)
            os._exit(0)
        os.close(write)
        os.read(read, 1)
        os.close(read)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_processes_started_within_held_from_children_never_see_sigint():
    """Spawned workers start with SIGINT blocked (the resource tracker starts first, or it would unblock it
    again), and the signal blocked meanwhile in this process is not lost."""
    code = "import signal; print(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))"
    with held_from_children(signal.SIGINT):
        inside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert inside.stdout.strip() == "True"
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_main_puts_the_callers_handlers_back(cache):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert pipeline.main(["cache", "info", str(cache)]) == 0
    assert {s: signal.getsignal(s) for s in before} == before

#!/usr/bin/env python
"""Command line of the gesture toolkit: parse arguments, build a stage config, call that stage.

Exit status: 0 success, 2 user error (one line on stderr), 1 bug (traceback).
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import signal
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Decode/augment workers share the cores with the encoders; busy-waiting OpenMP threads then slow
# compute down many-fold. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# ultralytics is a model library here (the hand detector's network and loader): its console logging
# (on first import a settings-file notice, three lines on stdout) would mix into the commands' stdout,
# whose last line scripts read. YOLO_VERBOSE=True brings it back. Read when ultralytics is imported.
os.environ.setdefault("YOLO_VERBOSE", "False")

from cli.config_args import add_config_args, build_config  # noqa: E402
from core.errors import UserError  # noqa: E402
from core.signals import Terminated, stop_signals  # noqa: E402


@dataclass
class DemoDataConfig:
    out: Path = field(default=Path("artifacts/demo-data"), metadata={"help": "where to write the dataset"})
    width: int = field(default=160, metadata={"help": "frame width in pixels"})
    height: int = field(default=120, metadata={"help": "frame height in pixels"})
    seed: int = field(default=0, metadata={"help": "generator seed (the dataset is deterministic)"})


@dataclass
class CachePathConfig:
    path: Path = field(
        default=Path("artifacts/cache"), metadata={"help": "cache root (ls) or one cache (info, verify)"}
    )


def cmd_extract(cfg) -> int:
    from core.ranks import is_main_process
    from extract.run import run

    result = run(cfg)
    if is_main_process():  # under torchrun, rank 0 alone prints the cache dir
        print(result.key_dir)
    return 0


def cmd_train(cfg) -> int:
    from core.ranks import is_main_process
    from train.fit import run_train
    from train.runtime import retain_freed_memory

    retain_freed_memory()  # the process is ours: keep batch-sized blocks instead of re-faulting them
    if cfg.folds:
        from train.folds import run_folds

        run_dir = run_folds(cfg)
    else:
        run_dir = run_train(cfg)
    if is_main_process():  # under torchrun, rank 0 alone prints the run dir
        print(run_dir)
    return 0


def cmd_evaluate(cfg) -> int:
    from train.evaluate import run_evaluate

    run_evaluate(cfg)
    return 0


def cmd_predict(cfg) -> int:
    from train.predict import run_predict

    run_predict(cfg)
    return 0


def cmd_runs(cfg) -> int:
    from train.runs import compare_runs

    print(compare_runs(cfg))
    return 0


def cmd_sweep(cfg) -> int:
    from core.ranks import is_main_process
    from train.runtime import retain_freed_memory
    from train.sweep import run_sweep

    if cfg.parallel <= 1:  # the runs train in this process; with --parallel N it only decodes and waits
        retain_freed_memory()
    sweep_dir = run_sweep(cfg)
    if is_main_process():
        print(sweep_dir)
    return 0


def cmd_tune(cfg) -> int:
    from train.runtime import retain_freed_memory
    from train.tune import run_tune

    retain_freed_memory()
    print(run_tune(cfg))
    return 0


def cmd_demo_data(cfg: DemoDataConfig) -> int:
    from data.demo import write_demo_dataset

    print(write_demo_dataset(cfg.out, size=(cfg.width, cfg.height), seed=cfg.seed))
    return 0


def cmd_demo(cfg) -> int:
    from demo import run_demo

    print(run_demo(cfg))
    return 0


def cmd_cache_ls(cfg: CachePathConfig) -> int:
    from cache.inspect import cache_ls

    print(cache_ls(cfg.path))
    return 0


def cmd_cache_info(cfg: CachePathConfig) -> int:
    from cache.inspect import cache_info

    print(cache_info(cfg.path))
    return 0


def cmd_cache_verify(cfg: CachePathConfig) -> int:
    from cache.verify import not_verifiable, verify_cache, verify_notes

    if (reason := not_verifiable(cfg.path)) is not None:  # not damage: nothing to delete
        print(f"error: {reason}", file=sys.stderr)
        return 2
    faults = verify_cache(cfg.path)
    for fault in faults:
        print(f"FAULT {fault}")
    if faults:
        print(
            f"error: {len(faults)} fault(s) in {cfg.path}; delete the damaged files named above and re-run "
            "the same `pipeline.py extract` command (split files are re-assembled from shards/, missing "
            "sequences recomputed), or delete the folder to start over",
            file=sys.stderr,
        )
        return 2
    for note in verify_notes(cfg.path):
        print(f"NOTE {note}")
    print(f"OK {cfg.path}")
    return 0


def _commands() -> list[tuple[str, str, type, Callable]]:
    """(name, help, config class, handler) for every subcommand; imports stay light for --help."""
    from cli.show import COMMAND as SHOW
    from demo import DemoConfig
    from extract.config import ExtractConfig
    from train.config import EvaluateConfig, PredictConfig, RunsConfig, TrainConfig
    from train.experiment_config import SweepConfig, TuneConfig

    return [
        ("extract", "extract features of a dataset into the HDF5 cache", ExtractConfig, cmd_extract),
        ("train", "train the recognition heads on a cache", TrainConfig, cmd_train),
        ("evaluate", "evaluate a checkpoint on a split of its cache", EvaluateConfig, cmd_evaluate),
        ("predict", "classify frame folders or video files with a checkpoint", PredictConfig, cmd_predict),
        ("runs", "compare training runs, grouped over seeds and folds", RunsConfig, cmd_runs),
        (
            "sweep",
            "train every combination of a grid of train options over one cache",
            SweepConfig,
            cmd_sweep,
        ),
        ("tune", "Optuna hyper-parameter search over one cache (resumable)", TuneConfig, cmd_tune),
        SHOW,
        ("demo-data", "write the synthetic gesture dataset", DemoDataConfig, cmd_demo_data),
        (
            "demo",
            "demo data -> extract (tiny, random weights) -> train -> evaluate, offline",
            DemoConfig,
            cmd_demo,
        ),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, cls, handler in _commands():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
        )
        add_config_args(p, cls)
        p.set_defaults(config_cls=cls, handler=handler)
    cache = sub.add_parser("cache", help="list, describe or verify caches")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    for name, help_text, handler in [
        ("ls", "list the caches under a cache root", cmd_cache_ls),
        ("info", "describe one cache: config, encoders, layout, counts, size", cmd_cache_info),
        ("verify", "re-read every chunk of a cache and check it; exit 2 on any fault", cmd_cache_verify),
    ]:
        p = cache_sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "path",
            type=Path,
            nargs="?" if name == "ls" else None,
            default=Path("artifacts/cache") if name == "ls" else None,
            help="cache root (default artifacts/cache)" if name == "ls" else "one cache directory",
        )
        if name == "ls":  # the root is extract's --cache-dir, so that spelling works here too
            p.add_argument("--cache-dir", type=Path, help="the cache root, as extract --cache-dir names it")
        p.set_defaults(handler=handler, config_cls=None)
    return parser


def one_line(error: BaseException) -> str:
    """The CLI's error line. A UserError raised in a DataLoader worker comes back wrapped in the
    worker's traceback text; only its own message (the last line) is the user's business."""
    text = str(error).strip()
    if "Traceback (most recent call last)" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split()) or type(error).__name__


# What Ctrl-C leaves, by command: extract keeps its shards, sweep its finished runs, tune its study.
AFTER_INTERRUPT = {
    "extract": "re-run the same command to resume",
    "sweep": "re-run the same command to resume (finished runs are kept)",
    "tune": "re-run the same command to resume (the study keeps its trials)",
    "demo": "re-run the same command (the extraction resumes where it stopped)",
    "train": "a train run does not resume: run the command again for a new run (with --name, remove that "
    "run folder first)",
}
# `train --folds` is the exception: its finished folds are kept, and the same command finds its folder
# again (named by --name or by the options).
AFTER_FOLDS_INTERRUPT = (
    "re-run the same command to resume (finished folds are kept; an interrupted fold starts over)"
)


def after_interrupt(command: str, cfg: Any) -> str | None:
    """What Ctrl-C leaves for this command and config: `train --folds` resumes like a sweep, a plain train
    run does not."""
    if command == "train" and getattr(cfg, "folds", None):
        return AFTER_FOLDS_INTERRUPT
    return AFTER_INTERRUPT.get(command)


# A path the user gave that cannot be used (a file where a folder belongs, no permission): one line.
PATH_ERRNOS = {
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENAMETOOLONG,
}


def path_error(error: OSError) -> str | None:
    """The error line for an output path that cannot be written, or None for any other OSError."""
    if error.errno not in PATH_ERRNOS or not error.filename:
        return None
    return (
        f"{error.filename}: {error.strerror}; choose a path you can write (a folder where a folder belongs, "
        "a file name where a file belongs)"
    )


def memory_error(error: RuntimeError | MemoryError) -> str | None:
    """The error line for an allocation that failed (torch's CPU or CUDA allocator, NumPy), or None."""
    text = one_line(error) or type(error).__name__
    oom = isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
    if not oom and "can't allocate memory" not in text:
        return None
    return f"out of memory ({text[:200]}); ask for less: a smaller --batch-size (train: or --hidden)"


ROOT = Path(__file__).resolve().parent
_python_showwarning = warnings.showwarning
_said: set[str] = set()


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """The product's own warnings (an unreadable shard skipped) as one ``warning:`` line each, said once
    per run, not Python's two lines with the source; libraries' warnings print as Python prints them."""
    if not str(filename).startswith(str(ROOT)) or "site-packages" in str(filename):
        _python_showwarning(message, category, filename, lineno, file, line)
        return
    text = " ".join(str(message).split())
    if text not in _said:
        _said.add(text)
        print(f"warning: {text}", file=sys.stderr if file is None else file)


# The exit status of a command whose stdout reader went away (`| head`): what a SIGPIPE death reports.
EXIT_CLOSED_STDOUT = 128 + 13


# The exit status of a command stopped by Ctrl-C or SIGTERM: what a death by that signal reports (128 + N).
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


def main(argv: list[str] | None = None, *, exiting: bool = False) -> int:
    """Run one command; return its exit status. ``exiting``: the interpreter exits once this returns (the
    script): after Ctrl-C or SIGTERM, further ones stay ignored through its exit handlers too."""
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        try:
            with stop_signals(keep_ignoring=exiting):
                status = _run(argv)
        except SystemExit:  # argparse's --help and usage: their text may still sit in stdout's buffer
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a closed stdout shows here, not as "Exception ignored" at exit
        return status
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # some other pipe (a worker's): a bug, with its traceback
        _silence_stdout()
        return EXIT_CLOSED_STDOUT
    finally:  # a caller's own (pytest's, a notebook's) comes back
        warnings.showwarning = shown


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on its writing end)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no real file behind stdout (a test's capture)
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, as Python's docs advise for SIGPIPE: the interpreter's final flush of
    what is still buffered would otherwise fail again and print 'Exception ignored'."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    cfg = None
    try:
        cfg = (
            CachePathConfig(getattr(args, "cache_dir", None) or args.path)
            if args.config_cls is None
            else build_config(args.config_cls, args)
        )
        return args.handler(cfg)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError, MemoryError) as e:
        from cache.diskfull import disk_full_error, failed_path

        # A full disk that no layer below mapped (config, report or plot writes): still one line, exit 2.
        where = failed_path(e) or next(
            (getattr(cfg, a) for a in ("cache_dir", "out", "path") if getattr(cfg, a, None)), None
        )
        full = disk_full_error(where, e) or (path_error(e) if isinstance(e, OSError) else memory_error(e))
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (core/signals.py): the same cleanup ran
        said = "terminated" if isinstance(e, Terminated) else "interrupted"
        if int(os.environ.get("RANK", "0")) == 0:  # torchrun stops every rank: rank 0 alone says so
            hint = after_interrupt(args.command, args if cfg is None else cfg)
            print(f"{said}; {hint}" if hint else said, file=sys.stderr)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main(exiting=True))

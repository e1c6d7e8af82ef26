"""Import direction: stages never reach up to the CLI, core reaches no stage, readers never import the
writer, and the packages form no cycle. Read from the source (ast), so nothing is imported to check it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("core", "data", "extract", "cache", "models", "train")
PACKAGES = (*STAGES, "cli")
ENTRY = ("pipeline", "demo")  # entry points: may import anything, nothing imports them
READERS = ("cache/reader.py", "cache/verify.py", "cache/inspect.py", "train/")
WRITERS = ("cache.shards", "cache.assemble", "extract")
# A reader that runs the encoders on new inputs, and writes no cache: predict needs the frozen
# encoders of the checkpoint's extraction, which extract.single builds from the manifest.
# `show` re-runs the streams a cache lacks for one video with those same encoders (it writes an MP4).
READER_EXCEPTIONS = {("train/predict.py", "extract.single"), ("train/show.py", "extract.single")}


def _modules() -> dict[str, Path]:
    """Dotted name -> file for every project module (packages and the entry scripts)."""
    found = {entry: ROOT / f"{entry}.py" for entry in ENTRY}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path) -> set[str]:
    """Absolute dotted names a module imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _is(name: str, target: str) -> bool:
    return name == target or name.startswith(target + ".")


MODULES = _modules()
GRAPH = {mod: imports_of(path) for mod, path in MODULES.items()}


def _rel(mod: str) -> str:
    return MODULES[mod].relative_to(ROOT).as_posix()


def test_every_package_is_seen():
    assert {_top(m) for m in MODULES} == set(PACKAGES) | set(ENTRY)


def test_stages_do_not_import_the_cli_or_the_entry_points():
    bad = sorted(
        {
            f"{_rel(m)} imports {_module_of(name)}"
            for m, names in GRAPH.items()
            if _top(m) in STAGES
            for name in names
            if _top(name) in ("cli", *ENTRY)
        }
    )
    assert not bad, "a stage reaches up to the command line:\n" + "\n".join(bad)


def test_core_imports_no_stage():
    bad = sorted(
        {
            f"{_rel(m)} imports {_module_of(name)}"
            for m, names in GRAPH.items()
            if _top(m) == "core"
            for name in names
            if _top(name) in (*STAGES, "cli", *ENTRY) and _top(name) != "core"
        }
    )
    assert not bad, "core must stay stage-neutral:\n" + "\n".join(bad)


def test_readers_do_not_import_the_writer():
    readers = [m for m in GRAPH if any(_rel(m).startswith(r) for r in READERS)]
    assert "cache.reader" in readers and "train.fit" in readers
    bad = sorted(
        {
            f"{_rel(m)} imports {_module_of(name)}"
            for m in readers
            for name in GRAPH[m]
            if any(_is(name, w) for w in WRITERS) and (_rel(m), _module_of(name)) not in READER_EXCEPTIONS
        }
    )
    assert not bad, "schema facts belong in cache/schema.py, not in the writer:\n" + "\n".join(bad)


def _module_of(name: str) -> str:
    """The project module an imported name lives in (``a.b.c`` → ``a.b`` when ``c`` is not a module)."""
    return name if name in MODULES else name.rsplit(".", 1)[0]


def package_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the top-level package graph (as a path), or None when it is acyclic."""
    ours = {_top(m) for m in graph}
    edges: dict[str, set[str]] = {top: set() for top in ours}
    for mod, names in graph.items():
        edges[_top(mod)].update(_top(n) for n in names if _top(n) in ours and _top(n) != _top(mod))
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_package_graph_is_acyclic():
    cycle = package_cycle(GRAPH)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    "graph, cycle",
    [
        ({"a.x": {"b.y"}, "b.y": {"c"}, "c": {"a.x"}}, ["a", "b", "c", "a"]),
        ({"a.x": {"b.y", "a.z"}, "a.z": set(), "b.y": set()}, None),
    ],
)
def test_cycle_finder(graph, cycle):
    assert package_cycle(graph) == cycle


def test_the_command_line_parser_imports_no_torch():
    """`pipeline.py --help` and a mistyped flag answer at once: building the parser (every command's
    config) loads neither torch nor h5py, which take seconds to import on a small machine."""
    import subprocess
    import sys

    code = (
        "import sys, pipeline; pipeline.build_parser(); print(sorted({'torch', 'h5py'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_an_installed_toolkit_holds_every_module(tmp_path):
    """`pip install .` (not -e) must ship every subpackage: formats, streams and heads live in their own,
    and a wheel without them fails at the first lookup of a format or stream."""
    import shutil
    import subprocess
    import sys
    import zipfile

    skip = shutil.ignore_patterns(
        ".*", "artifacts", "tests", "bench", "docs", "build", "__pycache__", "*.egg-info"
    )
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    wanted = {path.relative_to(ROOT).as_posix() for path in _modules().values()}
    assert wanted - shipped == set()

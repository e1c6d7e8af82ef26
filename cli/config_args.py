"""Build argparse flags from config dataclasses and merge ``--config FILE.yaml`` under them.

One source of truth: a stage's config dataclass. Every leaf field becomes a flag (``frames`` ->
``--frames``) and a YAML key, nested dataclasses are flattened, and the field's ``help`` metadata and
default make ``--help``. Precedence: dataclass default < YAML file < explicit flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from errors import UserError

_UNSET = object()


def _leaf_fields(cls: type) -> list[dataclasses.Field]:
    """Leaf fields of a (possibly nested) config dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        f.type = hints[f.name]
        if dataclasses.is_dataclass(f.type):
            out.extend(_leaf_fields(f.type))
        else:
            out.append(f)
    return out


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per leaf field of ``cls`` plus ``--config``; defaults stay unset to detect overrides."""
    parser.add_argument("--config", type=Path, default=None, help="YAML file whose keys mirror these flags")
    for f in _leaf_fields(cls):
        tp = _unwrap_optional(f.type)
        default = _default(f)
        shown = "required" if default is dataclasses.MISSING else f"default: {default}"
        help_text = f"{f.metadata.get('help', '')} ({shown})"
        kwargs: dict[str, Any] = {"default": _UNSET, "help": help_text, "dest": f.name}
        if f.metadata.get("positional"):
            parser.add_argument(
                f.name,
                nargs="*",
                default=_UNSET,
                help=f.metadata.get("help", ""),
                metavar=f.name.rstrip("s").upper(),
            )
            continue
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            kwargs["choices"] = list(typing.get_args(tp))
        elif typing.get_origin(tp) is tuple:
            kwargs["nargs"] = "*"
            kwargs["metavar"] = f.metadata.get("metavar", "ITEM")
        else:
            kwargs["type"] = tp
            kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _coerce(f: dataclasses.Field, value: Any, source: str) -> Any:
    tp = _unwrap_optional(f.type)
    if value is None:
        optional = typing.get_origin(f.type) in (typing.Union, types.UnionType)
        if optional and type(None) in typing.get_args(f.type):
            return None
        raise UserError(f"{source}: '{f.name}' is empty; give it a value or remove the line")
    try:
        if typing.get_origin(tp) is Literal:
            if value not in typing.get_args(tp):
                raise ValueError(f"must be one of {', '.join(map(str, typing.get_args(tp)))}")
            return value
        if typing.get_origin(tp) is tuple:
            return tuple(str(v) for v in ([value] if isinstance(value, str) else value))
        if tp is bool and not isinstance(value, bool):
            raise ValueError("must be true or false")
        return tp(value)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: int(1e400)
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UserError(f"{source}: bad value for '{f.name}': {shown} ({e})") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8") from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: e.g. a date like 2024-13-45
        first = " ".join(str(e).split("\n")[0].split()) or type(e).__name__
        raise UserError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(cls: type, ns: argparse.Namespace) -> Any:
    """Resolve ``cls`` from defaults, the YAML file named by ``--config`` and explicit flags."""
    leaves = {f.name: f for f in _leaf_fields(cls)}
    values: dict[str, Any] = {}
    if getattr(ns, "config", None) is not None:
        for k, v in _read_yaml(ns.config).items():
            if k not in leaves:
                raise UserError(f"{ns.config}: unknown option '{k}' (valid: {', '.join(sorted(leaves))})")
            values[k] = _coerce(leaves[k], v, str(ns.config))
    for name, f in leaves.items():
        v = getattr(ns, name, _UNSET)
        if v is not _UNSET and not (f.metadata.get("positional") and v == []):
            values[name] = _coerce(f, v, "--" + name.replace("_", "-"))
    missing = [n for n, f in leaves.items() if _default(f) is dataclasses.MISSING and n not in values]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise UserError(f"missing required option(s): {flags} (see --help)")
    try:
        return _instantiate(cls, values)
    except UserError as e:  # a check in __post_init__ names the flag; the value may come from the file
        if getattr(ns, "config", None) is None:
            raise
        raise UserError(f"{e} (options read from {ns.config} and the command line)") from None


def _instantiate(cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _instantiate(hints[f.name], values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-typed, flat dict of a config (Paths as str, tuples as lists): YAML- and JSON-safe."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out.update(config_to_dict(v))
        elif isinstance(v, Path):
            out[f.name] = str(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def save_config(cfg: Any, path: Path) -> None:
    """Write the resolved config beside an output, so a run can be repeated with ``--config``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

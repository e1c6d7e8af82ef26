"""Configs as plain data: the one conversion behind manifests, config.yaml files and checkpoints.

A stage's config is a dataclass (nested dataclasses group options, e.g. ``ExtractConfig.dataset``).
What is written down must be plain (str/int/float/bool/None, lists, str-keyed dicts) so that YAML,
JSON and ``torch.load(weights_only=True)`` all read it back, and flat so that the written
``config.yaml`` is a valid ``--config`` file for the same command.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from core.atomic import write_text_atomic
from core.errors import UserError


def to_plain(obj: Any) -> Any:
    """Deep copy as plain types: dicts (str keys), lists, str/int/float/bool/None; Paths → str."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    return str(obj)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Flat, plain dict of a config dataclass: nested dataclasses' fields are lifted to the top."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(config_to_dict(value))
        else:
            out[f.name] = to_plain(value)
    return out


def config_from_dict(cls: type, values: dict[str, Any], source: str) -> Any:
    """The inverse of ``config_to_dict``: a config dataclass from its flat plain dict (a manifest's or a
    checkpoint's record). Keys the dataclass lacks are ignored and missing ones keep their defaults, so a
    record written by an older or newer version still reads; a bad value is a UserError naming ``source``."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        f.type = hints[f.name]
        if dataclasses.is_dataclass(f.type):
            kwargs[f.name] = config_from_dict(f.type, values, source)
        elif f.name in values:
            kwargs[f.name] = coerce(f, values[f.name], source)
    return cls(**kwargs)


_GIVEN = "_given_options"


def mark_given(cfg: Any, names: typing.Iterable[str]) -> Any:
    """Record on ``cfg`` which of its options the user set (a flag, or a key of its ``--config`` file),
    for a command whose behaviour depends on it: ``tune`` leaves an option it would search fixed when it
    was given, even at its default value. Returns ``cfg``."""
    object.__setattr__(cfg, _GIVEN, frozenset(names))
    return cfg


def given_options(cfg: Any) -> frozenset[str] | None:
    """The option names ``mark_given`` recorded; None for a config built in code, where only a value
    that differs from its default tells that it was chosen."""
    return getattr(cfg, _GIVEN, None)


def split_names(text: str) -> list[str]:
    """A list option's text -> its names, joined by ',' or '+'. A sweep grid separates its values by
    commas, so '+' is how one value joins several names ('twelve+hands')."""
    return [name for name in (part.strip() for part in re.split(r"[,+]", text)) if name]


def save_config(cfg: Any, path: Path) -> None:
    """Write the resolved config beside an output (atomically), so ``--config`` can repeat the run."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


class _RepeatedKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in a config that silently drops the first value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise _RepeatedKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping (a ``--config``, a sweep grid, a search space), or one UserError line
    naming the file: unreadable, not UTF-8, not YAML, a key given twice, or not a mapping. ``what`` says
    what it should map."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
        data = {} if data is None else data  # an empty document is an empty mapping
    except _RepeatedKey as e:
        raise UserError(f"{path}:{e.line}: {str(e.key)!r} is given twice; keep one of them") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8") from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: e.g. a date like 2024-13-45
        first = " ".join(str(e).split("\n")[0].split()) or type(e).__name__
        raise UserError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of {what}")
    return data


# ---- typed values from plain data: what flags, YAML configs, sweep grids and search spaces share ----


def leaf_fields(cls: type) -> list[dataclasses.Field]:
    """Leaf fields of a (possibly nested) config dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        f.type = hints[f.name]
        if dataclasses.is_dataclass(f.type):
            out.extend(leaf_fields(f.type))
        else:
            out.append(f)
    return out


def unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def coerce(f: dataclasses.Field, value: Any, source: str) -> Any:
    """One field's value from plain data (a flag, a YAML key, a grid value), as its type declares."""
    tp = unwrap_optional(f.type)
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
            if isinstance(value, dict):  # its keys alone would be taken
                raise ValueError("must be a list, not a mapping")
            return tuple(str(v) for v in ([value] if isinstance(value, str) else value))
        if tp in (str, Path) and isinstance(value, bool):  # YAML 1.1 reads no, yes, on, off as booleans
            raise ValueError("YAML read it as true/false; quote it, e.g. 'no'")
        if tp is bool and not isinstance(value, bool):
            raise ValueError("must be true or false")
        # int(2.5), int(True) and str(["a", "b"]) would pass silently: a value must be of the option's kind
        if tp in (int, float) and isinstance(value, bool) or tp is int and isinstance(value, float):
            raise ValueError(f"must be {tp.__name__}")
        if isinstance(value, list | dict):
            raise ValueError("must be one value, not a list or mapping")
        return tp(value)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: int(1e400)
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UserError(f"{source}: bad value for '{f.name}': {shown} ({e})") from None


def coerce_option(cls: type, name: str, value: Any, source: str) -> Any:
    """One option of ``cls`` from a plain (YAML) value, exactly as a flag would be checked.

    An unknown option or a value of the wrong type is a UserError naming ``source``.
    """
    leaves = {f.name: f for f in leaf_fields(cls)}
    key = str(name).replace("-", "_")
    if key not in leaves:
        raise UserError(f"{source}: unknown option {str(name)!r} (valid: {', '.join(sorted(leaves))})")
    return coerce(leaves[key], value, source)

"""Build argparse flags from config dataclasses and merge ``--config FILE.yaml`` under them.

One source of truth: a stage's config dataclass. Every leaf field becomes a flag (``frames`` ->
``--frames``) and a YAML key, nested dataclasses are flattened, and the field's ``help`` metadata and
default make ``--help``. Precedence: dataclass default < YAML file < explicit flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any, Literal

from core.config import coerce, leaf_fields, mark_given, read_yaml_mapping, unwrap_optional
from core.errors import UserError

_UNSET = object()


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _say_repeat(namespace: argparse.Namespace, action: argparse.Action, values: Any) -> None:
    """argparse keeps the last of a flag given twice. Scripts rely on that (common flags, then an override),
    but the first value must not vanish unheard (a second --encoders dropping hands=none): one note."""
    if getattr(namespace, action.dest, _UNSET) is not _UNSET:
        flag = "/".join(action.option_strings)
        shown = "" if isinstance(action, argparse.BooleanOptionalAction) else f" ({values})"
        print(f"note: {flag} is given twice; the last{shown} is used", file=sys.stderr)


class _Last(argparse._StoreAction):
    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        _say_repeat(namespace, self, values)
        super().__call__(parser, namespace, values, option_string)


class _LastBool(argparse.BooleanOptionalAction):
    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        _say_repeat(namespace, self, values)
        super().__call__(parser, namespace, values, option_string)


class _Extend(argparse.Action):
    """A list flag given twice takes both lists (``--flip-swap a:b --flip-swap c:d``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[no-untyped-def]
        before = getattr(namespace, self.dest, _UNSET)
        setattr(namespace, self.dest, [*([] if before is _UNSET else before), *values])


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per leaf field of ``cls`` plus ``--config``; defaults stay unset to detect overrides."""
    parser.add_argument("--config", type=Path, default=None, help="YAML file whose keys mirror these flags")
    for f in leaf_fields(cls):
        tp = unwrap_optional(f.type)
        default = _default(f)
        shown = "required" if default is dataclasses.MISSING else f"default: {default}"
        help_text = getattr(cls, "FLAG_HELP", {}).get(f.name) or f.metadata.get("help", "")
        if "(default:" not in help_text:  # a help that explains its default already says it better
            help_text = f"{help_text} ({shown})"
        kwargs: dict[str, Any] = {"default": _UNSET, "help": help_text, "dest": f.name, "action": _Last}
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
            kwargs["action"] = _LastBool
        elif typing.get_origin(tp) is Literal:
            kwargs["choices"] = list(typing.get_args(tp))
        elif typing.get_origin(tp) is tuple:
            kwargs["action"] = _Extend
            kwargs["nargs"] = "*"
            kwargs["metavar"] = f.metadata.get("metavar", "ITEM")
        else:
            kwargs["type"] = tp
            kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
            if "const" in f.metadata:  # the flag alone means this value
                kwargs.update(nargs="?", const=f.metadata["const"])
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _read_yaml(path: Path) -> dict[str, Any]:
    """Option names to values; ``weight-decay`` and ``weight_decay`` are one option, so both is a clash."""
    out: dict[str, Any] = {}
    spelled: dict[str, Any] = {}
    for k, v in read_yaml_mapping(path, "option names to values").items():
        name = str(k).replace("-", "_")
        if name in out:
            raise UserError(f"{path}: {spelled[name]!r} and {k!r} are one option; keep one of them")
        out[name], spelled[name] = v, k
    return out


def build_config(cls: type, ns: argparse.Namespace) -> Any:
    """Resolve ``cls`` from defaults, the YAML file named by ``--config`` and explicit flags."""
    leaves = {f.name: f for f in leaf_fields(cls)}
    values: dict[str, Any] = {}
    if getattr(ns, "config", None) is not None:
        for k, v in _read_yaml(ns.config).items():
            if k not in leaves:
                raise UserError(
                    f"{ns.config}: unknown option {str(k)!r} (valid: {', '.join(sorted(leaves))})"
                )
            values[k] = coerce(leaves[k], v, str(ns.config))
    for name, f in leaves.items():
        v = getattr(ns, name, _UNSET)
        if v is not _UNSET and not (f.metadata.get("positional") and v == []):
            values[name] = coerce(f, v, "--" + name.replace("_", "-"))
    missing = [n for n, f in leaves.items() if _default(f) is dataclasses.MISSING and n not in values]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise UserError(f"missing required option(s): {flags} (see --help)")
    try:
        return mark_given(_instantiate(cls, values), values)
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

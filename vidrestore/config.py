"""YAML configs loaded into typed dataclasses.

Every option the pipeline reads lives in one of these dataclasses; YAML files in ``configs/`` hold
their values. Unknown keys are an error, so a typo in a config never passes silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")

# Configs live at the repository root (``configs/``); the package is installed editable from there.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class _ConfigLoader(yaml.SafeLoader):
    """YAML as a config means it: ``start: 1:30`` and ``start: 1:00:10:12`` are a time and a
    timecode, kept as written, not YAML 1.1's base-60 integers (90 and 216612, read as seconds)."""


_BASE_60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_ConfigLoader.yaml_implicit_resolvers = {first: [("tag:yaml.org,2002:str", _BASE_60), *resolvers] if first in "+-0123456789" else resolvers
                                         for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def read_yaml(text: str) -> Any:
    """The YAML ``text`` as :class:`_ConfigLoader` reads it."""
    return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: nothing but plain data is built


def check_minimums(config: object, **minimums: float) -> None:
    """Raise :class:`ConfigError` for the first named field of ``config`` under its minimum: a
    batch of 0 frames, from a flag or a YAML file, made the restoration loop spin for ever."""
    for name, least in minimums.items():
        value = getattr(config, name)
        if not value >= least:  # NaN too: "keep_coarse: .nan" was taken without a word
            raise ConfigError(f"{name}: expected {least:g} or more, got {value}")


def check_shares(config: object, *names: str) -> None:
    """Raise :class:`ConfigError` for the first named field of ``config`` outside 0 to 1: a
    detector's ``min_score: 2`` found no face, without a word."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name}: expected a value from 0 to 1, got {value}")


def check_choice(name: str, value: str, choices: typing.Iterable[str]) -> None:
    """Raise :class:`ConfigError` where ``value`` of field ``name`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


def _to_float(value: Any, where: str) -> float:
    # PyYAML follows YAML 1.1, where ``1e-4`` (no dot) is a string, not a number.
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = float(value)
            if not math.isnan(number):  # no setting means "not a number"
                return number
    raise ConfigError(f"{where}: expected a number, got {value!r}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        fixed = origin is tuple and args and args[-1] is not Ellipsis  # tuple[int, float]: one type per place
        if fixed and len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        hints = args if fixed else [args[0] if args else Any] * len(value)
        seq = [_coerce(v, hint, f"{where}[{i}]") for i, (v, hint) in enumerate(zip(value, hints))]
        return tuple(seq) if origin is tuple else seq
    if hint is float:
        return _to_float(value, where)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # "start: 90", "frame_rate: 24": a time or a rate written as a number
    if hint in (int, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and coercing nested types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {sorted(unknown)}; allowed: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where or cls.__name__}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a value the dataclass's own checks refuse: named with its file
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from exc


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (for YAML and for hashing)."""
    return dataclasses.asdict(obj)


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load ``path`` (YAML) into dataclass ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    return from_dict(cls, data, where=str(path))


def with_overrides(config: T, assignments: list[str]) -> T:
    """``config`` with ``KEY=VALUE`` assignments applied; values are YAML (``lr=1e-4``, ``packs=[a, b]``)."""
    data = to_dict(config)
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {text!r}: expected KEY=VALUE")
        try:
            data[key.strip()] = read_yaml(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {text!r}: the value is not valid YAML") from exc
    return from_dict(type(config), data, where="override")


def builtin_config(kind: str, name: str) -> Path:
    """Path of a config shipped with the package, e.g. ``builtin_config("models", "small")``."""
    path = CONFIG_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))
        raise ConfigError(f"no {kind} config named {name!r}; choose one of {choices} or give a YAML path")
    return path


def resolve_config(cls: type[T], kind: str, name_or_path: str | Path) -> T:
    """Load a built-in config by name, or any YAML file by path."""
    p = Path(name_or_path)
    path = p if p.suffix in (".yaml", ".yml") else builtin_config(kind, str(name_or_path))
    return load_yaml(cls, path)

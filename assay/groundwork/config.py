"""Config files as nested dataclasses: TOML in, dataclass out, naming the exact field at fault on bad input.

Every config assay reads (run configs, recipes, plans, trainer configs) goes through `load_config`, so they
all give the same kind of error: `curate.toml: langid.threshold: expected float, got 'high'`. A dataclass
checks its own values in `__post_init__` (raising ValueError, or FieldError about one field); the loader adds
the field's path.

A config file may come from someone else. Values that code and the command line may set but a file may not
(where a job runs, what code its workers start) are checked by the dataclass's `check_from_file()`, which
`from_dict` calls after `__post_init__`, and only there.
"""
from __future__ import annotations

import dataclasses
import functools
import tomllib
import types
import typing
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type; the message names the field."""


class FieldError(ValueError):
    """A dataclass's check of one of its own fields, raised in `__post_init__` (`FieldError("tokens", "must be
    >= 1")`): `from_dict` puts the table's path in front, `pools.web.tokens: must be >= 1`, where a plain
    ValueError would name only the table."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")


def load_config(cls: type[T], path: str, build: Callable[[dict[str, Any]], T] | None = None) -> T:
    """The dataclass `cls` from the TOML file `path` (`build` turns the table into one when `from_dict` alone
    does not do: presets, path resolution); every error starts with the file's path."""
    data = load_toml(path)
    try:
        return build(data) if build else from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Instantiate dataclass `cls` from `data`, recursively; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown field(s) {unknown}; known: {sorted(fields)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}" if where else name) for name, value in data.items()}
    try:
        obj = cls(**kwargs)
        check = getattr(obj, "check_from_file", None)
        if check is not None:
            check()
        return obj
    except ConfigError:
        raise
    except FieldError as exc:
        raise ConfigError(f"{where}.{exc}" if where else str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if all(typing.get_origin(a) is typing.Literal for a in args if a is not type(None)):  # one list of choices
            return _coerce(typing.Literal[tuple(v for a in args if a is not type(None) for v in typing.get_args(a))],
                           value, where)
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type):
        if tp is not bool and isinstance(value, bool) and tp in (int, float):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def check_choices(obj: Any) -> None:
    """Each field of the dataclass `obj` typed `Literal[...]` (or `Literal[...] | None`) holds one of its values,
    else a FieldError naming the field and the values. The file loader checks these fields as it reads them;
    this is the same check for a dataclass built in code, called from its `__post_init__`."""
    for name, allowed in _literal_fields(type(obj)).items():
        value = getattr(obj, name)
        if value not in allowed:
            raise FieldError(name, f"must be one of {[v for v in allowed if v is not None]}, got {value!r}")


@functools.lru_cache(maxsize=None)
def _literal_fields(cls: type) -> dict[str, tuple]:
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        if all(m is type(None) or typing.get_origin(m) is typing.Literal for m in members):
            values = tuple(v for m in members if m is not type(None) for v in typing.get_args(m))
            if values:
                found[f.name] = values + ((None,) if type(None) in members else ())
    return found


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain data (for run.json and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj

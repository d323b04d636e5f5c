"""The one config system: dataclasses, filled from YAML files and ``key.sub=value`` overrides.

Every job (training, evaluation, pre-training, demo generation) describes its settings as a dataclass tree.
``load_config(Cls, path, overrides)`` builds one, checking every key and every type, so that a typo in a
YAML file or on the command line is an error that names the key, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or the CLI) to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} matches none of {[_type_name(a) for a in args]}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected an integer, got {value!r:.80}")
        if not -(2**63) <= number < 2**63:  # torch, numpy and the file formats stop at 64 bits
            raise ConfigError(f"{key}: {str(number)[:12]}... ({len(str(abs(number)))} digits) is outside the 64-bit "
                              "integer range")
        return number
    if tp is float:
        number = None
        if (isinstance(value, (int, float)) and not isinstance(value, bool)) or isinstance(value, str):
            try:
                number = float(value)
            except (ValueError, OverflowError):
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):  # NaN passes every `<` check a __post_init__ makes: refuse it here, once
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value)
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict; unknown keys and wrong types raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + str(k) for k in unknown]}; valid: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from e
    return obj


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-serialisable dict of a dataclass tree (tuples become lists, paths strings)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def _set_dotted(data: dict[str, Any], dotted: str, raw: str) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
        node = child
    # YAML parsing gives ints, floats, bools, lists ("[1, 2]") and null the way a user expects.
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    except (yaml.YAMLError, RecursionError):
        node[parts[-1]] = raw


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "model.preset=small"]`` -> nested dict."""
    data: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        _set_dotted(data, key.strip(), raw.strip())
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds; a missing, unreadable or malformed file is a :class:`ConfigError`
    naming the file (and the line, for a YAML syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from e
    except (RecursionError, OSError) as e:
        raise ConfigError(f"config file {path} cannot be read ({type(e).__name__})") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(loaded).__name__}")
    return loaded


EXTENDS = "extends"


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config with its ``extends: other.yaml`` chain resolved: the named file (relative to this one) is read
    first and this file's keys are merged over it, section by section. One recipe can then differ from another by the
    keys that differ (``benchmark_embedded.yaml`` extends ``demo.yaml``) instead of a copy that drifts."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"config file {path}: '{EXTENDS}' loops back to itself via "
                          f"{' -> '.join(p.name for p in (*_seen, path))}")
    data = read_yaml_mapping(path)
    parent = data.pop(EXTENDS, None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"config file {path}: '{EXTENDS}' must name one YAML file, got {parent!r}")
    return _merge(read_config_file(path.parent / parent, (*_seen, path)), data)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path`` (and the files it ``extends``), updated by
    ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_config_file(path)
    data = _merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data)


def code_allowed(key: str, value: str, trusted: set[str], config: str | Path | None, overrides: list[str],
                 allow_code: bool) -> bool:
    """Whether the setting ``key=value`` may import and run code (a ``module:attr`` reference): yes for a trusted
    name, for a value the user typed (``key=...`` among ``overrides``, which include the command line's flags) and
    with ``allow_code`` (``--allow-code``); a reference only a config file names raises :class:`ConfigError`, because
    a config from elsewhere must not execute code unless the user asks."""
    if ":" not in value or value in trusted or allow_code:
        return True
    if any(o.split("=", 1)[0].strip() == key for o in overrides):
        return True
    raise ConfigError(f"{key}: {value!r} from config file {config} names Python code to import and run; pass "
                      f"--allow-code if you trust it (or give {key} on the command line)")


def save_config(cfg: Any, path: str | Path) -> None:
    from benchmarks.fileio import atomic_write_text  # the one atomic writer (benchmarks sits below bridgevla)

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))

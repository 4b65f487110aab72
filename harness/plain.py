"""Plain data <-> config dataclasses, YAML files and dotted overrides, with errors that name the field.

The machinery under `harness.config` (which holds the RunConfig schema) and every plugin's config: `doc`
fields, type coercion with `where`-named errors, strict YAML reading with a line map, the `file:line`
locator, dotted overrides, hashing and diffs of resolved configs.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A bad configuration value; the message names the field and, where known, the file and line."""


def doc(text: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that carries its own documentation (shown by `rlvr run --help-config`)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


def require_positive(obj: Any, section: str, *names: str) -> None:
    """Raise a ConfigError naming `section.name` for the first field that is set and not > 0."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{section}{name}: must be > 0, got {value}")


# Building dataclasses from plain data, with errors that name the field


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert `value` to type `tp` (a dataclass field annotation) or raise a ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict,) or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
                if f.is_integer():
                    return int(f)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected float, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):  # PyYAML reads 1e-4 as a string; accept it
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected float, got {value!r}")
        if not math.isfinite(number):  # nan compares false with every bound, so it would slip through validation
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected str, got {value!r}")
    return value


def did_you_mean(name: Any, known: list[str], prefix: str = "") -> str:
    """" (did you mean 'x'?)" for the closest known name, else "", for messages about an unknown name."""
    close = difflib.get_close_matches(str(name), known, n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from a (nested) mapping, rejecting unknown keys with a did-you-mean hint."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown field '{prefix}{key}'" + (did_you_mean(key, names, prefix) or f" (known: {', '.join(names)})"))
        kwargs[key] = coerce(hints[key], value, f"{prefix}{key}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (tuples become lists), suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def config_hash(*parts: Any) -> str:
    """Stable short hash of plain data (used for caches)."""
    blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{dotted}: '{k}' is a value, not a section")
        node = nxt
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """`["train.lr=1e-4", "algo=grpo"]` -> nested dict (values parsed as YAML scalars, coerced later)."""
    data: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. train.lr=1e-4)")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"override {item!r}: empty key")
        value = yaml.safe_load(raw) if raw else ""
        if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
            value = raw  # YAML 1.1 reads on/off/yes/no as booleans; keep the word, fields coerce it
        set_dotted(data, key.strip(), value)
    return data


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


MAX_YAML_ALIASES = 20  # enough to share a few blocks; bounds what a crafted file can expand to


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate keys (YAML would keep the last one silently) and more than
    MAX_YAML_ALIASES aliases (a few hundred bytes of nested aliases expand to billions of nodes)."""

    def compose_document(self):
        self.aliases = 0
        return super().compose_document()

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_YAML_ALIASES} aliases (*name)", self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_lines(root: yaml.Node | None) -> dict[str, int]:
    """Dotted key -> 1-based line number, for error messages."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}{k.value}"
                lines[key] = k.start_mark.line + 1
                walk(v, key + ".")
        elif isinstance(node, yaml.SequenceNode):  # list items as key.0, key.1, ...
            for i, v in enumerate(node.value):
                lines[f"{prefix}{i}"] = v.start_mark.line + 1
                walk(v, f"{prefix}{i}.")

    if root is not None:
        walk(root, "")
    return lines


def read_yaml(path: str | Path) -> tuple[dict, dict[str, int]]:
    path = Path(path)
    try:
        loader = _StrictLoader(path.read_text())
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else {}
        finally:
            loader.dispose()
        data = data if data is not None else {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level")
    return data, _yaml_lines(root)


def mentions(msg: str, key: str) -> bool:
    return f"'{key}'" in msg or msg.startswith(f"{key}:") or f" {key}:" in msg


def locate(msg: str, key_lines: dict[str, int]) -> int | None:
    """The line of the longest key (dotted, as error messages name fields) that the message names, if any."""
    key = max((k for k in key_lines if mentions(msg, k)), key=len, default=None)
    return key_lines[key] if key else None


def section_line(msg: str, lines: dict[str, int], section: str) -> int | None:
    """The line of the longest key under `section` that the message names, else the section's own line."""
    keys = {k: v for k, v in lines.items() if k == section or k.startswith(section + ".")}
    return locate(msg, keys) or keys.get(section)


def located(where: str | Path, line: int | None, msg: str) -> ConfigError:
    """A ConfigError prefixed `where:line:` (or `where:` when the line is unknown)."""
    return ConfigError(f"{where}:{line}: {msg}" if line else f"{where}: {msg}")


def with_location(err: ConfigError, path: Path, file_lines: dict[str, int], cli_keys: list[str]) -> ConfigError:
    """Prefix `file:line` when the offending key came from the YAML file rather than the command line."""
    msg = str(err)
    if any(mentions(msg, k) for k in cli_keys):
        return err
    return located(path, locate(msg, file_lines), msg)


def flat_keys(data: dict, prefix: str = "") -> list[str]:
    """Every dotted key of a nested mapping, sections included: {"a": {"b": 1}} -> ["a", "a.b"]."""
    out = []
    for k, v in data.items():
        out.append(f"{prefix}{k}")
        if isinstance(v, dict):
            out.extend(flat_keys(v, f"{prefix}{k}."))
    return out


def describe(cls: type, prefix: str = "") -> list[str]:
    """Lines `field (type, default): doc` for `--help-config`."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(describe(tp, f"{prefix}{f.name}."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append(f"{prefix}{f.name} = {default!r}  # {f.metadata.get('doc', '')}")
    return out

"""Experiment configs read: a YAML file (or a shipped config by name), its `base:` chain
merged in, its `set:` and `--set` overrides applied by name (`names`), the result
validated against the schema (`schema`) with a one-line error (`errors`), and dumped
back as plain data for a run's config.yaml.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from .errors import ConfigError, describe
from .names import set_param
from .schema import Config
from .yaml_io import parse_override, read_yaml


def merge(base: dict, over: dict) -> dict:
    """Deep-merge `over` into a copy of `base`: mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: str | Path, _seen: tuple = ()) -> dict:
    """The YAML of `path` with its `base:` chain merged in (base relative to the file),
    then its `set:` mapping of dotted paths applied (`set: {conv2.kernel: 9}`), so a
    config can change one layer of its base without repeating the whole stack."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(str(path), "base", "circular base: chain")
    raw = read_yaml(path)
    base = raw.pop("base", None)
    sets = raw.pop("set", None) or {}
    if not isinstance(sets, dict):
        raise ConfigError(str(path), "set", "must be a mapping of dotted paths, e.g. set: {conv2.kernel: 9}")
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(str(path), "base", "must be a file name, e.g. base: two_conv.yaml")
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(str(path), "base", f"{base} not found next to {path.name}")
        raw = merge(load_raw(base_path, (*_seen, path.resolve())), raw)
    for key, value in sets.items():
        set_param(raw, str(key), value, source=f"{path}: set")
    return raw


def validate(raw: dict, source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(source, *describe(e.errors()[0], raw)) from None


SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # package data: in every install


def shipped_configs() -> list[str]:
    """The names of the configs that ship with the package (`two_conv`, `search`, ...)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def find_config(name: str | Path) -> Path:
    """The config file `name` names: a path to a file, else a shipped config by its name
    (`two_conv` or `two_conv.yaml`), which needs no checkout (a wheel installs them)."""
    path = Path(name)
    if path.is_file():
        return path
    if len(path.parts) == 1:
        shipped = SHIPPED_CONFIGS / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
        if shipped.is_file():
            return shipped
    raise ConfigError(
        str(name), "", f"no such config file, nor a shipped config (by name: {', '.join(shipped_configs())})"
    )


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read (a file, or a shipped config by name), merge the base chain, apply `key=value`
    overrides, validate."""
    path = find_config(path)
    raw = load_raw(path)
    for text in overrides:
        set_param(raw, *parse_override(text))
    return validate(raw, str(path))


def to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what runs save as config.yaml)."""
    return cfg.model_dump(mode="json", exclude_none=False)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)

"""Experiment configs read: a YAML file (or a shipped config by name), its `base:` chain
merged in, its `set:` and `--set` overrides applied by name (`names`), the result
validated against the schema (`schema`) with a one-line error (`errors`), and dumped
back as plain data for a run's config.yaml.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError, describe, first_error
from .names import Setting, set_param
from .schema import Config
from .yaml_io import parse_override, read_yaml


def merge(base: dict, over: dict) -> dict:
    """Deep-merge `over` into a copy of `base`: mappings merge, everything else replaces."""
    return _merge_into(copy.deepcopy(base), over)


def _merge_into(base: dict, over: dict) -> dict:
    """`merge`, into `base` itself: the mappings of `base` that `over` does not replace stay
    the same objects, so what `Origins` noted in them is still found."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


class Origins:
    """Which override put a value into a raw config: a `--set KEY=VALUE` or an entry of a
    file's `set:` mapping. A value the schema refuses is then blamed on what set it, not on
    the file, which does not hold it. A place is the mapping a setting was written into
    (held, so its id stays its own) and the key; a mapping replaced later, by a `base:`
    merge or another override, is no longer in the config, and its blame goes with it."""

    def __init__(self) -> None:
        self._places: dict[tuple[int, str], tuple[dict, str]] = {}

    def note(self, setting: Setting, label: str) -> None:
        self._places[(id(setting.node), setting.key)] = (setting.node, label)

    def blame(self, raw: dict, loc: Sequence) -> tuple[str, bool] | None:
        """(label, whether it set exactly `loc`) of the last override on the way down to the
        error's location `loc`, or None when the file's own text holds the value."""
        found = None
        node: Any = raw
        for i, part in enumerate(loc):
            if isinstance(node, dict) and part in node:
                place = self._places.get((id(node), part))
                if place is not None and place[0] is node:
                    found = (place[1], i == len(loc) - 1)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            elif not isinstance(node, dict):
                break
            # else a name pydantic adds to the location (a layer's type tag): no key to follow
        return found


def load_raw(path: str | Path, _seen: tuple = (), origins: Origins | None = None) -> dict:
    """The YAML of `path` with its `base:` chain merged in (each base found as
    `find_config` finds it, from the folder of the file naming it), then its `set:` mapping
    of dotted paths applied (`set: {conv2.kernel: 9}`), so a config can change one layer of
    its base without repeating the whole stack. `origins` notes where each `set:` entry
    wrote."""
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
        try:
            base_path = find_config(base, path.parent)
        except ConfigError as e:
            raise ConfigError(str(path), "base", str(e)) from None
        # the base's dict is this call's own: merged into in place, its `set:` places hold
        raw = _merge_into(load_raw(base_path, (*_seen, path.resolve()), origins), raw)
    for key, value in sets.items():
        setting = set_param(raw, str(key), value, source=f"{path}: set")
        if origins is not None:
            origins.note(setting, f"{path}: set: {key}")
    return raw


def validate(raw: dict, source: str, origins: Origins | None = None) -> Config:
    """The config `raw` holds; a ConfigError names `source` and the field, or the override
    that set a refused value (`origins`)."""
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        err = first_error(e)
        field, message = describe(err, raw)
        blamed = origins.blame(raw, err["loc"]) if origins is not None else None
        if blamed is not None:
            label, exact = blamed
            raise ConfigError(label, "" if exact else field, message) from None
        raise ConfigError(source, field, message) from None


SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # package data: in every install


def shipped_configs() -> list[str]:
    """The names of the configs that ship with the package (`two_conv`, `search`, ...)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


CONFIG_SUFFIXES = (".yaml", ".yml")


def find_config(name: str | Path, folder: Path | None = None) -> Path:
    """The config file `name` names: the one resolution of `base:`, of a search's
    `choice:` and of the command line's CONFIG. `name` relative to `folder` (the referring
    file's; the working directory for the command line) when that file exists, else a
    shipped config by its bare name (`two_conv` or `two_conv.yaml`), which needs no
    checkout (a wheel installs them). Either way a YAML file (.yaml, .yml): a name written
    in a config reads another config, never whatever file it points at (`/etc/passwd`)."""
    path = (folder or Path()) / name  # an absolute name stays itself
    if path.is_file():
        if path.suffix.lower() not in CONFIG_SUFFIXES:
            raise ConfigError(str(path), "", f"not a config; {_what_a_config_is()}")
        return path
    bare = Path(name)
    if len(bare.parts) == 1:
        shipped = SHIPPED_CONFIGS / (bare.name if bare.suffix == ".yaml" else f"{bare.name}.yaml")
        if shipped.is_file():
            return shipped
    raise ConfigError(str(path), "", f"no such config file; {_what_a_config_is()}")


def _what_a_config_is() -> str:
    """What every refused config name is told, wherever it was written."""
    return f"a config is a .yaml or .yml file, or a shipped config by name ({', '.join(shipped_configs())})"


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read (a file, or a shipped config by name), merge the base chain, apply `key=value`
    overrides, validate."""
    path = find_config(path)
    origins = Origins()
    raw = load_raw(path, origins=origins)
    for text in overrides:
        origins.note(set_param(raw, *parse_override(text)), f"--set {_shortened(text)}")
    return validate(raw, str(path), origins)


def _shortened(text: str, limit: int = 120) -> str:
    """An override as a message quotes it: a layer list given whole can run long."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what runs save as config.yaml)."""
    return cfg.model_dump(mode="json", exclude_none=False)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)

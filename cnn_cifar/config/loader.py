"""Experiment configs: YAML files, `base:` inheritance, `--set` overrides, validation
against the schema (`schema`), and the one router of setting names.

Every user mistake becomes one line:
``configs/x.yaml: model.layers[2] (conv2).kernel: Input should be greater than 0``.
Hyperparameters are addressed by dotted paths (``conv2.kernel``, ``train.batch_size``)
on the command line and by ``__`` names (``conv2__kernel``) in scikit-learn.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..core.vocabulary import UserError
from .layers import LAYER_TYPES, layer_names, settable_fields
from .schema import Config


class ConfigError(UserError):
    """A user mistake in a config; str() is one line: file, field path, what is allowed."""

    def __init__(self, source: str, field: str, message: str):
        self.source, self.field, self.message = source, field, message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- loading


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            str(path),
            "",
            f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at "
            f"offset {e.start}); a config is a YAML text file",
        ) from None
    raw = _parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "", "must be a YAML mapping (name:, model:, ...)")
    return raw


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping: PyYAML keeps the last one silently, so a second
    `train:` block would replace the first whole and run an experiment nobody wrote."""

    def __init__(self, key, first: int, second: int):
        self.key, self.first, self.second = key, first, second
        super().__init__(f"key {key!r} is given twice, on lines {first} and {second}")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (at any depth)."""


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    lines: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged keys may repeat
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in lines:
                raise DuplicateKey(key, lines[key], line)
            lines[key] = line
        except TypeError:  # an unhashable key: construct_mapping says so
            break
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _parse_yaml(text: str, source: str):
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no Python objects
    except DuplicateKey as e:
        raise ConfigError(source, f"line {e.second}", str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(source, where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise ConfigError(
            source, "", "nested too deeply to read (a YAML structure thousands of levels deep)"
        ) from None


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


def parse_override(text: str) -> tuple[str, Any]:
    """`conv2.kernel=9` -> ("conv2.kernel", 9); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", text, "expected KEY=VALUE, e.g. --set conv2.kernel=9")
    try:
        return key.strip(), yaml.load(value, Loader=UniqueKeyLoader)
    except DuplicateKey as e:
        raise ConfigError("--set", key.strip(), f"value {value[:80]!r}: {e}") from None
    except (yaml.YAMLError, RecursionError):
        raise ConfigError("--set", key.strip(), f"value {value[:80]!r} is not valid YAML") from None


# --------------------------------------------------------------------------- names
# The one router of setting names. A name is a dotted path (`conv2.kernel`,
# `train.optimizer.learning_rate`) or the same with `__` (`conv2__kernel`, scikit-learn's
# form); a first part that names a layer addresses `model.layers`. Parameters (what the
# estimator, a search space and `--set` share) are layer attributes, `model.*`, `train.*`
# and `random_state`, the estimator's name for `train.seed`; `--set` also reaches `data`,
# `cv`, `search`, `name` and `description`.

ALIASES = {"random_state": "train.seed"}
PARAM_SECTIONS = ("model", "train")
# the whole layer list as one parameter: what a structure search draws (search.structures);
# set before any other, since the others may name its layers
LAYERS_PARAM = "model__layers"


def is_layer_list(name: str) -> bool:
    """Whether a name (`model.layers`, `model__layers`) is the whole layer list."""
    return split_name(name) == ["model", "layers"]


def layers_first(params: dict) -> list[tuple[str, Any]]:
    """A parameter dict's items in the order they can be set: the layer list first."""
    return sorted(params.items(), key=lambda item: not is_layer_list(item[0]))


def split_name(name: str) -> list[str]:
    """`conv2.kernel`, `conv2__kernel` -> ["conv2", "kernel"]; aliases resolved."""
    return ALIASES.get(name, name).replace("__", ".").split(".")


def _raw_layers(raw: dict) -> list:
    model = raw.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    return layers if isinstance(layers, list) else []


def param_names(raw: dict) -> list[str]:
    """Every parameter of a raw config (or the estimator's model/train dicts), `__` form:
    `<layer>__<attribute>`, `model__<key>`, `train__<key>` (nested blocks that are set
    expand into their keys) and `random_state`."""
    names = []
    for name, layer in zip(layer_names(_raw_layers(raw)), _raw_layers(raw), strict=True):
        kind = layer.get("type") if isinstance(layer, dict) else None
        names += [f"{name.replace('.', '__')}__{key}" for key in settable_fields(kind)]
    names.append(LAYERS_PARAM)
    for section in PARAM_SECTIONS:
        schema = _sub_schema(Config.model_fields[section])
        assert schema is not None  # model and train are blocks
        names += _field_names(schema, raw.get(section), section, skip={"layers", "seed"})
    return [*names, "random_state"]


def _field_names(schema: type[BaseModel], node, prefix: str, skip=frozenset()) -> list[str]:
    out = []
    for key, field in schema.model_fields.items():
        if key in skip:
            continue
        sub, value = _sub_schema(field), node.get(key) if isinstance(node, dict) else None
        # A block that defaults to None (early_stopping, augment) is a parameter itself (None
        # turns it off) and lists its keys only when set; one always there lists its keys.
        if sub is None or field.default is None:
            out.append(f"{prefix}__{key}")
        if sub is not None and (isinstance(value, dict) or field.default is not None):
            out += _field_names(sub, value, f"{prefix}__{key}")
    return out


def get_param(raw: dict, name: str):
    """The value of a parameter in a raw config; the schema's default where it is not set."""
    node, key, schema = _resolve(raw, name, "", params_only=True, create=False)
    if isinstance(node, dict) and key in node:
        return node[key]
    field = schema.model_fields[key] if schema is not None else None
    if field is None:
        return None
    return field.default_factory() if field.default_factory else field.default


def set_param(raw: dict, name: str, value: Any, source: str = "--set", params_only: bool = False) -> None:
    """Set a setting by name in a raw config (creating an optional block such as
    `train.early_stopping` when a key of it is set). Unknown names raise ConfigError
    (source, name, what is allowed); values are checked later, by `validate`.
    `params_only`: accept only parameters (what the estimator and a search space take)."""
    node, key, _ = _resolve(raw, name, source, params_only, create=True)
    node[key] = copy.deepcopy(value)  # a layer list set here is changed by the names after it


def check_param(raw: dict, name: str, source: str, field: str) -> None:
    """ConfigError(source, field, ...) unless `name` is a parameter of this config."""
    try:
        _resolve(raw, name, source, params_only=True, create=False)
    except ConfigError as e:
        raise ConfigError(source, field, e.message) from None


def _resolve(raw: dict, name: str, source: str, params_only: bool, create: bool):
    """(the dict that holds the setting, its key, its schema or None) for `name`."""
    parts = split_name(name)
    layers = _raw_layers(raw)
    names = layer_names(layers)
    # a layer's name may hold dots (block2.conv): the attribute is the last part
    owner = ".".join(parts[:-1]) if ".".join(parts[:-1]) in names else parts[0]
    if owner in names:
        layer = layers[names.index(owner)]
        kind = layer.get("type") if isinstance(layer, dict) else None
        attribute = parts[-1] if len(parts) == owner.count(".") + 2 else None
        if attribute not in settable_fields(kind):
            raise ConfigError(
                source,
                name,
                f"no such setting; {owner} ({kind}) takes " + ", ".join(settable_fields(kind)),
            )
        return layer, attribute, LAYER_TYPES[str(kind)]  # a known type: it has settable fields
    heads = PARAM_SECTIONS if params_only else tuple(Config.model_fields)
    if parts[0] not in heads or (params_only and parts[:2] == ["model", "layers"] and len(parts) > 2):
        raise ConfigError(
            source,
            name,
            "no such setting; a parameter starts with a layer name ("
            + ", ".join(names)
            + "), model or train; a config setting (--set) "
            "also with " + ", ".join(h for h in Config.model_fields if h not in PARAM_SECTIONS),
        )
    node: dict = raw
    schema: type[BaseModel] | None = Config
    for i, part in enumerate(parts):
        if schema is None:  # inside search.space, whose keys are parameter names
            rest = parts[i:]
            return node, next((k for k in node if split_name(k) == rest), ".".join(rest)), None
        field = schema.model_fields.get(part) if schema is not None else None
        if schema is not None and field is None:
            where = ".".join(parts[:i]) or "a config"
            raise ConfigError(
                source, name, f"no such setting; {where} takes " + ", ".join(schema.model_fields)
            )
        if i == len(parts) - 1:
            return node, part, schema
        sub = _sub_schema(field) if field is not None else None
        if sub is None and not (field is not None and _is_mapping(field)) and schema is not None:
            raise ConfigError(
                source, name, f"no such setting; {'.'.join(parts[: i + 1])} has no settings under it"
            )
        nxt = node.get(part) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            if create:
                node[part] = nxt
        node, schema = nxt, sub


def _sub_schema(field) -> type[BaseModel] | None:
    """The pydantic model a field holds (Optional[...] unwrapped), or None."""
    for ann in (field.annotation, *typing.get_args(field.annotation)):
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann
    return None


def _is_mapping(field) -> bool:
    return typing.get_origin(field.annotation) is dict  # search.space: any key


def validate(raw: dict, source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(source, *_describe(e.errors()[0], raw)) from None


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


# --------------------------------------------------------------------------- errors


def _describe(err: ErrorDetails, raw: dict) -> tuple[str, str]:
    """pydantic error -> (field path with layer names, message with what is allowed)."""
    loc = list(err["loc"])
    parts: list[str] = []
    i = 0
    while i < len(loc):
        item = loc[i]
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            if parts[-1].startswith("layers["):
                name = _raw_layer_name(raw, item)
                if name:
                    parts[-1] += f" ({name})"
                if i + 1 < len(loc) and loc[i + 1] in LAYER_TYPES:
                    i += 1  # skip the union tag pydantic adds
        else:
            parts.append(str(item))
        i += 1
    field = ".".join(parts)
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        msg = f"unknown key; allowed: {', '.join(_allowed_keys(err, raw))}"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        msg = f"unknown layer type; allowed: {', '.join(LAYER_TYPES)}"
    elif kind == "missing":
        msg = "required field is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return field, msg


def _raw_layer_name(raw: dict, index: int) -> str | None:
    layers = raw.get("model", {}).get("layers") if isinstance(raw.get("model"), dict) else None
    if isinstance(layers, list) and index < len(layers) and isinstance(layers[index], dict):
        return layer_names(layers)[index]
    return None


def _allowed_keys(err: ErrorDetails, raw: dict) -> list[str]:
    loc = list(err["loc"][:-1])
    if loc[:2] == ["model", "layers"] and len(loc) >= 4:
        return ["name", *settable_fields(str(loc[3])), "type"]
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        ann = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            ann,
        )
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        model = ann
    keys = list(model.model_fields)
    return keys + (["base"] if model is Config else [])


# --------------------------------------------------------------------------- dumping


def to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what runs save as config.yaml)."""
    return cfg.model_dump(mode="json", exclude_none=False)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)

"""Experiment configs: YAML files, `base:` inheritance, `--set` overrides and the schema.

The schema is pydantic (extra keys forbidden), so every user mistake becomes one line:
``configs/x.yaml: model.layers[2] (conv2).kernel: Input should be greater than 0``.
Hyperparameters are addressed by dotted paths (``conv2.kernel``, ``train.batch_size``)
on the command line and by ``__`` names (``conv2__kernel``) in scikit-learn.
"""
from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, Field, NonNegativeFloat, PositiveInt, ValidationError,
                      model_validator)

from .layers import LAYER_TYPES, Strict, settable_fields


class ConfigError(Exception):
    """A user mistake in a config; str() is one line: file, field path, what is allowed."""

    def __init__(self, source: str, field: str, message: str):
        self.source, self.field, self.message = source, field, message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


Layer = Annotated[Union[tuple(LAYER_TYPES.values())], Field(discriminator="type")]


class Augment(Strict):
    """Random training-time transforms, applied inside the model (inactive at inference)."""
    flip: bool = False                              # horizontal flips
    translate: float = Field(0.0, ge=0.0, lt=0.5)   # fraction of height/width
    rotate: float = Field(0.0, ge=0.0, le=0.5)      # fraction of a full turn


class ModelSpec(Strict):
    layers: list[Layer] = Field(min_length=1)
    rescale: float = Field(1 / 255, gt=0.0)        # pixels are multiplied by this in the model
    augment: Optional[Augment] = None

    @model_validator(mode="after")
    def _unique_names(self):
        name_layers(self.layers)
        seen: set[str] = set()
        for i, layer in enumerate(self.layers):
            if layer.name in seen:
                raise ValueError(f"layer name {layer.name!r} used twice (layers[{i}])")
            seen.add(layer.name)
        return self


class Optimizer(Strict):
    name: Literal["adadelta", "sgd", "adam", "adamw", "rmsprop"] = "adadelta"
    # Keras 3's Adadelta default is 0.001; Keras 1's was 1.0 (the tutorial relies on it).
    learning_rate: float = Field(1.0, gt=0.0)
    momentum: NonNegativeFloat = 0.0                # sgd / rmsprop only
    # None: Keras 3's default (1e-7). Keras 1's Adadelta used 1e-8, and Adadelta's first
    # steps scale with sqrt(epsilon): the tutorial's configs set 1e-8.
    epsilon: Optional[float] = Field(None, gt=0.0)  # not for sgd
    weight_decay: Optional[NonNegativeFloat] = None
    schedule: Literal["constant", "cosine"] = "constant"   # cosine: decay to 0 over training
    warmup_epochs: NonNegativeFloat = 0.0           # linear warm-up, cosine schedule only


class EarlyStopping(Strict):
    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    # Keras 3 semantics: stop after `patience` epochs without improvement.
    # Keras 1's patience=p stopped after p+1 such epochs: the tutorial's patience=1 is 2 here.
    patience: PositiveInt = 2
    min_delta: NonNegativeFloat = 0.0
    restore_best_weights: bool = False


class Train(Strict):
    optimizer: Optimizer = Optimizer()
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 32
    validation_split: float = Field(0.2, ge=0.0, lt=1.0)
    early_stopping: Optional[EarlyStopping] = None
    seed: Optional[int] = 15
    # Speed settings (scripts/bench.py measures them; none changes what is learned beyond
    # float rounding). steps_per_execution: training steps per call into the compiled
    # graph, fewer Python round trips (batch-level callbacks then fire every N steps).
    steps_per_execution: PositiveInt = 16
    # precision: "auto" computes in bfloat16 (weights, loss and softmax stay float32) where
    # the CPU has native bf16 (avx512_bf16/amx_bf16) under TensorFlow, about 2x on the
    # conv layers; float32 elsewhere. "float32" reproduces the tutorial's arithmetic.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"

    @model_validator(mode="after")
    def _needs_validation(self):
        es = self.early_stopping
        if es is not None and es.monitor.startswith("val_") and self.validation_split == 0:
            raise ValueError(f"early_stopping monitors {es.monitor} but validation_split is 0")
        return self


class CV(Strict):
    n_splits: PositiveInt = 3
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    random_state: Optional[int] = 15


class Data(Strict):
    source: Literal["cifar10", "image_folder", "npz", "auto"] = "cifar10"
    path: Optional[str] = None
    subset: Optional[PositiveInt] = None            # N training images (test set keeps the ratio)

    @model_validator(mode="after")
    def _path_needed(self):
        if self.path is None and self.source not in ("cifar10",):
            raise ValueError(f"source {self.source!r} needs a path")
        return self


class Search(Strict):
    strategy: Literal["racing", "random", "halving"] = "racing"
    n_iter: PositiveInt = 10
    cv: Optional[PositiveInt] = None                # None: the config's cv block
    scoring: Literal["accuracy", "balanced_accuracy", "f1_macro", "neg_log_loss"] = "accuracy"
    random_state: Optional[int] = 15
    factor: float = Field(3.0, gt=1.0)              # halving: keep 1/factor per rung
    min_resources: Optional[PositiveInt] = None     # halving: training images in rung 0
    margin: float = Field(0.03, ge=0.0)             # racing: drop a candidate this far behind
    space: dict[str, Any] = Field(min_length=1)


class Config(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: Optional[str] = None
    data: Data = Data()
    model: ModelSpec
    train: Train = Train()
    cv: CV = CV()
    search: Optional[Search] = None


def name_layers(layers: list) -> None:
    """Give unnamed layer specs their default names (see `layer_names`)."""
    for layer, name in zip(layers, layer_names(layers)):
        layer.name = name


# --------------------------------------------------------------------------- loading

def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(str(path), where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "", "must be a YAML mapping (name:, model:, ...)")
    return raw


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
        raw = merge(load_raw(base_path, _seen + (path.resolve(),)), raw)
    for key, value in sets.items():
        set_param(raw, str(key), value, source=f"{path}: set")
    return raw


def parse_override(text: str) -> tuple[str, Any]:
    """`conv2.kernel=9` -> ("conv2.kernel", 9); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", text, "expected KEY=VALUE, e.g. --set conv2.kernel=9")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError("--set", key, f"value {value!r} is not valid YAML") from None


# --------------------------------------------------------------------------- names
# The one router of setting names. A name is a dotted path (`conv2.kernel`,
# `train.optimizer.learning_rate`) or the same with `__` (`conv2__kernel`, scikit-learn's
# form); a first part that names a layer addresses `model.layers`. Parameters (what the
# estimator, a search space and `--set` share) are layer attributes, `model.*`, `train.*`
# and `random_state`, the estimator's name for `train.seed`; `--set` also reaches `data`,
# `cv`, `search`, `name` and `description`.

ALIASES = {"random_state": "train.seed"}
PARAM_SECTIONS = ("model", "train")


def split_name(name: str) -> list[str]:
    """`conv2.kernel`, `conv2__kernel` -> ["conv2", "kernel"]; aliases resolved."""
    return ALIASES.get(name, name).replace("__", ".").split(".")


def layer_names(layers: list) -> list[str]:
    """Names of layers (raw dicts or specs); an unnamed one is `<type><k>`, k counting per
    type (conv1, pool1, conv2, ...)."""
    counts: dict = {}
    names = []
    for layer in layers:
        get = layer.get if isinstance(layer, dict) else lambda k: getattr(layer, k, None)
        kind = get("type")
        counts[kind] = counts.get(kind, 0) + 1
        names.append(get("name") or f"{kind}{counts[kind]}")
    return names


def _raw_layers(raw: dict) -> list:
    model = raw.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    return layers if isinstance(layers, list) else []


def param_names(raw: dict) -> list[str]:
    """Every parameter of a raw config (or the estimator's model/train dicts), `__` form:
    `<layer>__<attribute>`, `model__<key>`, `train__<key>` (nested blocks that are set
    expand into their keys) and `random_state`."""
    names = []
    for name, layer in zip(layer_names(_raw_layers(raw)), _raw_layers(raw)):
        kind = layer.get("type") if isinstance(layer, dict) else None
        names += [f"{name}__{key}" for key in settable_fields(kind)]
    for section in PARAM_SECTIONS:
        names += _field_names(_sub_schema(Config.model_fields[section]), raw.get(section), section,
                              skip={"layers", "seed"})
    return names + ["random_state"]


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


def set_param(raw: dict, name: str, value: Any, source: str = "--set",
              params_only: bool = False) -> None:
    """Set a setting by name in a raw config (creating an optional block such as
    `train.early_stopping` when a key of it is set). Unknown names raise ConfigError
    (source, name, what is allowed); values are checked later, by `validate`.
    `params_only`: accept only parameters (what the estimator and a search space take)."""
    node, key, _ = _resolve(raw, name, source, params_only, create=True)
    node[key] = value


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
    if parts[0] in names:
        layer = layers[names.index(parts[0])]
        kind = layer.get("type") if isinstance(layer, dict) else None
        if len(parts) != 2 or parts[1] not in settable_fields(kind):
            raise ConfigError(source, name, f"no such setting; {parts[0]} ({kind}) takes "
                              + ", ".join(settable_fields(kind)))
        return layer, parts[1], LAYER_TYPES[kind]
    heads = PARAM_SECTIONS if params_only else tuple(Config.model_fields)
    if parts[0] not in heads or (params_only and parts[:2] == ["model", "layers"]):
        raise ConfigError(source, name, "no such setting; a parameter starts with a layer name ("
                          + ", ".join(names) + "), model or train; a config setting (--set) "
                          "also with " + ", ".join(h for h in Config.model_fields if h not in PARAM_SECTIONS))
    node, schema = raw, Config
    for i, part in enumerate(parts):
        field = schema.model_fields.get(part) if schema is not None else None
        if schema is not None and field is None:
            where = ".".join(parts[:i]) or "a config"
            raise ConfigError(source, name, f"no such setting; {where} takes "
                              + ", ".join(schema.model_fields))
        if i == len(parts) - 1:
            return node, part, schema
        sub = _sub_schema(field) if field is not None else None
        if sub is None and not (field is not None and _is_mapping(field)) and schema is not None:
            raise ConfigError(source, name, f"no such setting; {'.'.join(parts[:i + 1])} "
                              "has no settings under it")
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
    return typing.get_origin(field.annotation) is dict       # search.space: any key


def validate(raw: dict, source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(source, *_describe(e.errors()[0], raw)) from None


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, merge the base chain, apply `key=value` overrides, validate."""
    raw = load_raw(path)
    for text in overrides:
        set_param(raw, *parse_override(text))
    return validate(raw, str(path))


# --------------------------------------------------------------------------- errors

def _describe(err: dict, raw: dict) -> tuple[str, str]:
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
                    i += 1                                # skip the union tag pydantic adds
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
        msg = msg[len("Value error, "):]
    return field, msg


def _raw_layer_name(raw: dict, index: int) -> str | None:
    layers = raw.get("model", {}).get("layers") if isinstance(raw.get("model"), dict) else None
    if isinstance(layers, list) and index < len(layers) and isinstance(layers[index], dict):
        return layer_names(layers)[index]
    return None


def _allowed_keys(err: dict, raw: dict) -> list[str]:
    loc = [p for p in err["loc"][:-1]]
    if loc[:2] == ["model", "layers"] and len(loc) >= 4:
        return ["name"] + settable_fields(loc[3]) + ["type"]
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        ann = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                    and issubclass(a, BaseModel)), ann)
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

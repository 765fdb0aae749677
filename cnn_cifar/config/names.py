"""The one router of setting names, shared by `--set`, a config's `set:`, search spaces
and the estimator's `get_params`/`set_params`.

A name is a dotted path (`conv2.kernel`, `train.optimizer.learning_rate`) or the same
with `__` (`conv2__kernel`, scikit-learn's form); a first part that names a layer
addresses `model.layers`. Parameters (what the estimator, a search space and `--set`
share) are layer attributes, `model.*`, `train.*` and `random_state`, the estimator's
name for `train.seed`; `--set` also reaches `data`, `cv`, `search`, `name` and
`description`. Names are checked here; values are checked when the config is validated.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .errors import ConfigError, did_you_mean
from .layers import LAYER_TYPES, layer_names, settable_fields
from .schema import Config

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
    return _find(raw, name, "", params_only=True, create=False).value()


def set_param(raw: dict, name: str, value: Any, source: str = "--set", params_only: bool = False) -> Setting:
    """Set a setting by name in a raw config (creating an optional block such as
    `train.early_stopping` when a key of it is set) and return where it now lives.
    Unknown names raise ConfigError (source, name, what is allowed); values are checked
    later, by `validate`. `params_only`: accept only parameters (what the estimator and a
    search space take)."""
    setting = _find(raw, name, source, params_only, create=True)
    # a layer list set here is changed by the names after it
    setting.node[setting.key] = copy.deepcopy(value)
    return setting


def check_param(raw: dict, name: str, source: str, field: str) -> None:
    """ConfigError(source, field, ...) unless `name` is a parameter of this config."""
    try:
        _find(raw, name, source, params_only=True, create=False)
    except ConfigError as e:
        raise ConfigError(source, field, e.message) from None


# --------------------------------------------------------------------------- the schema walk


@dataclass(frozen=True)
class Setting:
    """Where a named setting lives in a raw config: the dict that holds it, its key in that
    dict, and the schema that dict follows (None inside a free mapping such as
    `search.space`, whose keys are the user's). `node` is detached from the config when a
    block on the way was absent and the walk did not create it."""

    node: dict
    key: str
    schema: type[BaseModel] | None

    def value(self) -> Any:
        """The value set in the config, else the schema's default (None in a free mapping)."""
        if self.key in self.node:
            return self.node[self.key]
        if self.schema is None:
            return None
        field = self.schema.model_fields[self.key]
        return field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]


def _find(raw: dict, name: str, source: str, params_only: bool, create: bool) -> Setting:
    """The setting `name` addresses: a layer's attribute when its first part (or all but its
    last, for a dotted layer name) names a layer, else a field of the config's schema, or a
    key inside a free mapping under one. `create`: add the absent blocks on the way."""
    parts = split_name(name)
    layers = _raw_layers(raw)
    names = layer_names(layers)
    # a layer's name may hold dots (block2.conv): the attribute is the last part
    owner = ".".join(parts[:-1]) if ".".join(parts[:-1]) in names else parts[0]
    if owner in names:
        return _layer_attribute(layers[names.index(owner)], owner, parts, name, source)
    heads = PARAM_SECTIONS if params_only else tuple(Config.model_fields)
    if parts[0] not in heads or (params_only and parts[:2] == ["model", "layers"] and len(parts) > 2):
        raise ConfigError(source, name, _unknown(raw, name, names, params_only))
    return _schema_field(raw, parts, name, source, create)


def _unknown(raw: dict, name: str, names: list[str], params_only: bool) -> str:
    """What a name that starts with neither a layer nor a section is told. Where the
    config's search draws its layers, the config's own are the wrong ones to suggest to a
    `--set`: a structure's layer is set in the space (whose check names the structures')."""
    others = ", ".join(h for h in Config.model_fields if h not in PARAM_SECTIONS)
    if _draws_layers(raw) and not params_only:
        return (
            f"no such setting; {space_instead(name)}; other settings start with model, train, "
            f"{others} (the config's own layers, which its search replaces: {', '.join(names)})"
        )
    hint = did_you_mean(name.split(".")[0], [*names, *Config.model_fields])
    return (
        f"no such setting{hint}; a parameter starts with a layer name ({', '.join(names)}), model or "
        f"train; a config setting (--set) also with {others}"
    )


def _draws_layers(raw: dict) -> bool:
    """Whether a raw config's search varies its layers (a `model.layers` entry in
    search.space), so that its own layer list is not what the search trains."""
    search = raw.get("search")
    space = search.get("space") if isinstance(search, dict) else None
    return isinstance(space, dict) and any(is_layer_list(str(key)) for key in space)


def space_instead(name: str) -> str:
    """Where a layer's setting goes in a search that draws its layers: its space."""
    return (
        "this search draws its layers (search.space's model.layers), so a layer's setting "
        f"goes into the space: --set 'search.space.{name}=[VALUE]'"
    )


def _layer_attribute(layer, owner: str, parts: list[str], name: str, source: str) -> Setting:
    kind = layer.get("type") if isinstance(layer, dict) else None
    attribute = parts[-1] if len(parts) == owner.count(".") + 2 else None
    if attribute is None or attribute not in settable_fields(kind):
        raise ConfigError(
            source,
            name,
            f"no such setting{did_you_mean(parts[-1], settable_fields(kind))}; {owner} ({kind}) takes "
            + ", ".join(settable_fields(kind)),
        )
    # settable fields come from a known type only: the layer is a mapping of that type
    return Setting(layer, attribute, LAYER_TYPES[str(kind)])


def _schema_field(raw: dict, parts: list[str], name: str, source: str, create: bool) -> Setting:
    """Follow `parts` down the config's schema, block by block; a field holding a free
    mapping ends the walk, the rest of the name being one key of that mapping."""
    node: dict = raw
    schema: type[BaseModel] = Config
    for i, part in enumerate(parts):
        field = schema.model_fields.get(part)
        if field is None:
            where = ".".join(parts[:i]) or "a config"
            raise ConfigError(
                source,
                name,
                f"no such setting{did_you_mean(part, schema.model_fields)}; {where} takes "
                + ", ".join(schema.model_fields),
            )
        if i == len(parts) - 1:
            return Setting(node, part, schema)
        sub = _sub_schema(field)
        if sub is None and not _is_mapping(field):
            raise ConfigError(
                source, name, f"no such setting; {'.'.join(parts[: i + 1])} has no settings under it"
            )
        node = _block(node, part, create)
        if sub is None:  # search.space: its keys are parameter names, in either spelling
            rest = parts[i + 1 :]
            return Setting(node, next((k for k in node if split_name(k) == rest), ".".join(rest)), None)
        schema = sub
    raise AssertionError("split_name gives one part at least")


def _block(node: dict, key: str, create: bool) -> dict:
    """The mapping under `key` (an empty one where it is absent or not a mapping, put in
    place when `create`)."""
    block = node.get(key)
    if not isinstance(block, dict):
        block = {}
        if create:
            node[key] = block
    return block


def _sub_schema(field: FieldInfo) -> type[BaseModel] | None:
    """The pydantic model a field holds (Optional[...] unwrapped), or None."""
    for ann in (field.annotation, *typing.get_args(field.annotation)):
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann
    return None


def _is_mapping(field: FieldInfo) -> bool:
    return typing.get_origin(field.annotation) is dict  # search.space: any key

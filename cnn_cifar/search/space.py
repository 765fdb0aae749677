"""Search spaces: what a config's `search.space` block means, and the candidates it gives.

Each entry names an estimator parameter (`conv2__kernel`, `hidden__units`,
`train__batch_size`, `train__optimizer__learning_rate`, `model__augment__flip`; the names
`config.param_names` lists, checked by `config.check_param`) and gives its values:

  [16, 32, 64]                 choices, drawn with equal probability
  {randint: [low, high]}       integers, low <= x < high  (scipy.stats.randint: high excluded)
  {uniform: [low, high]}       floats,   low <= x <= high (scipy.stats.uniform(low, high - low))
  {loguniform: [low, high]}    floats,   low <= x <= high, uniform in log x; needs 0 < low
                               (scipy.stats.loguniform(low, high))

A `model.layers` entry varies the layers themselves (`structures`): the space becomes
scikit-learn's list of dicts, one per structure, each with the entries its layers take.

The block is read as data and mapped to scipy.stats frozen distributions; nothing in it is
evaluated as code. Candidates are exactly scikit-learn's `ParameterSampler` draws, which
is what `RandomizedSearchCV` fits. A name or value the config cannot take fails here,
before anything runs, as one line: file, `search.space.<name>`, what is allowed.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np

from ..config.errors import ConfigError
from ..config.layers import layer_names
from ..config.loader import to_dict, validate
from ..config.names import check_param, layers_first, set_param, split_name
from ..config.schema import Config
from . import structures

# parsed: each name's choices or distribution; a list of such dicts, one per structure,
# where the space draws the layers themselves (ParameterSampler takes either)
Space = dict[str, Any] | list[dict[str, Any]]
FORMS = "a list of choices, {randint: [low, high]}, {uniform: [low, high]} or {loguniform: [low, high]}"


def _randint(low, high):
    from scipy.stats import randint

    return randint(low, high)


def _uniform(low, high):
    from scipy.stats import uniform

    return uniform(low, high - low)


def _loguniform(low, high):
    from scipy.stats import loguniform

    return loguniform(low, high)


# name -> (scipy constructor, integer bounds?, needs low > 0?)
DISTRIBUTIONS = {
    "randint": (_randint, True, False),
    "uniform": (_uniform, False, False),
    "loguniform": (_loguniform, False, True),
}


# --------------------------------------------------------------------------- values


def parse_space(cfg: Config, source: str) -> Space:
    """`cfg.search.space` -> {name: list of choices | scipy frozen distribution}, the form
    ParameterSampler takes; a space with structure (a `model.layers` entry) -> a list of
    such dicts, one per structure. Raises ConfigError on an unknown name or a bad value."""
    base = to_dict(cfg)
    entries = dict(cfg.search_block().space)
    key = structures.structure_key(entries, source)
    if key is not None:
        return _structural_space(base, entries, key, source)
    return {name: _parse_entry(base, name, value, source) for name, value in entries.items()}


def _parse_entry(base: dict, name: str, value, source: str):
    """One entry's choices or distribution, its values checked against `base`."""
    field = f"search.space.{name}"
    check_param(base, name, source, field)
    if isinstance(value, list):
        if not value:
            raise ConfigError(source, field, f"empty list; give at least one choice ({FORMS})")
        probes, parsed = value, value
    elif isinstance(value, dict):
        parsed, probes = _distribution(value, source, field)
    else:
        raise ConfigError(
            source,
            field,
            f"{value!r} is not a search space; use {FORMS} (a fixed value belongs in the config or --set)",
        )
    for v in probes:
        _check_value(base, name, v, source)
    return parsed


def _structural_space(base: dict, entries: dict, key: str, source: str) -> list[dict[str, Any]]:
    """scikit-learn's list-of-dicts form: per structure, `model__layers: [its layers]` and
    the entries that apply to it (a setting of one of its layers, or of model/train), so a
    layer's parameter is drawn only for the candidates that have the layer."""
    field = f"search.space.{key}"
    found = structures.expand(entries.pop(key), field, source)
    space, applied = [], set()
    for i, layers in enumerate(found, start=1):
        try:
            one = to_dict(candidate_config(base, {key: layers}, source))
        except ConfigError as e:
            raise ConfigError(
                source,
                field,
                f"structure {i} of {len(found)} ({_layer_list(layers)}) cannot be built: "
                f"{e.field}: {e.message}",
            ) from None
        names = layer_names(layers)
        dist: dict[str, Any] = {key: [layers]}
        for name, value in entries.items():
            if structures.applies(name, names):
                dist[name] = _parse_entry(one, name, value, source)
                applied.add(name)
        space.append(dist)
    for name in entries:
        if name not in applied:
            every = sorted({n for layers in found for n in layer_names(layers)})
            raise ConfigError(
                source,
                f"search.space.{name}",
                f"no structure has a layer {structures.layer_of(name)!r}; their layers: {', '.join(every)}",
            )
    return space


def _layer_list(layers: list[dict]) -> str:
    return ", ".join(layer_names(layers))


def _distribution(spec: dict, source: str, field: str):
    if len(spec) != 1:
        raise ConfigError(
            source, field, f"a distribution is one key, e.g. {{randint: [50, 1000]}}; got {spec!r}"
        )
    ((kind, bounds),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            source,
            field,
            f"unknown distribution {kind!r}; allowed: {', '.join(DISTRIBUTIONS)} (or a list of choices)",
        )
    make, integer, positive = DISTRIBUTIONS[kind]
    where = f"{field}.{kind}"
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ConfigError(source, where, f"needs [low, high], got {bounds!r}")
    low, high = (_bound(b, integer, source, where) for b in bounds)
    if positive and low <= 0:
        raise ConfigError(source, where, f"low must be > 0 (log scale), got {low}")
    if low >= high:
        raise ConfigError(
            source,
            where,
            f"needs low < high, got [{low}, {high}]"
            + (" (high is excluded, as in scipy.stats.randint)" if integer else ""),
        )
    # values that must be valid settings: both ends and, for floats, an interior point that
    # is not round (catches a float distribution on an integer setting)
    probes = [low, high - 1] if integer else [low, high, low + (high - low) / math.pi]
    return make(low, high), probes


def _bound(b, integer: bool, source: str, where: str):
    if isinstance(b, bool):
        raise ConfigError(source, where, f"bounds must be numbers, got {b!r}")
    if integer:
        if not isinstance(b, int):
            raise ConfigError(source, where, f"randint bounds must be integers, got {b!r}")
        return b
    if isinstance(b, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(b)
        except ValueError:
            pass
    if not isinstance(b, (int, float)) or not math.isfinite(b):
        raise ConfigError(source, where, f"bounds must be finite numbers, got {b!r}")
    return float(b)


def _check_value(base: dict, name: str, value, source: str) -> None:
    """Reject a value the schema refuses for this very setting (a bad type or range).
    Errors that come from combining settings are left to each candidate."""
    try:
        candidate_config(base, {name: value}, source)
    except ConfigError as e:
        if e.field.endswith(split_name(name)[-1]):
            raise ConfigError(
                source, f"search.space.{name}", f"value {value!r} is not allowed: {e.message}"
            ) from None


# --------------------------------------------------------------------------- candidates


def sample(space: Space, n_iter: int, random_state) -> list[dict]:
    """RandomizedSearchCV's candidates: ParameterSampler draws, as plain Python values.
    (All-list spaces are sampled without replacement and give at most the grid size.)"""
    from sklearn.model_selection import ParameterSampler

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The total space of parameters", UserWarning)
        draws = list(ParameterSampler(space, n_iter, random_state=random_state))
    return [{k: native(v) for k, v in p.items()} for p in draws]


def native(v):
    """numpy scalars -> Python scalars (for JSON, YAML and a readable repr)."""
    return v.item() if isinstance(v, np.generic) else v


def candidate_config(base: dict, params: dict, source: str) -> Config:
    """The resolved config of one candidate: `base` (a config dict) with `params` set and
    the search block dropped. Raises ConfigError if the combination is invalid."""
    raw = {key: _copied(value) for key, value in base.items() if key != "search"}
    for name, value in layers_first(params):
        set_param(raw, name, native(value), source=source, params_only=True)
    return validate(raw, source)


def _copied(value):
    """A copy of plain config data (`to_dict`'s dicts, lists and scalars), several times
    faster than copy.deepcopy, which a search pays once per candidate."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else copy.deepcopy(value)

"""Structure in a search space: which layers a candidate has, drawn as its attributes are.

A search space may hold one structural entry, `model.layers`. Like a config's
model.layers it is the layer list in order, but some of its parts vary:

  {type: conv, ...}                      a layer, in every structure
  {optional: PART}                       the part, or nothing
  {choice: [ALT, ...]}                   one alternative: a part, a list of parts, or the
                                         name of a config (a YAML file from this one's
                                         folder, or shipped), which stands for that
                                         config's model.layers
  {repeat: [1, 2], name: block, layers: [PART, ...]}
                                         the block k times, k one of the list; the layers
                                         of repeat i are named block<i>.<layer> (block2.conv)

A PART is any of these; a list of parts is a sequence. `expand` lists every structure the
entry allows, in order (an optional part absent first), each a layer list with every layer
named; `space.parse_space` turns them into scikit-learn's list-of-dicts form. Here too:
how a drawn structure reads (`shown_params`), config names saved as their layers
(`inline_config_names`), and the `--set` a structural search refuses.
"""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path
from typing import Any

from ..config.errors import ConfigError
from ..config.layers import LAYER_NAME, layer_names
from ..config.loader import find_config, load_raw, to_dict, validate
from ..config.names import PARAM_SECTIONS, is_layer_list, space_instead, split_name
from ..config.schema import Config
from ..config.yaml_io import parse_override

MAX_STRUCTURES = 256  # each structure is one dict of the space, validated before anything runs
PART = (
    "a layer ({type: ...}), a list of parts, a config name, {optional: PART}, "
    "{choice: [ALT, ...]} or {repeat: [k, ...], name: NAME, layers: [PART, ...]}"
)
STRUCTURAL = ("optional", "choice", "repeat")


def structure_key(space: dict, source: str = "") -> str | None:
    """The space's entry that names the layer list (`model.layers` or `model__layers`)."""
    keys = [k for k in space if is_layer_list(k)]
    if len(keys) > 1:
        raise ConfigError(source, "search.space", f"names model.layers twice ({' and '.join(keys)})")
    return keys[0] if keys else None


class Walk:
    """One walk through a structural entry: where its file is, to find configs by name."""

    def __init__(self, source: str):
        self.source = source
        self.folder = Path(source).parent

    def error(self, where: str, message: str) -> ConfigError:
        return ConfigError(self.source, where, message)

    def expand(self, node: Any, where: str) -> list[list[dict]]:
        """Every layer list `node` allows, in order (layers are copies, named where they
        are a repeat's or a config's)."""
        if isinstance(node, list):
            return self._sequence(node, where)
        if isinstance(node, str):
            return [self.config_layers(node, where)]
        if not isinstance(node, dict):
            raise self.error(where, f"{node!r} is not a part; a part is {PART}")
        if "type" in node:
            return [[copy.deepcopy(node)]]
        kind = self._kind(node, where)
        if kind == "optional":
            return [[], *self.expand(node["optional"], f"{where}.optional")]
        if kind == "choice":
            return self._choice(node["choice"], f"{where}.choice")
        return self._repeat(node, where)

    def _kind(self, node: dict, where: str) -> str:
        unknown = [k for k in node if k not in (*STRUCTURAL, "name", "layers")]
        if unknown:
            raise self.error(f"{where}.{unknown[0]}", f"unknown key; a part is {PART}")
        kinds = [k for k in STRUCTURAL if k in node]
        if len(kinds) != 1:
            raise self.error(where, f"a part is one of {PART}; got the keys {', '.join(map(str, node))}")
        extra = [k for k in node if k != kinds[0]]
        if kinds[0] != "repeat" and extra:
            raise self.error(
                f"{where}.{extra[0]}", f"{kinds[0]} takes no other key (name and layers are repeat's)"
            )
        return kinds[0]

    def _sequence(self, parts: list, where: str) -> list[list[dict]]:
        out: list[list[dict]] = [[]]
        for i, part in enumerate(parts):
            alternatives = self.expand(part, f"{where}[{i}]")
            self._check_count(len(out) * len(alternatives), where)
            out = [head + copy.deepcopy(tail) for head in out for tail in alternatives]
        return out

    def _choice(self, alternatives, where: str) -> list[list[dict]]:
        if not isinstance(alternatives, list) or not alternatives:
            raise self.error(
                where,
                "needs a list of at least one alternative (a part, a list of parts or a config "
                f"name); got {alternatives!r}",
            )
        out = []
        for i, alt in enumerate(alternatives):
            out += self.expand(alt, f"{where}[{i}]")
            self._check_count(len(out), where)
        return out

    def _repeat(self, node: dict, where: str) -> list[list[dict]]:
        times = node["repeat"]
        times = [times] if isinstance(times, int) and not isinstance(times, bool) else times
        if (
            not isinstance(times, list)
            or not times
            or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in times)
            or len(set(times)) != len(times)
        ):
            raise self.error(
                f"{where}.repeat",
                "how many times: a positive integer or a list of different ones, e.g. [1, 2, 3]; "
                f"got {times!r}",
            )
        name = node.get("name", "block")
        if not isinstance(name, str) or "." in name or not re.match(LAYER_NAME, name):
            raise self.error(
                f"{where}.name", f"{name!r} is not a block name (letters, digits, single underscores)"
            )
        if "layers" not in node:
            raise self.error(where, "a repeat needs layers: [PART, ...], the block it repeats")
        block = [_named(layers) for layers in self.expand(node["layers"], f"{where}.layers")]
        out: list[list[dict]] = []
        for k in times:
            self._check_count(len(out) + len(block) ** k, where)
            for combo in itertools.product(block, repeat=k):
                out.append(
                    [
                        {**layer, "name": f"{name}{i}.{layer['name']}"}
                        for i, one in enumerate(combo, 1)
                        for layer in one
                    ]
                )
        return out

    def _check_count(self, n: int, where: str) -> None:
        if n > MAX_STRUCTURES:
            raise self.error(
                where,
                f"allows more than {MAX_STRUCTURES} structures; search fewer "
                "(each is checked before the search starts)",
            )

    def config_layers(self, name: str, where: str) -> list[dict]:
        """The layers of the config `name` (found as `base:` finds its base: a YAML file
        from this config's folder, else a shipped config), named as that config names
        them. Any mistake in reaching it names this entry first, then the file tried."""
        try:
            path = find_config(name, self.folder)
            model = load_raw(path).get("model")
        except ConfigError as e:
            raise self.error(where, str(e)) from None
        layers = model.get("layers") if isinstance(model, dict) else None
        if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) for x in layers):
            raise self.error(where, f"{path}: no model.layers list to take")
        return _named(layers)

    def inline(self, node: Any, where: str) -> Any:
        """`node` with every config name replaced by that config's layers, so that a saved
        search (search.json) resumes without the files it named."""
        if isinstance(node, str):
            return self.config_layers(node, where)
        if isinstance(node, list):
            return [self.inline(part, f"{where}[{i}]") for i, part in enumerate(node)]
        if isinstance(node, dict) and "type" not in node:
            return {
                k: self.inline(v, f"{where}.{k}") if k in ("optional", "choice", "layers") else v
                for k, v in node.items()
            }
        return node


def _named(layers: list[dict]) -> list[dict]:
    """Copies of raw layers, each with its name (`layers.layer_names`: conv1, pool1, ...)."""
    return [
        {**copy.deepcopy(layer), "name": name}
        for layer, name in zip(layers, layer_names(layers), strict=True)
    ]


def expand(entry: Any, field: str, source: str) -> list[list[dict]]:
    """Every structure of a space's `model.layers` entry, each a list of named layers."""
    return [_named(layers) for layers in Walk(source).expand(entry, field)]


def applies(name: str, names: list[str]) -> bool:
    """Whether a space entry belongs to a structure with these layer names: a model or
    train setting belongs to every one, a layer's setting to those that have the layer."""
    return split_name(name)[0] in PARAM_SECTIONS or layer_of(name) in names


def layer_of(name: str) -> str:
    """The layer a parameter name addresses if it addresses one: `block2.conv.filters` ->
    `block2.conv`, `hidden__units` -> `hidden`."""
    return ".".join(split_name(name)[:-1])


def structure_of(params: dict) -> tuple[str, list] | None:
    """(its name, the layer list) of a candidate drawn from a space with structure; None
    for a space of attributes only."""
    return next(((k, v) for k, v in params.items() if is_layer_list(k)), None)


def shown_params(params: dict) -> dict:
    """A candidate's parameters as people read them (tables, cv_results.csv, plots, tracking):
    the layer list of a structure as its layers' names, `conv1 > pool1 > hidden`, first."""
    found = structure_of(params)
    if found is None:
        return params
    key, layers = found
    return {key: structure_names(layers), **{k: v for k, v in params.items() if k != key}}


def structure_names(layers: list) -> str:
    """A drawn layer list by its layers' names: `conv1 > pool1 > hidden`."""
    return " > ".join(layer_names(layers))


def refuse_layer_overrides(cfg: Config, overrides, source: str) -> None:
    """A `--set` of the config's own layers would change nothing in a search over structure,
    which replaces them: refused, naming what to set instead and the layers it may name."""
    space = cfg.search_block().space
    key = structure_key(space, source)
    if key is None:
        return
    names = layer_names(to_dict(cfg)["model"]["layers"])
    for text in overrides:
        name = parse_override(text)[0]
        if layer_of(name) in names or split_name(name)[:2] == ["model", "layers"]:
            theirs = ", ".join(_structure_layer_names(space[key], key, source))
            raise ConfigError(
                "--set",
                name,
                f"{space_instead(name)} (the config's own layers are not searched); "
                f"the structures' layers: {theirs}",
            )


def _structure_layer_names(entry: Any, key: str, source: str) -> list[str]:
    """Every layer name some structure of the entry has, sorted: what may be set."""
    return sorted({n for layers in expand(entry, f"search.space.{key}", source) for n in layer_names(layers)})


def inline_config_names(cfg: Config, source: str) -> Config:
    """`cfg` with the config names of its structural entry replaced by their layers: what a
    search saves, so that --resume does not need the files the names pointed to."""
    space = cfg.search_block().space
    key = structure_key(space, source)
    if key is None:
        return cfg
    raw = to_dict(cfg)
    raw["search"]["space"][key] = Walk(source).inline(space[key], f"search.space.{key}")
    return validate(raw, source)

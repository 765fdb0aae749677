"""A config's values are checked as typed, and a refused one is blamed where it was written.

- Numeric settings take numbers only: YAML's booleans (`true`, `yes`) and quoted numbers
  are refused, in a file and through `--set`, for every numeric field of every layer type
  and of every block (the corpus is read from the schema, so a new field is covered).
  An int stays good where a float is expected (YAML writes 1.0 as `1`), numpy scalars
  (what scipy's distributions draw) are numbers, and a saved config reads back.
- A value refused after `--set KEY=VALUE` or a file's `set:` entry names that override.
- An unknown key is reported before the field it leaves missing, with the nearest name.
"""

from __future__ import annotations

import json
import subprocess
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CONFIGS, cli_command, invoke, make_images, write_npz
from pydantic import BaseModel

from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.layers import LAYER_TYPES
from cnn_cifar.config.loader import load_config, to_dict, validate
from cnn_cifar.config.schema import Config, Train
from cnn_cifar.training.estimator import CNNClassifier

# --------------------------------------------------------------------------- the corpus


def number_type(annotation) -> type | None:
    """int or float where a field holds a number (PositiveInt, float | None, ...), else None
    (a bool is not a number here, nor a block, a list or a Literal)."""
    if annotation in (int, float):
        return annotation
    for arg in typing.get_args(annotation):
        kind = number_type(arg)
        if kind is not None:
            return kind
    return None


def block_of(annotation) -> type[BaseModel] | None:
    """The config block a field holds (Optional unwrapped), else None."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def numeric_fields(schema: type[BaseModel], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type]]:
    """(path, int or float) of every numeric field under `schema`, its blocks walked."""
    out = []
    for key, field in schema.model_fields.items():
        block = block_of(field.annotation)
        if block is not None:
            out += numeric_fields(block, (*path, key))
        elif (kind := number_type(field.annotation)) is not None:
            out.append(((*path, key), kind))
    return out


LAYER_FIELDS = [
    (kind, key, number)
    for kind, cls in LAYER_TYPES.items()
    for (key,), number in numeric_fields(cls)
    if key not in ("name", "type")
]
BLOCK_FIELDS = numeric_fields(Config)  # model (not its layers), train, cv, data, search
TRAIN_FIELDS = numeric_fields(Train)

# a YAML token that is not a number, as a config's author writes it: (token, what it reads as)
BAD_TOKENS = {
    "true": "not the boolean true",
    "yes": "not the boolean true",
    "'3'": "not the string '3' (a number in quotes is a string",
}


def test_the_corpus_covers_every_numeric_field():
    """The walk finds what the schema holds: each layer type's numbers and train's own,
    nested blocks included (a field added to the schema joins the corpus by itself)."""
    layer_keys = {(kind, key) for kind, key, _ in LAYER_FIELDS}
    assert {("conv", "filters"), ("conv", "kernel"), ("conv", "strides"), ("pool", "size")} <= layer_keys
    assert {("dense", "units"), ("dropout", "rate"), ("batchnorm", "momentum")} <= layer_keys
    assert {
        ("whiten", "kernel"),
        ("whiten", "eps"),
        ("whiten", "images"),
        ("whiten", "bias_epochs"),
    } <= layer_keys
    train_paths = {".".join(("train", *path)) for path, _ in TRAIN_FIELDS}
    assert train_paths == {".".join(path) for path, _ in BLOCK_FIELDS if path[0] == "train"}
    assert {
        "train.epochs",
        "train.seed",
        "train.optimizer.learning_rate",
        "train.averaging.every",
    } <= train_paths
    assert {"cv.n_splits", "data.subset", "search.n_iter", "search.prune.factor", "model.rescale"} <= {
        ".".join(path) for path, _ in BLOCK_FIELDS
    }
    assert len(LAYER_FIELDS) >= 13 and len(TRAIN_FIELDS) >= 20


def base_raw(data: Path, layers: list | None = None) -> dict:
    """A valid config on `data` with a search block (so its fields can be set too)."""
    return {
        "name": "values",
        "data": {"source": "npz", "path": str(data)},
        "model": {
            "layers": layers
            or [
                {"name": "conv1", "type": "conv", "filters": 4, "kernel": 3},
                {"name": "hidden", "type": "dense", "units": 8},
            ]
        },
        "train": {"epochs": 1, "batch_size": 16},
        "cv": {"n_splits": 2},
        "search": {"space": {"train.epochs": [1, 2]}},
    }


def minimal_layer(kind: str) -> dict:
    """A layer of type `kind` with its required numbers given (2)."""
    cls = LAYER_TYPES[kind]
    return {"type": kind, **{k: 2 for k, f in cls.model_fields.items() if f.is_required() and k != "type"}}


def put(raw: dict, path: tuple[str, ...], value) -> dict:
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return raw


def write_with_token(path: Path, raw: dict, token: str) -> Path:
    """`raw` as YAML with the placeholder value written as `token`, verbatim (so `yes` is
    YAML's yes, not a dumped string)."""
    path.write_text(yaml.safe_dump(raw, sort_keys=False).replace("__BAD__", token))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert lines and lines[-1].startswith("Error: ") and "Traceback" not in result.output, result.output
    return lines[-1]


CASES = [
    pytest.param(
        {"layer": kind},
        ("model", "layers", 0, key),
        f"{kind}1.{key}",
        f"model.layers[0] ({kind}1).{key}",
        number,
        id=f"{kind}.{key}",
    )
    for kind, key, number in LAYER_FIELDS
] + [
    pytest.param({}, path, ".".join(path), ".".join(path), number, id=".".join(path))
    for path, number in BLOCK_FIELDS
]


@pytest.mark.parametrize("token", list(BAD_TOKENS))
@pytest.mark.parametrize("layer, path, set_key, field, number", CASES)
def test_a_number_field_refuses_a_boolean_and_a_quoted_number_in_a_file(
    tmp_path, data, layer, path, set_key, field, number, token
):
    layers = [minimal_layer(layer["layer"])] if layer else None
    raw = base_raw(data, layers)
    if layer:
        raw["model"]["layers"][0][path[-1]] = "__BAD__"
    else:
        put(raw, path, "__BAD__")
    config = write_with_token(tmp_path / "bad.yaml", raw, token)
    line = error_line(invoke("cv", config))
    expected = "integer" if number is int else "number"
    assert line.startswith(f"Error: {config}: {field}: Input should be a valid {expected}, "), line
    assert BAD_TOKENS[token] in line, line


@pytest.mark.parametrize("token", list(BAD_TOKENS))
@pytest.mark.parametrize("layer, path, set_key, field, number", CASES)
def test_a_number_field_refuses_a_boolean_and_a_quoted_number_through_set(
    tmp_path, data, layer, path, set_key, field, number, token
):
    layers = [minimal_layer(layer["layer"])] if layer else None
    config = tmp_path / "good.yaml"
    config.write_text(yaml.safe_dump(base_raw(data, layers), sort_keys=False))
    line = error_line(invoke("cv", config, "--set", f"{set_key}={token}"))
    expected = "integer" if number is int else "number"
    assert line.startswith(f"Error: --set {set_key}={token}: Input should be a valid {expected}, "), line
    assert BAD_TOKENS[token] in line, line


def test_an_int_is_a_float_and_a_fraction_is_not_an_int(tmp_path, data):
    """YAML writes one as `1`: a float field takes it (as 1.0); an int field refuses 2.5
    and 2.0 alike (no number is rounded into a layer's size)."""
    config = tmp_path / "c.yaml"
    raw = base_raw(data)
    raw["train"]["optimizer"] = {"learning_rate": 1, "momentum": 0}
    raw["model"]["layers"].insert(1, {"type": "dropout", "rate": 0})
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(config, ["train.label_smoothing=0", "model.rescale=1"])
    assert cfg.train.optimizer.learning_rate == 1.0 and isinstance(cfg.train.optimizer.learning_rate, float)
    assert (cfg.model.layers[1].rate, cfg.train.label_smoothing, cfg.model.rescale) == (0.0, 0.0, 1.0)
    for value in ("2.5", "2.0"):
        line = error_line(invoke("cv", config, "--set", f"conv1.filters={value}"))
        assert line == f"Error: --set conv1.filters={value}: Input should be a valid integer, not {value}"


def test_a_float_in_exponent_form_is_a_number(tmp_path, data):
    """PyYAML (YAML 1.1) reads 1e-3 and 1.0e5 as strings; a config reads them as YAML 1.2
    does, as floats, in a file and through --set. Quoted, they stay strings, refused."""
    raw = base_raw(data)
    raw["train"]["optimizer"] = {"learning_rate": "__BAD__", "epsilon": 1e-8}
    config = write_with_token(tmp_path / "c.yaml", raw, "1e-3")
    cfg = load_config(config, ["train.optimizer.epsilon=1e-7", "train.optimizer.weight_decay=5e+2"])
    assert (cfg.train.optimizer.learning_rate, cfg.train.optimizer.epsilon) == (1e-3, 1e-7)
    assert cfg.train.optimizer.weight_decay == 500.0
    line = error_line(invoke("cv", config, "--set", "train.optimizer.learning_rate='1e-3'"))
    assert line.startswith(
        "Error: --set train.optimizer.learning_rate='1e-3': Input should be a valid number, "
    )
    assert "not the string '1e-3' (a number in quotes is a string" in line


def test_bool_and_choice_fields_keep_their_values(tmp_path, data):
    """Strict types change nothing for the fields that were never numbers: booleans,
    `flip: alternate`, Literal choices, optional numbers given null."""
    raw = base_raw(data)
    raw["model"]["augment"] = {"flip": "alternate"}
    raw["model"]["layers"][0].update(use_bias=False, padding="valid", activation="relu")
    raw["train"].update(seed=None, precision="float32")
    raw["train"]["early_stopping"] = {"monitor": "val_accuracy", "restore_best_weights": True}
    cfg = validate(raw, "raw")
    assert (cfg.model.augment.flip, cfg.model.layers[0].use_bias, cfg.train.seed) == (
        "alternate",
        False,
        None,
    )
    raw["model"]["layers"][0]["use_bias"] = 1
    with pytest.raises(ConfigError, match=r"conv1\)\.use_bias: Input should be a valid boolean, not 1$"):
        validate(raw, "raw")


def test_numpy_scalars_are_numbers():
    """What scipy's distributions draw (numpy.int64, numpy.float64, numpy.bool_) validates as
    the Python number it holds."""
    raw = {
        "name": "np",
        "model": {
            "layers": [
                {"type": "conv", "filters": np.int64(4), "kernel": np.int32(3), "use_bias": np.bool_(False)}
            ]
        },
        "train": {
            "epochs": np.int64(2),
            "optimizer": {"learning_rate": np.float32(0.5), "momentum": np.int64(0)},
        },
    }
    cfg = validate(raw, "raw")
    assert (cfg.model.layers[0].filters, cfg.train.epochs, cfg.train.optimizer.learning_rate) == (4, 2, 0.5)
    assert type(cfg.train.epochs) is int and cfg.model.layers[0].use_bias is False
    with pytest.raises(ConfigError, match=r"train.epochs: Input should be a valid integer, not 2.5"):
        validate({**raw, "train": {"epochs": np.float64(2.5)}}, "raw")


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_a_saved_config_reads_back(name):
    """search.json, best.json and a run's config.yaml hold `to_dict`: read back, through JSON
    or YAML, it is the same config (floats written as 1.0 stay floats, ints stay ints)."""
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert validate(json.loads(json.dumps(to_dict(cfg))), "json") == cfg
    assert validate(yaml.safe_load(yaml.safe_dump(to_dict(cfg))), "yaml") == cfg


# --------------------------------------------------------------------------- the estimator


@pytest.fixture(scope="module")
def images():
    return make_images(40)


def tiny_estimator(**train) -> CNNClassifier:
    return CNNClassifier(
        model={"layers": [{"type": "conv", "filters": 2, "kernel": 3}, {"type": "pool", "size": 2}]},
        train={"epochs": 1, "batch_size": 16, "validation_split": 0.0, **train},
        random_state=0,
    )


@pytest.mark.parametrize(
    "train, expected",
    [
        ({"epochs": True}, "train.epochs: Input should be a valid integer, not the boolean true"),
        ({"epochs": "3"}, "train.epochs: Input should be a valid integer, not the string '3'"),
        (
            {"optimizer": {"learning_rate": True}},
            "train.optimizer.learning_rate: Input should be a valid number",
        ),
    ],
)
def test_the_estimator_refuses_them_in_fit(images, train, expected):
    """scikit-learn's rule: stored as given, refused by fit, with the same words as a config."""
    est = tiny_estimator(**train)
    assert {k: est.train[k] for k in train} == train  # stored unchanged
    with pytest.raises(ValueError) as e:
        est.fit(*images)
    assert str(e.value).startswith(expected), str(e.value)


def test_the_estimator_fits_numpy_values_a_search_draws(images):
    est = tiny_estimator().set_params(
        conv1__filters=np.int64(3), train__optimizer__learning_rate=np.float64(0.1)
    )
    est.set_params(train__epochs=np.int64(1), train__batch_size=np.int64(8))
    est.fit(*images)
    assert est.model_.get_layer("conv1").filters == 3 and est.n_epochs_ == 1


def test_the_estimator_names_a_misspelt_key_first(images):
    est = CNNClassifier(model={"layers": [{"type": "conv", "filters": 2, "kernal": 3}]})
    with pytest.raises(
        ValueError, match=r"^model.layers\[0\] \(conv1\).kernal: unknown key \(did you mean kernel\?\)"
    ):
        est.fit(*images)


# --------------------------------------------------------------------------- blame: --set and set:


def test_a_bad_set_value_names_the_override(tmp_path):
    result = invoke("cv", "two_conv", "--set", "train.epochs=abc")
    assert (
        error_line(result)
        == "Error: --set train.epochs=abc: Input should be a valid integer, not the string 'abc'"
    )


def test_a_bad_value_in_the_file_still_names_the_file(tmp_path, data):
    raw = put(base_raw(data), ("train", "epochs"), "__BAD__")
    config = write_with_token(tmp_path / "c.yaml", raw, "abc")
    line = error_line(invoke("cv", config, "--set", "train.batch_size=8", "--set", "conv1.kernel=5"))
    assert line == f"Error: {config}: train.epochs: Input should be a valid integer, not the string 'abc'"


def test_an_override_that_replaces_a_bad_value_is_not_blamed(tmp_path, data):
    raw = put(base_raw(data), ("train", "epochs"), "__BAD__")
    config = write_with_token(tmp_path / "c.yaml", raw, "yes")
    assert load_config(config, ["train.epochs=2"]).train.epochs == 2
    # an override set a value that a later one replaced whole: the later one is blamed
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base_raw(data), sort_keys=False))
    line = error_line(
        invoke(
            "cv",
            good,
            "--set",
            "conv1.filters=8",
            "--set",
            "model.layers=[{type: conv, filters: yes, kernel: 3}]",
        )
    )
    assert line.startswith(
        "Error: --set model.layers=[{type: conv, filters: yes, kernel: 3}]: "
        "model.layers[0] (conv1).filters: Input should be a valid integer, not the boolean true"
    ), line


def test_a_set_block_names_the_override_and_the_field(tmp_path, data):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base_raw(data), sort_keys=False))
    line = error_line(invoke("cv", good, "--set", "train.early_stopping={patience: yes}"))
    assert line.startswith(
        "Error: --set train.early_stopping={patience: yes}: train.early_stopping.patience: "
        "Input should be a valid integer, not the boolean true"
    ), line


def test_a_bad_value_of_a_files_set_entry_names_the_entry(tmp_path, data):
    """A config's own `set:` entry is blamed as `<file>: set: <name>`, in a base too."""
    raw = base_raw(data)
    raw["set"] = {"conv1.kernel": "__BAD__"}
    base = write_with_token(tmp_path / "base.yaml", raw, "'5'")
    line = error_line(invoke("cv", base))
    assert line.startswith(
        f"Error: {base}: set: conv1.kernel: Input should be a valid integer, not the string '5'"
    )
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\nname: child\n")
    assert error_line(invoke("cv", child)).startswith(f"Error: {base}: set: conv1.kernel: ")
    child.write_text("base: base.yaml\nname: child\nset: {conv1.kernel: 5}\n")  # the child sets it right
    assert load_config(child).model.layers[0].kernel == 5


# --------------------------------------------------------------------------- an unknown key first


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "name: t\nmodel: {layers: [{type: conv, filters: 8, kernal: 3}]}\n",
            "model.layers[0] (conv1).kernal: unknown key (did you mean kernel?); "
            "allowed: name, filters, kernel, strides, padding, activation, use_bias, init, type",
        ),
        (
            "name: t\nmodel: {layers: [{type: dense, unit: 8}]}\n",
            "(dense1).unit: unknown key (did you mean units?)",
        ),
        (
            "nme: t\nmodel: {layers: [{type: flatten}]}\n",
            "nme: unknown key (did you mean name?); allowed: name,",
        ),
        (
            "name: t\nmodel: {layer: [{type: flatten}]}\n",
            "model.layer: unknown key (did you mean layers?); allowed",
        ),
        (
            "name: t\nmodel: {layers: [{type: conv, filters: 8, kernel: 3, colour: red}]}\n",
            "(conv1).colour: unknown key; allowed: name, filters",  # nothing near: no guess
        ),
    ],
)
def test_an_unknown_key_is_reported_before_the_field_it_leaves_missing(tmp_path, text, expected):
    config = tmp_path / "typo.yaml"
    config.write_text(text)
    line = error_line(invoke("cv", config))
    assert line.startswith(f"Error: {config}: ") and expected in line, line
    assert "required field is missing" not in line


# --------------------------------------------------------------------------- as a user runs it


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["{dir}/x.yaml"],
            "Error: {dir}/x.yaml: model.layers[0] (conv1).filters: Input should be a valid integer, "
            "not the boolean true (YAML reads yes, no, on, off, true and false as booleans)",
        ),
        (
            ["{dir}/good.yaml", "--set", "train.epochs=true"],
            "Error: --set train.epochs=true: Input should be a valid integer, not the boolean true "
            "(YAML reads yes, no, on, off, true and false as booleans)",
        ),
        (
            ["two_conv", "--set", "train.epochs=abc"],
            "Error: --set train.epochs=abc: Input should be a valid integer, not the string 'abc'",
        ),
        (
            ["{dir}/typo.yaml"],
            "Error: {dir}/typo.yaml: model.layers[0] (conv1).kernal: unknown key (did you mean kernel?); "
            "allowed: name, filters, kernel, strides, padding, activation, use_bias, init, type",
        ),
    ],
)
def test_the_cases_as_a_process(tmp_path, data, args, expected):
    """`cnn-cifar cv` as its own process: one line on stderr, exit 2, no run folder."""
    raw = base_raw(data)
    raw["model"]["layers"][0]["filters"] = "__BAD__"
    write_with_token(tmp_path / "x.yaml", raw, "yes")
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(base_raw(data), sort_keys=False))
    (tmp_path / "typo.yaml").write_text(
        f"name: typo\ndata: {{source: npz, path: {data}}}\n"
        "model: {layers: [{type: conv, filters: 8, kernal: 3}]}\n"
    )
    argv = [a.format(dir=tmp_path) for a in args]
    proc = subprocess.run(
        [*cli_command(), "cv", *argv, "--results-dir", str(tmp_path / "results")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == expected.format(dir=tmp_path)
    assert not (tmp_path / "results").exists()

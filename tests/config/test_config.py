"""Config loading and validation: each mistake is one line naming file, field, what is allowed."""

import pytest
from conftest import CONFIGS

from cnn_cifar.config import shapes
from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.loader import load_config, load_raw, to_dict

BASE = """\
name: t
model:
  layers:
    - {type: conv, filters: 8, kernel: 3, activation: relu}
    - {type: pool, size: 2}
"""


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, overrides=(), input_shape=(32, 32, 3)):
    with pytest.raises(ConfigError) as info:
        cfg = load_config(path, list(overrides))
        shapes.check(cfg, input_shape, 10, str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shipped_configs_load():
    for name in ("one_conv", "one_conv_avg", "two_conv", "two_conv_hidden", "final", "search"):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.name == name
        assert cfg.train.optimizer.learning_rate == 1.0 and cfg.train.optimizer.epsilon == 1e-8
        assert cfg.train.early_stopping.patience == 2  # Keras 1 patience=1
        shapes.check(cfg, (32, 32, 3), 10, name)


def test_tutorial_models_exactly():
    one = load_config(CONFIGS / "one_conv.yaml").model.layers
    assert [(layer.type, layer.activation if layer.type == "conv" else layer.kind) for layer in one] == [
        ("conv", None),
        ("pool", "max"),
    ]
    assert load_config(CONFIGS / "one_conv_avg.yaml").model.layers[1].kind == "average"
    final = {layer.name: layer for layer in load_config(CONFIGS / "final.yaml").model.layers}
    assert (final["conv1"].filters, final["conv1"].kernel, final["pool1"].size) == (32, 3, 2)
    assert (final["conv2"].filters, final["conv2"].kernel, final["pool2"].size) == (32, 9, 4)
    assert final["hidden"].units == 750


def test_layer_names_default_per_type(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert [layer.name for layer in cfg.model.layers] == ["conv1", "pool1"]


def test_base_and_set(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    child = write(tmp_path, "base: base.yaml\nname: child\nset: {conv1.kernel: 5, train.epochs: 3}\n")
    cfg = load_config(child)
    assert (cfg.name, cfg.model.layers[0].kernel, cfg.train.epochs) == ("child", 5, 3)
    assert cfg.model.layers[0].filters == 8  # inherited


def test_cli_overrides_dotted_and_double_underscore(tmp_path):
    cfg = load_config(
        write(tmp_path, BASE),
        ["conv1.kernel=5", "train__optimizer__learning_rate=0.5", "train.early_stopping.patience=4"],
    )
    assert cfg.model.layers[0].kernel == 5
    assert cfg.train.optimizer.learning_rate == 0.5
    assert cfg.train.early_stopping.patience == 4


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "name: t\nmodel: {layers: [{type: conv, filters: 8, kernel: 3, colour: red}]}\n",
            "model.layers[0] (conv1).colour: unknown key; allowed: name, filters, kernel",
        ),
        (
            "name: t\nmodel: {layers: [{type: convolution, filters: 8}]}\n",
            "model.layers[0] (convolution1): unknown layer type; allowed: conv, pool, dense",
        ),
        (
            "name: t\nmodel: {layers: [{type: conv, filters: 0, kernel: 3}]}\n",
            "model.layers[0] (conv1).filters: Input should be greater than 0",
        ),
        (
            "name: t\nmodel: {layers: [{type: dense, units: many}]}\n",
            "model.layers[0] (dense1).units: Input should be a valid integer",
        ),
        (
            "name: t\nmodel: {layers: [{type: conv, filters: 8, kernel: 3, activation: relux}]}\n",
            "model.layers[0] (conv1).activation: Input should be 'relu'",
        ),
        (
            "name: t\nmodel: {layers: [{type: dropout, rate: 1.5}]}\n",
            "model.layers[0] (dropout1).rate: Input should be less than 1",
        ),
        (
            BASE + "trian: {epochs: 3}\n",
            "trian: unknown key (did you mean train?); allowed: name, description, data, model, train, cv",
        ),
        (BASE + "train: {batch_size: -1}\n", "train.batch_size: Input should be greater than 0"),
        (
            BASE + "train: {optimizer: {name: adam, lr: 0.1}}\n",
            "train.optimizer.lr: unknown key; allowed: name, learning_rate",
        ),
        (BASE + "train: {optimizer: {name: lbfgs}}\n", "train.optimizer.name: Input should be 'adadelta'"),
        (BASE + "cv: {test_size: 1.5}\n", "cv.test_size: Input should be less than 1"),
        (
            BASE + "train: {validation_split: 0, early_stopping: {monitor: val_loss}}\n",
            "early_stopping monitors val_loss but validation_split is 0",
        ),
        ("model: {layers: [{type: flatten}]}\n", "name: required field is missing"),
        (
            "name: t\nmodel: {layers: [{type: conv, filters: 8, kernel: 3, name: a}, "
            "{type: pool, name: a}]}\n",
            "layer name 'a' used twice",
        ),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: t\nmodel: {layers: [\n", "not valid YAML"),
        ("base: nowhere.yaml\nname: t\n", "nowhere.yaml: no such config file; a config is a .yaml"),
    ],
)
def test_schema_errors_are_one_line(tmp_path, text, expected):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(str(path)), message
    assert expected in message, message


@pytest.mark.parametrize(
    "layers, expected",
    [
        (
            "[{type: conv, filters: 4, kernel: 40, padding: valid}]",
            "conv1): kernel 40 is larger than the 32x32",
        ),
        ("[{type: pool, size: 64}]", "pool1): pool size 64 is larger than the 32x32"),
        (
            "[{type: pool, size: 4}, {type: pool, size: 4}, {type: pool, size: 4}]",
            "pool3): pool size 4 is larger than the 2x2",
        ),
        (
            "[{type: dense, units: 4}, {type: conv, filters: 2, kernel: 3}]",
            "a conv layer needs a feature map",
        ),
        ("[{type: conv, filters: 2, kernel: 3, strides: 40}]", None),  # same padding: 1x1, fine
    ],
)
def test_shapes_that_cannot_work(tmp_path, layers, expected):
    path = write(tmp_path, f"name: t\nmodel: {{layers: {layers}}}\n")
    if expected is None:
        shapes.check(load_config(path), (32, 32, 3), 10, str(path))
        return
    message = error_of(path)
    assert expected in message and "model.layers[" in message, message


def test_shape_check_uses_the_data_shape(tmp_path):
    path = write(
        tmp_path, "name: t\nmodel: {layers: [{type: conv, filters: 2, kernel: 5, padding: valid}]}\n"
    )
    shapes.check(load_config(path), (28, 28, 1), 10, str(path))
    assert "4x4" in error_of(path, input_shape=(4, 4, 1))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("conv9.kernel=3", "--set: conv9.kernel: no such setting"),
        (
            "train.epoch=3",
            "train.epoch: no such setting (did you mean epochs?); train takes optimizer, epochs",
        ),
        ("conv1.kernel", "expected KEY=VALUE"),
        ("conv1.kernel=[1,", "is not valid YAML"),
    ],
)
def test_bad_overrides(tmp_path, override, expected):
    assert expected in error_of(write(tmp_path, BASE), [override])


def test_resolved_config_round_trips(tmp_path):
    import yaml

    from cnn_cifar.config.loader import dump_yaml, validate

    cfg = load_config(CONFIGS / "final.yaml")
    again = validate(yaml.safe_load(dump_yaml(cfg)), "dumped")
    assert to_dict(again) == to_dict(cfg)


def test_shipped_configs_by_name(tmp_path, monkeypatch):
    """A config that ships with the package loads by its name from any folder (a wheel
    user has no configs/), its base: chain included; a YAML file of that name still wins,
    and a file that is not YAML is refused, not passed over for the shipped one."""
    from cnn_cifar.config.loader import find_config, shipped_configs

    monkeypatch.chdir(tmp_path)
    assert {"two_conv", "two_conv_hidden", "final", "search", "fast"} <= set(shipped_configs())
    assert load_config("final") == load_config(CONFIGS / "final.yaml")
    assert find_config("two_conv.yaml") == find_config("two_conv")
    (tmp_path / "two_conv.yaml").write_text((CONFIGS / "one_conv.yaml").read_text())
    assert load_config("two_conv.yaml").name == "one_conv"
    (tmp_path / "one_conv").write_text((CONFIGS / "one_conv.yaml").read_text())
    with pytest.raises(ConfigError, match=r"^one_conv: not a config; a config is a \.yaml or \.yml file"):
        load_config("one_conv")
    with pytest.raises(ConfigError, match=r"^nope: no such config file; .* by name \(.*two_conv"):
        load_config("nope")
    with pytest.raises(ConfigError, match="no such config file"):
        find_config("sub/two_conv")


@pytest.mark.parametrize(
    "text, expected",
    [
        # the case that ran 20 epochs: a flow mapping with epochs twice, then a second train: block
        (
            "train: {epochs: 1, epochs: 3}\ntrain:\n  epochs: 20\n",
            "line 3: key 'train' is given twice, on lines 2 and 3",
        ),
        (
            "train:\n  epochs: 1\n  batch_size: 8\n  epochs: 3\n",
            "line 5: key 'epochs' is given twice, on lines 3 and 5",
        ),
        ("train: {epochs: 1, epochs: 3}\n", "line 2: key 'epochs' is given twice, on lines 2 and 2"),
        ("cv:\n  n_splits: 3\n  n_splits: 5\n", "line 4: key 'n_splits' is given twice, on lines 3 and 4"),
    ],
)
def test_a_key_given_twice_is_refused_with_both_lines(tmp_path, text, expected):
    path = tmp_path / "dup.yaml"
    path.write_text(f"base: {CONFIGS / 'two_conv.yaml'}\n{text}")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: {expected}"


def test_a_yaml_merge_key_may_repeat_what_it_merges(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text(
        f"base: {CONFIGS / 'two_conv.yaml'}\n"
        "x-adam: &adam {name: adam, learning_rate: 0.01}\n"
        "train: {optimizer: {<<: *adam, learning_rate: 0.1}}\n"
    )
    raw = load_raw(path)
    optimizer = raw["train"]["optimizer"]
    assert (optimizer["name"], optimizer["learning_rate"]) == ("adam", 0.1)


def test_a_duplicate_key_in_a_set_value_is_refused():
    with pytest.raises(ConfigError, match=r"value '\{name: adam, name: sgd\}': key 'name' is given twice"):
        load_config(CONFIGS / "two_conv.yaml", ["train.optimizer={name: adam, name: sgd}"])

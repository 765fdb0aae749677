"""One router of parameter names (config.names): set_params, --set and search.space accept
and refuse exactly the same names with the same message, and every name the estimator
lists changes the model or the training that fit runs."""

from __future__ import annotations

import copy
import math

import keras
import numpy as np
import pytest
import yaml
from conftest import make_images, tiny_raw

from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.loader import load_config, validate
from cnn_cifar.config.names import param_names
from cnn_cifar.search import space
from cnn_cifar.training.estimator import CNNClassifier, from_config

RAW = tiny_raw("tiny.npz")
UNKNOWN = [
    "conv1__kernal",
    "conv9__kernel",
    "train__epoch",
    "conv1_kernel",
    "hidden__units__x",
    "train__optimizer__nme",
    "model__augment__flipp",
    "seed",
    "kernel",
]
SAME_SETTING = ["conv1.kernel", "train.optimizer.learning_rate", "train__seed"]  # other spellings


def tiny_estimator(**params) -> CNNClassifier:
    est = from_config(validate(copy.deepcopy(RAW), "tiny"), input_shape=(8, 8, 3))
    return est.set_params(train__epochs=1, **params)


def message(e: Exception) -> str:
    """The part of an error after its location (file/option and field)."""
    return str(e).split(": ", 2)[-1] if isinstance(e, ConfigError) else str(e).split(": ", 1)[1]


def via_set_params(name, value):
    tiny_estimator().set_params(**{name: value})


def via_override(name, value, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(RAW))
    load_config(
        path, [f"{name}={yaml.safe_dump(value, default_flow_style=True).strip()}".replace("\n...", "")]
    )


def via_space(name, value):
    raw = copy.deepcopy(RAW)
    raw["search"] = {"space": {name: [value]}}
    space.parse_space(validate(raw, "tiny.yaml"), "tiny.yaml")


@pytest.mark.parametrize("name", param_names(RAW) + SAME_SETTING + UNKNOWN)
def test_set_params_override_and_space_accept_and_refuse_the_same_names(name, tmp_path):
    value = (
        3
        if name in UNKNOWN
        else tiny_estimator()
        .get_params()
        .get("random_state" if name == "train__seed" else name.replace(".", "__"))
    )
    errors = []
    for attempt in (
        lambda: via_set_params(name, value),
        lambda: via_override(name, value, tmp_path),
        lambda: via_space(name, value),
    ):
        try:
            attempt()
            errors.append(None)
        except (ValueError, ConfigError) as e:
            errors.append(message(e))
    if name in UNKNOWN:
        assert all(e is not None and e.startswith("no such setting") for e in errors), errors
        assert len(set(errors)) == 1, errors  # the same words wherever it comes from
    else:
        assert errors == [None, None, None]


def test_settings_outside_the_model_are_for_the_config_only(tmp_path):
    for name in ("cv.n_splits", "data.subset", "cv.test_size"):
        via_override(name, 0.25 if name == "cv.test_size" else 3, tmp_path)
        with pytest.raises(ValueError, match="no such setting"):
            via_set_params(name.replace(".", "__"), 3)


# --------------------------------------------------------------------------- takes effect


def layer(name, attr):
    return lambda est: getattr(est.model_.get_layer(name), attr)


def optimizer(attr):
    return lambda est: _number(getattr(est.model_.optimizer, attr))


def _number(x):
    return float(keras.ops.convert_to_numpy(x)) if not isinstance(x, (str, type(None))) else x


def steps(est):
    return int(est.model_.optimizer.iterations.numpy())


STOPPERS: list = []  # the EarlyStopping callbacks fit made (see `record_stoppers`)


def stopping(attr=None):
    return lambda est: getattr(STOPPERS[-1], attr) if attr and STOPPERS else len(STOPPERS)


@pytest.fixture(autouse=True)
def record_stoppers(monkeypatch):
    class Recording(keras.callbacks.EarlyStopping):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            STOPPERS.append(self)

    STOPPERS.clear()
    monkeypatch.setattr(keras.callbacks, "EarlyStopping", Recording)


# name -> (other parameters the check needs, new value, what fit built, expected)
N_FIT = 72  # 90 images, validation_split 0.2 after a shuffle
EFFECTS = {
    "conv1__filters": ({}, 6, layer("conv1", "filters"), 6),
    "conv1__kernel": ({}, 5, layer("conv1", "kernel_size"), (5, 5)),
    "conv1__strides": ({}, 2, layer("conv1", "strides"), (2, 2)),
    "conv1__padding": ({}, "valid", layer("conv1", "padding"), "valid"),
    "conv1__activation": ({}, "tanh", lambda e: e.model_.get_layer("conv1").activation.__name__, "tanh"),
    "pool1__kind": ({}, "average", lambda e: type(e.model_.get_layer("pool1")).__name__, "AveragePooling2D"),
    "pool1__size": ({}, 4, layer("pool1", "pool_size"), (4, 4)),
    "pool1__strides": ({}, 1, layer("pool1", "strides"), (1, 1)),
    "pool1__padding": ({}, "same", layer("pool1", "padding"), "same"),
    "hidden__units": ({}, 5, layer("hidden", "units"), 5),
    "hidden__activation": ({}, "tanh", lambda e: e.model_.get_layer("hidden").activation.__name__, "tanh"),
    "model__rescale": ({}, 0.5, layer("rescale", "scale"), 0.5),
    # the whole layer list (a structure search draws it); set before the names that need it
    "model__layers": (
        {},
        [{"name": "block1.conv", "type": "conv", "filters": 3, "kernel": 3}],
        layer("block1.conv", "filters"),
        3,
    ),
    "model__augment": ({}, {"flip": True}, lambda e: e.model_.get_layer("aug_flip").mode, "horizontal"),
    "train__optimizer__name": ({}, "sgd", lambda e: type(e.model_.optimizer).__name__, "SGD"),
    "train__optimizer__learning_rate": ({}, 0.125, optimizer("learning_rate"), 0.125),
    "train__optimizer__momentum": ({"train__optimizer__name": "sgd"}, 0.5, optimizer("momentum"), 0.5),
    "train__optimizer__epsilon": ({}, 1e-3, optimizer("epsilon"), 1e-3),
    "train__optimizer__weight_decay": ({}, 0.01, optimizer("weight_decay"), 0.01),
    "train__optimizer__schedule": (
        {},
        "cosine",
        lambda e: type(e.model_.optimizer._learning_rate).__name__,
        "CosineDecay",
    ),
    "train__optimizer__warmup_epochs": (
        {"train__optimizer__schedule": "cosine"},
        1,
        lambda e: e.model_.optimizer._learning_rate.warmup_steps,
        5,
    ),
    "train__epochs": ({}, 3, lambda e: e.n_epochs_, 3),
    "train__batch_size": ({}, 8, steps, math.ceil(N_FIT / 8)),
    "train__validation_split": ({}, 0.5, steps, math.ceil(45 / 16)),
    "train__early_stopping": ({}, None, stopping(), 0),
    "train__early_stopping__monitor": ({}, "loss", stopping("monitor"), "loss"),
    "train__early_stopping__patience": ({}, 5, stopping("patience"), 5),
    "train__early_stopping__min_delta": ({}, 0.5, lambda e: abs(stopping("min_delta")(e)), 0.5),
    "train__early_stopping__restore_best_weights": ({}, True, stopping("restore_best_weights"), True),
    "train__steps_per_execution": ({}, 2, lambda e: e.model_.steps_per_execution, 2),
    "train__precision": ({}, "float32", lambda e: e.model_.get_layer("conv1").dtype_policy.name, "float32"),
    "conv1__use_bias": ({}, False, layer("conv1", "use_bias"), False),
    "conv1__init": (
        {},
        "dirac",
        lambda e: type(e.model_.get_layer("conv1").kernel_initializer).__name__,
        "Dirac",
    ),
    "model__output_scale": ({}, 0.5, layer("output_scale", "scale"), 0.5),
    "model__output_bias": ({}, False, lambda e: e.model_.get_layer("logits").bias, None),
    "model__tta": ({}, "flip", lambda e: e.tta_, "flip"),
    "train__label_smoothing": ({}, 0.25, lambda e: e.model_.loss.label_smoothing, 0.25),
    "train__averaging": ({}, {"every": 2}, lambda e: e.model_.steps_per_execution, 2),
    "train__optimizer__nesterov": (
        {"train__optimizer__name": "sgd", "train__optimizer__momentum": 0.9},
        False,
        optimizer("nesterov"),
        False,
    ),
    "train__optimizer__batchnorm_lr_scale": (
        {"train__optimizer__name": "sgd"},
        4.0,
        optimizer("batchnorm_lr_scale"),
        4.0,
    ),
    "train__optimizer__l2": ({"train__optimizer__name": "sgd"}, 0.01, optimizer("l2"), 0.01),
    "train__optimizer__start_factor": (
        {"train__optimizer__schedule": "triangular"},
        0.5,
        lambda e: e.model_.optimizer._learning_rate.start_factor,
        0.5,
    ),
    "train__optimizer__end_factor": (
        {"train__optimizer__schedule": "triangular"},
        0.5,
        lambda e: e.model_.optimizer._learning_rate.end_factor,
        0.5,
    ),
    "random_state": ({}, 7, lambda e: e.model_.get_layer("conv1").get_weights()[0].sum(), "differs"),
}


@pytest.fixture(scope="module")
def data():
    return make_images(90, size=8)


def test_every_listed_parameter_has_an_effect_check():
    est = tiny_estimator()
    routed = set(est.get_params()) - set(est.get_params(deep=False)) | {"random_state"}
    assert routed == set(EFFECTS)


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_every_parameter_changes_what_fit_builds(name, data):
    extra, value, observe, expected = EFFECTS[name]
    est = tiny_estimator(**extra).set_params(**{name: value}).fit(*data)
    if expected == "differs":
        assert observe(est) != observe(tiny_estimator(**extra).fit(*data))
    elif isinstance(expected, float):
        assert observe(est) == pytest.approx(expected, rel=1e-6)
    else:
        assert observe(est) == expected


def test_a_layer_list_is_set_before_the_names_of_its_layers(data):
    layers = [{"name": "block1.conv", "type": "conv", "filters": 3, "kernel": 3}]
    est = tiny_estimator().set_params(block1__conv__kernel=1, model__layers=layers)
    assert est.model["layers"] == [{**layers[0], "kernel": 1}]
    assert layers[0]["kernel"] == 3  # the list given is not changed


def test_train_seed_is_random_state():
    assert tiny_estimator().set_params(train__seed=7).random_state == 7
    with pytest.raises(ValueError, match="random_state"):
        CNNClassifier(model=RAW["model"], train={"seed": 3}).fit(*make_images(30))
    assert np.isscalar(tiny_estimator().get_params()["random_state"])

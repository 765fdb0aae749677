"""Shape inference agrees with the Keras models it describes."""

import pytest
from conftest import CONFIGS

from cnn_cifar.config import shapes
from cnn_cifar.config.loader import load_config
from cnn_cifar.core import console
from cnn_cifar.nn.model import build_model

# Parameter counts worked out by hand from the tutorial's layers on 32x32x3 input.
EXPECTED_PARAMS = {
    "one_conv": 896 + (16 * 16 * 32 * 10 + 10),
    "two_conv": 896 + 9248 + (8 * 8 * 32 * 10 + 10),
    "two_conv_hidden": 896 + 9248 + (2048 * 400 + 400) + 4010,
    "final": 896 + (81 * 32 * 32 + 32) + (512 * 750 + 750) + 7510,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_shipped_models_shapes_and_params(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    inferred = shapes.infer(cfg.model, (32, 32, 3), 10)
    model = build_model(cfg.model, (32, 32, 3), 10)
    assert shapes.totals(inferred)[0] == model.count_params() == EXPECTED_PARAMS[name]
    for s in inferred:
        assert tuple(model.get_layer(s.name).output.shape[1:]) == s.output_shape


def test_final_model_macs():
    cfg = load_config(CONFIGS / "final.yaml")
    _, macs = shapes.totals(shapes.infer(cfg.model, (32, 32, 3), 10))
    conv1 = 32 * 32 * 32 * 3 * 3 * 3
    conv2 = 16 * 16 * 32 * 9 * 9 * 32
    assert macs == conv1 + conv2 + 512 * 750 + 750 * 10  # about 22.5 M per image


def test_other_layer_types_build(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: t\nmodel:\n  layers:\n"
        "    - {type: conv, filters: 4, kernel: 3, strides: 2, padding: valid, activation: elu}\n"
        "    - {type: batchnorm}\n    - {type: pool, kind: average, size: 2, padding: same}\n"
        "    - {type: dropout, rate: 0.25}\n    - {type: activation, function: gelu}\n"
        "    - {type: global_pool, kind: max}\n"
        "    - {type: dense, units: 5, activation: tanh}\n"
    )
    cfg = load_config(path)
    inferred = shapes.infer(cfg.model, (28, 28, 1), 4)
    model = build_model(cfg.model, (28, 28, 1), 4)
    assert shapes.totals(inferred)[0] == model.count_params()
    assert "total" in console.plain(shapes.describe(inferred))

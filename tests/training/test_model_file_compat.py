"""A model.keras saved by an earlier layout of the package (its custom layers registered
under other module paths) still loads and predicts the same: the file names each class by
its registered name (cnn_cifar>Whitening, ...), which must never change."""

import json

import numpy as np
from conftest import FIXTURES, make_images

from cnn_cifar.nn import tta
from cnn_cifar.training.model_file import load_model


def test_a_model_saved_before_the_package_layout_changed_loads_and_predicts():
    # fixtures/custom_layers.keras: `cnn-cifar evaluate fixtures/custom_layers.yaml` on
    # make_images(90, size=12) / make_images(30, size=12, seed=1), saved by the flat layout
    # (cnn_cifar/whitening.py, optim.py, augment.py); the expected probabilities were
    # predicted by that same code
    model, meta = load_model(FIXTURES / "custom_layers.keras")
    expected = json.loads((FIXTURES / "custom_layers_expected.json").read_text())
    assert meta == expected["meta"]
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Whitening", "Scale", "AlternatingFlip", "PixelTranslate"} <= kinds
    assert type(model.optimizer).__name__ == "GroupSGD"
    x, _ = make_images(30, size=12, seed=1)
    proba = tta.predict_proba(lambda v: model.predict(v, verbose=0), x[:8], meta["tta"])
    np.testing.assert_allclose(proba, expected["proba"], rtol=1e-4, atol=1e-5)

"""What `CNNClassifier.fit` builds around the Keras model: the compiled model (optimizer,
schedule, loss), the targets (one-hot when labels are smoothed), the data-dependent
initialisation (the whitening layer) and the callbacks the config asks for."""

from __future__ import annotations

import keras
import numpy as np

from ..config.schema import ModelSpec, Train
from ..config.shapes import LayerShape
from ..nn import whitening
from ..nn.augment import AlternatingFlipEpoch
from ..nn.averaging import WeightAveraging
from ..nn.model import build_model, make_optimizer
from . import runtime


def build(
    spec: ModelSpec,
    train: Train,
    input_shape,
    n_classes: int,
    seed,
    steps_per_epoch: int,
    stack: list[LayerShape] | None = None,
):
    """The compiled model; `stack`: the spec's shape walk, where the fit has it already."""
    model = build_model(
        spec,
        input_shape,
        n_classes,
        seed,
        precision=runtime.resolve_precision(train.precision),
        stack=stack,
    )
    optimizer = make_optimizer(train.optimizer, steps_per_epoch * train.epochs, steps_per_epoch)
    # Keras' torch backend runs one step per call, whatever the setting
    spe = 1 if keras.backend.backend() == "torch" else min(train.steps_per_execution, steps_per_epoch)
    if train.averaging is not None:
        # the averaging callback sees the weights only at multiples of spe steps: spe must
        # divide `every` (20 with spe 16 averaged every 32 steps, not 20)
        spe = max(d for d in range(1, spe + 1) if train.averaging.every % d == 0)
    loss = (
        keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing)
        if train.label_smoothing
        else "sparse_categorical_crossentropy"
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], steps_per_execution=spe)
    return model


def targets(y: np.ndarray, n_classes: int, train: Train) -> np.ndarray:
    """Encoded labels as the loss wants them: one-hot rows with label smoothing (Keras'
    sparse cross-entropy has no smoothing), class indices otherwise."""
    if not train.label_smoothing:
        return y
    return np.asarray(np.eye(n_classes, dtype=np.float32)[y])


def prepare(model, spec: ModelSpec, x_fit: np.ndarray, seed) -> None:
    """Data-dependent initialisation before training: a whiten layer's filters from the
    training images (never the validation rows)."""
    first = spec.layers[0]
    if first.type == "whiten":
        whitening.initialise(model, x_fit, spec.rescale, first.images, seed)  # type: ignore[attr-defined]


def callbacks(spec: ModelSpec, train: Train, total_steps: int) -> list:
    out: list = []
    es = train.early_stopping
    if es is not None:
        out.append(
            keras.callbacks.EarlyStopping(
                monitor=es.monitor,
                patience=es.patience,
                min_delta=es.min_delta,
                restore_best_weights=es.restore_best_weights,
            )
        )
    if spec.augment is not None and spec.augment.flip == "alternate":
        out.append(AlternatingFlipEpoch())
    if spec.layers[0].type == "whiten":
        out.append(whitening.WhiteningBias())
    avg = train.averaging
    if avg is not None:
        out.append(WeightAveraging(avg.kind, avg.every, avg.decay, avg.power, total_steps))
    return out

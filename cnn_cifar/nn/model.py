"""Keras model from a layer spec. Backend-neutral Keras 3 (no TensorFlow calls), so the
same code runs on the TensorFlow default or on KERAS_BACKEND=jax / torch."""

from __future__ import annotations

import random
from collections.abc import Callable

import keras

from ..config import layers as L, shapes
from ..config.schema import Augment, ModelSpec, Optimizer
from .augment import AlternatingFlip, PixelTranslate
from .optim import GroupSGD, Scale, Triangular
from .whitening import Dirac, Whitening


def _augment_layers(aug: Augment, seed: int | None, rescale: float) -> list:
    out: list = []
    if aug.flip == "alternate":
        out.append(AlternatingFlip(rescale, name="aug_flip"))
    elif aug.flip:
        out.append(keras.layers.RandomFlip("horizontal", seed=seed, name="aug_flip"))
    if aug.translate_pixels:
        out.append(PixelTranslate(aug.translate_pixels, seed=seed, name="aug_translate_pixels"))
    if aug.translate:
        out.append(
            keras.layers.RandomTranslation(
                aug.translate, aug.translate, seed=seed, fill_mode="reflect", name="aug_translate"
            )
        )
    if aug.rotate:
        out.append(keras.layers.RandomRotation(aug.rotate, seed=seed, fill_mode="reflect", name="aug_rotate"))
    return out


def build_model(
    spec: ModelSpec,
    input_shape,
    n_classes: int,
    seed: int | None = None,
    precision: str = "float32",
    stack: list[shapes.LayerShape] | None = None,
) -> keras.Model:
    """Input (uint8 or float pixels) -> rescale -> [augment] -> layers -> softmax, in the
    order `config.shapes.infer` walks the stack (its implied flattens and output included),
    so what is built is what was shape-checked. `stack`: that walk of this spec, input
    shape and class count where the caller has it already (a fit checks it before it
    drops its previous model); None walks it here.

    `precision` "bfloat16": the spec's layers compute in bfloat16 with float32 weights
    (Keras' mixed_bfloat16 policy); rescaling, augmentation and the softmax output stay
    float32, so probabilities and the loss keep full precision."""
    dtype = "mixed_bfloat16" if precision == "bfloat16" else None
    # float32 input: uint8 arrays travel through the input pipeline as uint8 and are cast in
    # the graph, and float pixels still feed the same model.
    seeds = random.Random(seed) if seed is not None else None
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Rescaling(spec.rescale, name="rescale")(inputs)
    for aug in _augment_layers(spec.augment, seed, spec.rescale) if spec.augment else []:
        x = aug(x)
    for step in stack if stack is not None else shapes.infer(spec, input_shape, n_classes):
        if step.layer is not None:
            x = LAYER_BUILDERS[step.type](step.layer, dtype, seeds)(x)
        elif step.type == "flatten":  # implied: before a dense layer, or before the output
            x = keras.layers.Flatten(name=step.name, dtype=dtype)(x)
    outputs = _output(spec, n_classes, seeds)(x)
    return keras.Model(inputs, outputs, name="cnn")


def _output(spec: ModelSpec, n_classes: int, seeds: random.Random | None):
    """The softmax output, float32 whatever the precision; with an output scale (or no
    bias), logits -> scale -> softmax."""
    if spec.output_scale == 1.0 and spec.output_bias:
        return keras.layers.Dense(
            n_classes, activation="softmax", name="output", dtype="float32", kernel_initializer=glorot(seeds)
        )
    logits = keras.layers.Dense(
        n_classes, use_bias=spec.output_bias, name="logits", dtype="float32", kernel_initializer=glorot(seeds)
    )
    scale = Scale(spec.output_scale, name="output_scale", dtype="float32")
    softmax = keras.layers.Activation("softmax", name="output", dtype="float32")
    return lambda x: softmax(scale(logits(x)))


# --------------------------------------------------------------------------- layer builders
# Each layer type's Keras layer (the types themselves: config.layers). `seeds` draws the seeds
# of layers with randomness.


def _seed(seeds: random.Random | None) -> int | None:
    """A layer's seed, drawn as Keras draws its defaults (randint(1, 1e9) after
    set_random_seed) but from the fit's own generator: Python's global one is shared with
    other threads (a dask worker's event loop draws from it), which made seeded fits differ."""
    return seeds.randint(1, int(1e9)) if seeds else None


def glorot(seeds: random.Random | None):
    return keras.initializers.GlorotUniform(_seed(seeds))


def _conv(layer: L.Conv, dtype, seeds):
    init = Dirac(_seed(seeds)) if layer.init == "dirac" else glorot(seeds)
    return keras.layers.Conv2D(
        layer.filters,
        layer.kernel,
        strides=layer.strides,
        padding=layer.padding,
        activation=layer.activation,
        use_bias=layer.use_bias,
        kernel_initializer=init,
        name=layer.name,
        dtype=dtype,
    )


def _pool(layer: L.Pool, dtype, seeds):
    cls = keras.layers.MaxPooling2D if layer.kind == "max" else keras.layers.AveragePooling2D
    return cls(layer.size, strides=layer.strides, padding=layer.padding, name=layer.name, dtype=dtype)


def _dense(layer: L.Dense, dtype, seeds):
    return keras.layers.Dense(
        layer.units,
        activation=layer.activation,
        kernel_initializer=glorot(seeds),
        name=layer.name,
        dtype=dtype,
    )


def _dropout(layer: L.Dropout, dtype, seeds):
    return keras.layers.Dropout(layer.rate, seed=_seed(seeds), name=layer.name, dtype=dtype)


def _batchnorm(layer: L.BatchNorm, dtype, seeds):
    return keras.layers.BatchNormalization(
        momentum=layer.momentum,
        epsilon=layer.epsilon,
        scale=layer.scale,
        center=layer.center,
        name=layer.name,
        dtype=dtype,
    )


def _activation(layer: L.ActivationLayer, dtype, seeds):
    return keras.layers.Activation(layer.function, name=layer.name, dtype=dtype)


def _flatten(layer: L.Flatten, dtype, seeds):
    return keras.layers.Flatten(name=layer.name, dtype=dtype)


def _global_pool(layer: L.GlobalPool, dtype, seeds):
    cls = keras.layers.GlobalMaxPooling2D if layer.kind == "max" else keras.layers.GlobalAveragePooling2D
    return cls(name=layer.name, dtype=dtype)


def _whiten(layer: L.Whiten, dtype, seeds):
    # float32 whatever the precision: its filters reach 1/sqrt(eps) (about 45), and the
    # small-eigenvalue directions are differences of neighbouring pixels that bfloat16's
    # 8-bit mantissa would blur (airbench: float16). It is a small layer.
    return Whitening(layer.kernel, layer.eps, layer.bias_epochs, name=layer.name, dtype="float32")


LAYER_BUILDERS: dict[str, Callable] = {
    "conv": _conv,
    "pool": _pool,
    "dense": _dense,
    "dropout": _dropout,
    "batchnorm": _batchnorm,
    "activation": _activation,
    "flatten": _flatten,
    "global_pool": _global_pool,
    "whiten": _whiten,
}
assert set(LAYER_BUILDERS) == set(L.LAYER_TYPES), "every layer type needs its builder"


def make_optimizer(opt: Optimizer, total_steps: int, steps_per_epoch: int):
    lr = opt.learning_rate
    if opt.schedule == "triangular":
        lr = Triangular(
            opt.learning_rate,
            total_steps,
            int(opt.warmup_epochs * steps_per_epoch),
            opt.start_factor,
            opt.end_factor,
        )
    if opt.schedule == "cosine":
        warmup = int(opt.warmup_epochs * steps_per_epoch)
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else opt.learning_rate,
            max(1, total_steps - warmup),
            warmup_target=opt.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    kwargs = {"learning_rate": lr}
    if opt.weight_decay is not None:
        kwargs["weight_decay"] = opt.weight_decay
    if opt.epsilon is not None and opt.name != "sgd":
        kwargs["epsilon"] = opt.epsilon
    if opt.name == "adadelta":
        return keras.optimizers.Adadelta(**kwargs)
    if opt.name == "sgd":
        nesterov = opt.momentum > 0 if opt.nesterov is None else opt.nesterov
        if opt.batchnorm_lr_scale != 1.0 or opt.l2:
            return GroupSGD(
                opt.batchnorm_lr_scale, opt.l2, momentum=opt.momentum, nesterov=nesterov, **kwargs
            )
        return keras.optimizers.SGD(momentum=opt.momentum, nesterov=nesterov, **kwargs)
    if opt.name == "adam":
        return keras.optimizers.Adam(**kwargs)
    if opt.name == "adamw":
        return keras.optimizers.AdamW(**kwargs)
    return keras.optimizers.RMSprop(momentum=opt.momentum, **kwargs)

"""Keras model from a layer spec. Backend-neutral Keras 3 (no TensorFlow calls), so the
same code runs on the TensorFlow default or on KERAS_BACKEND=jax / torch."""

from __future__ import annotations

import random

import keras

from .augment import AlternatingFlip, PixelTranslate
from .layers import glorot
from .optim import GroupSGD, Scale, Triangular
from .schema import Augment, ModelSpec, Optimizer


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
    spec: ModelSpec, input_shape, n_classes: int, seed: int | None = None, precision: str = "float32"
) -> keras.Model:
    """Input (uint8 or float pixels) -> rescale -> [augment] -> layers -> softmax.

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
    for layer in spec.layers:
        if layer.flat_input and len(x.shape) == 4:
            x = keras.layers.Flatten(name=f"{layer.name}_flatten", dtype=dtype)(x)
        x = layer.build(dtype, seeds)(x)
    if len(x.shape) == 4:
        x = keras.layers.Flatten(name="flatten", dtype=dtype)(x)
    if spec.output_scale == 1.0 and spec.output_bias:
        outputs = keras.layers.Dense(
            n_classes, activation="softmax", name="output", dtype="float32", kernel_initializer=glorot(seeds)
        )(x)
    else:  # logits -> scale -> softmax
        x = keras.layers.Dense(
            n_classes,
            use_bias=spec.output_bias,
            name="logits",
            dtype="float32",
            kernel_initializer=glorot(seeds),
        )(x)
        x = Scale(spec.output_scale, name="output_scale", dtype="float32")(x)
        outputs = keras.layers.Activation("softmax", name="output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="cnn")


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

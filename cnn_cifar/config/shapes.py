"""Shape inference for a model spec, without Keras: output shapes, parameter counts and
multiply-accumulates per image (each layer type's rule is in `layers`). Lets configs and
search candidates fail before training, and is the walk `nn.model.build_model` follows,
so the stack that is built is the one that was checked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core.console import table
from .errors import ConfigError
from .layers import LayerSpec, ShapeError
from .schema import Config, ModelSpec, Train


@dataclass(frozen=True)
class LayerShape:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    layer: LayerSpec | None = field(default=None, compare=False)  # None: implied (flatten, output)


def infer(model: ModelSpec, input_shape: tuple[int, ...], n_classes: int) -> list[LayerShape]:
    """Walk the stack: its layers, a flatten implied before the first dense layer and
    before the output, the softmax output last. Raises ShapeError on a stack that cannot work."""
    shape: tuple[int, ...] = tuple(input_shape)
    out: list[LayerShape] = []
    for layer in model.layers:
        if layer.flat_input and len(shape) == 3:
            shape = (math.prod(shape),)
            out.append(LayerShape(f"{layer.name}_flatten", "flatten", shape, 0, 0))
        layer.check_input(shape)
        shape, params, macs = layer.output(shape)
        out.append(LayerShape(str(layer.name), layer.type, shape, params, macs, layer))
    if len(shape) == 3:
        shape = (math.prod(shape),)
        out.append(LayerShape("flatten", "flatten", shape, 0, 0))
    n_in = shape[0]
    params = (n_in + model.output_bias) * n_classes
    out.append(LayerShape("output", "dense", (n_classes,), params, n_in * n_classes))
    return out


def check(cfg: Config, input_shape, n_classes: int, source: str) -> list[LayerShape]:
    """`infer` on a config's model; a stack that cannot work is a ConfigError naming the layer."""
    try:
        return infer(cfg.model, input_shape, n_classes)
    except ShapeError as e:
        index = next((i for i, layer in enumerate(cfg.model.layers) if layer.name == e.layer), None)
        where = f"model.layers[{index}] ({e.layer})" if index is not None else "model.layers"
        raise ConfigError(
            source, where, str(e).split(": ", 1)[1] + f" (input {tuple(input_shape)})"
        ) from None


# Optimizer state per weight, in copies of the weights (Keras' slot variables).
OPTIMIZER_SLOTS = {"adadelta": 2, "adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}


def fit_memory(shapes: list[LayerShape], input_shape, train: Train) -> int:
    """A lower bound on the bytes one fit holds at once: the weights, their gradients, the
    optimizer's slots (and an averaged copy with weight averaging), all float32 in every
    precision, and for a batch the input and every layer's output kept for the backward
    pass plus the largest one's gradient, counted at 2 bytes (bfloat16's size; float32
    takes twice that). The framework's own workspace comes on top, so a model over the
    machine's memory by this count cannot train there."""
    params, _ = totals(shapes)
    opt = train.optimizer
    slots = OPTIMIZER_SLOTS[opt.name] + (opt.momentum > 0 and opt.name in ("sgd", "rmsprop"))
    copies = 2 + slots + (train.averaging is not None)
    outputs = [math.prod(s.output_shape) for s in shapes]
    per_image = int(math.prod(input_shape)) + sum(outputs) + max(outputs)
    return 4 * params * copies + 2 * train.batch_size * per_image


def check_memory(cfg: Config, shapes: list[LayerShape], input_shape, available: int, source: str) -> int:
    """`fit_memory` of the config's model; a ConfigError if it is more than `available`."""
    need = fit_memory(shapes, input_shape, cfg.train)
    if need > available:
        params, _ = totals(shapes)
        raise ConfigError(
            source,
            "model",
            f"one fit needs at least {gigabytes(need)} (parameters {params:,}, their gradients "
            f"and optimizer state, activations at batch {cfg.train.batch_size}); this machine "
            f"has {gigabytes(available)} available",
        )
    return need


def gigabytes(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def totals(shapes: list[LayerShape]) -> tuple[int, int]:
    """(parameter count, multiply-accumulates per image) of an inferred stack."""
    return sum(s.params for s in shapes), sum(s.macs for s in shapes)


def describe(shapes: list[LayerShape]):
    """A Keras-summary-like table (`console.table`): each layer's output shape, parameters
    and MACs, and the totals."""
    rows = [[s.name, s.type, str(s.output_shape), f"{s.params:,}", f"{s.macs:,}"] for s in shapes]
    params, macs = totals(shapes)
    rows.append(["total", "", "", f"{params:,}", f"{macs:,}"])
    return table(("layer", "type", "output", "params", "MACs"), rows, right=("params", "MACs"))

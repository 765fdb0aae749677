"""Shape inference for a layer stack, without Keras: output shapes, parameter counts and
multiply-accumulates per image. Lets configs and search candidates fail before training."""
from __future__ import annotations

import math
from dataclasses import dataclass


class ShapeError(ValueError):
    """A stack that cannot work on this input; `layer` names the culprit."""

    def __init__(self, layer: str, message: str):
        self.layer = layer
        super().__init__(f"{layer}: {message}")


@dataclass(frozen=True)
class LayerShape:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def _spatial(size: int, window: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    return (size - window) // stride + 1


def _window(layer, h: int, w: int, window: int, stride: int, padding: str, what: str):
    if padding == "valid" and (window > h or window > w):
        raise ShapeError(layer.name, f"{what} {window} is larger than the {h}x{w} feature map "
                         "that reaches it (use a smaller one, or padding: same)")
    oh, ow = _spatial(h, window, stride, padding), _spatial(w, window, stride, padding)
    if oh < 1 or ow < 1:
        raise ShapeError(layer.name, f"shrinks the {h}x{w} feature map to nothing")
    return oh, ow


def infer(layers, input_shape: tuple[int, int, int], n_classes: int) -> list[LayerShape]:
    """Walk the stack as `model.build_model` builds it (implied flatten before the first
    dense layer, softmax output last). Raises ShapeError on a stack that cannot work."""
    shape: tuple[int, ...] = tuple(input_shape)
    out: list[LayerShape] = []
    for layer in layers:
        if layer.type == "dense" and len(shape) == 3:
            shape = (math.prod(shape),)
            out.append(LayerShape(f"{layer.name}_flatten", "flatten", shape, 0, 0))
        shape, params, macs = _step(layer, shape)
        out.append(LayerShape(layer.name, layer.type, shape, params, macs))
    if len(shape) == 3:
        shape = (math.prod(shape),)
        out.append(LayerShape("flatten", "flatten", shape, 0, 0))
    n_in = shape[0]
    out.append(LayerShape("output", "dense", (n_classes,), n_in * n_classes + n_classes,
                          n_in * n_classes))
    return out


def _step(layer, shape):
    t = layer.type
    if t in ("conv", "pool", "global_pool") and len(shape) != 3:
        raise ShapeError(layer.name, f"a {t} layer needs a feature map, but it follows a "
                         "flatten/dense layer")
    if t == "conv":
        h, w, c = shape
        oh, ow = _window(layer, h, w, layer.kernel, layer.strides, layer.padding, "kernel")
        fan_in = layer.kernel * layer.kernel * c
        return (oh, ow, layer.filters), (fan_in + 1) * layer.filters, oh * ow * layer.filters * fan_in
    if t == "pool":
        h, w, c = shape
        oh, ow = _window(layer, h, w, layer.size, layer.strides or layer.size, layer.padding, "pool size")
        return (oh, ow, c), 0, 0
    if t == "global_pool":
        return (shape[-1],), 0, 0
    if t == "dense":
        return (layer.units,), (shape[0] + 1) * layer.units, shape[0] * layer.units
    if t == "flatten":
        return (math.prod(shape),), 0, 0
    if t == "batchnorm":
        return shape, 4 * shape[-1], 0
    return shape, 0, 0                                   # dropout, activation


def totals(shapes: list[LayerShape]) -> tuple[int, int]:
    """(parameter count, multiply-accumulates per image) of an inferred stack."""
    return sum(s.params for s in shapes), sum(s.macs for s in shapes)


def describe(shapes: list[LayerShape]) -> str:
    """A Keras-summary-like table."""
    rows = [f"{'layer':<16}{'type':<12}{'output':<16}{'params':>10}{'MACs':>14}"]
    for s in shapes:
        rows.append(f"{s.name:<16}{s.type:<12}{str(s.output_shape):<16}{s.params:>10,}{s.macs:>14,}")
    params, macs = totals(shapes)
    rows.append(f"{'total':<44}{params:>10,}{macs:>14,}")
    return "\n".join(rows)

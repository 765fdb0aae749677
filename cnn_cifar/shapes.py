"""Shape inference for a layer stack, without Keras: output shapes, parameter counts and
multiply-accumulates per image (each layer type's rule is in `layers`). Lets configs and
search candidates fail before training."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .layers import ShapeError  # noqa: F401  (raised by infer; callers catch it from here)


@dataclass(frozen=True)
class LayerShape:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def infer(layers, input_shape: tuple[int, ...], n_classes: int, output_bias: bool = True) -> list[LayerShape]:
    """Walk the stack as `model.build_model` builds it (implied flatten before the first
    dense layer, softmax output last). Raises ShapeError on a stack that cannot work."""
    shape: tuple[int, ...] = tuple(input_shape)
    out: list[LayerShape] = []
    for layer in layers:
        if layer.flat_input and len(shape) == 3:
            shape = (math.prod(shape),)
            out.append(LayerShape(f"{layer.name}_flatten", "flatten", shape, 0, 0))
        layer.check_input(shape)
        shape, params, macs = layer.output(shape)
        out.append(LayerShape(layer.name, layer.type, shape, params, macs))
    if len(shape) == 3:
        shape = (math.prod(shape),)
        out.append(LayerShape("flatten", "flatten", shape, 0, 0))
    n_in = shape[0]
    params = (n_in + output_bias) * n_classes
    out.append(LayerShape("output", "dense", (n_classes,), params, n_in * n_classes))
    return out


def totals(shapes: list[LayerShape]) -> tuple[int, int]:
    """(parameter count, multiply-accumulates per image) of an inferred stack."""
    return sum(s.params for s in shapes), sum(s.macs for s in shapes)


def describe(shapes: list[LayerShape]):
    """A Keras-summary-like table (`console.table`): each layer's output shape, parameters
    and MACs, and the totals."""
    from .console import table  # rich: only when a table is shown

    rows = [[s.name, s.type, str(s.output_shape), f"{s.params:,}", f"{s.macs:,}"] for s in shapes]
    params, macs = totals(shapes)
    rows.append(["total", "", "", f"{params:,}", f"{macs:,}"])
    return table(("layer", "type", "output", "params", "MACs"), rows, right=("params", "MACs"))

"""The layer types: one class per type, holding what a config says of it.

Each class is the type's YAML schema (pydantic fields, extra keys forbidden), its shape
rule (`output`: output shape, parameter count and multiply-accumulates per image, without
Keras) and its one-line description (`describe`). The config schema, shape inference,
`--dry-run`, evaluate and the bench read these classes; `nn.model.LAYER_BUILDERS` makes
each type's Keras layer. Adding a layer type is one class in `LAYER_TYPES`, its builder
and its test.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

ActivationName = Literal[
    "relu", "elu", "gelu", "selu", "sigmoid", "tanh", "softmax", "swish", "leaky_relu", "linear"
]
# a word without "__", or words joined by dots (block2.conv, a repeated block's layer): "__"
# and "." route parameters, so a parameter's last part is always the attribute
_WORD = r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*"
LAYER_NAME = rf"^{_WORD}(\.{_WORD})*$"


class Strict(BaseModel):
    """A block of a config: an unknown key is refused, and each value must already be of
    its field's type (pydantic's strict mode). Lax mode would read YAML's `yes`/`true` as
    the number 1 and a quoted '3' as 3, so a typo would silently train another model; strict
    mode still takes an int where a float is expected (YAML writes 1.0 as `1`). A float with
    a fraction, or an integral one (3.0), is refused where an int is expected."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _numpy_scalars_as_python(cls, data):
        # a numpy scalar (what scipy's distributions draw for the estimator's set_params in a
        # scikit-learn search) is the Python number it holds; strict mode knows only Python's
        if isinstance(data, dict):
            return {k: v.item() if isinstance(v, np.generic) else v for k, v in data.items()}
        return data


class ShapeError(ValueError):
    """A stack that cannot work on this input; `layer` names the culprit."""

    def __init__(self, layer: str | None, message: str):
        self.layer = layer
        super().__init__(f"{layer}: {message}")


Shape = tuple[int, ...]
Step = tuple[Shape, int, int]  # (output shape, parameters, multiply-accumulates)


class LayerSpec(Strict):
    if TYPE_CHECKING:
        type: str  # each layer type's Literal tag (conv, pool, ...)
    name: str | None = Field(None, pattern=LAYER_NAME)
    spatial: ClassVar[bool] = False  # needs an (H, W, C) feature map
    flat_input: ClassVar[bool] = False  # takes vectors: a flatten is implied before it

    def output(self, shape: Shape) -> Step:
        return shape, 0, 0

    def describe(self) -> str:
        return self.type

    def check_input(self, shape: Shape) -> None:
        if self.spatial and len(shape) != 3:
            raise ShapeError(
                self.name, f"a {self.type} layer needs a feature map, but it follows a flatten/dense layer"
            )


def _window(layer: LayerSpec, shape: Shape, window: int, stride: int, padding: str, what: str):
    h, w, _ = shape
    if padding == "valid" and (window > h or window > w):
        raise ShapeError(
            layer.name,
            f"{what} {window} is larger than the {h}x{w} feature map "
            "that reaches it (use a smaller one, or padding: same)",
        )
    if padding == "same":
        oh, ow = math.ceil(h / stride), math.ceil(w / stride)
    else:
        oh, ow = (h - window) // stride + 1, (w - window) // stride + 1
    if oh < 1 or ow < 1:
        raise ShapeError(layer.name, f"shrinks the {h}x{w} feature map to nothing")
    return oh, ow


class Conv(LayerSpec):
    type: Literal["conv"]
    filters: PositiveInt
    kernel: PositiveInt
    strides: PositiveInt = 1
    padding: Literal["same", "valid"] = "same"
    activation: ActivationName | None = None
    use_bias: bool = True
    # glorot: Keras' default. dirac (airbench): PyTorch's default uniform(+-1/sqrt(fan_in)),
    # then the first min(in, out) filters set to the identity (whitening.Dirac)
    init: Literal["glorot", "dirac"] = "glorot"
    spatial: ClassVar[bool] = True

    def output(self, shape):
        oh, ow = _window(self, shape, self.kernel, self.strides, self.padding, "kernel")
        fan_in = self.kernel * self.kernel * shape[2]
        params = (fan_in + self.use_bias) * self.filters
        return (oh, ow, self.filters), params, oh * ow * self.filters * fan_in

    def describe(self):
        return f"conv {self.filters} {self.kernel}x{self.kernel} {self.activation or 'linear'}"


class Pool(LayerSpec):
    type: Literal["pool"]
    kind: Literal["max", "average"] = "max"
    size: PositiveInt = 2
    strides: PositiveInt | None = None  # None = size, as in Keras
    padding: Literal["same", "valid"] = "valid"
    spatial: ClassVar[bool] = True

    def output(self, shape):
        oh, ow = _window(self, shape, self.size, self.strides or self.size, self.padding, "pool size")
        return (oh, ow, shape[2]), 0, 0

    def describe(self):
        return f"pool {self.kind} {self.size}"


class Dense(LayerSpec):
    type: Literal["dense"]
    units: PositiveInt
    activation: ActivationName | None = None
    flat_input: ClassVar[bool] = True

    def output(self, shape):
        return (self.units,), (shape[0] + 1) * self.units, shape[0] * self.units

    def describe(self):
        return f"dense {self.units} {self.activation or 'linear'}"


class Dropout(LayerSpec):
    type: Literal["dropout"]
    rate: float = Field(0.5, ge=0.0, lt=1.0)

    def describe(self):
        return f"dropout {self.rate:g}"


class BatchNorm(LayerSpec):
    type: Literal["batchnorm"]
    # Keras' momentum: moving = momentum * moving + (1 - momentum) * batch, i.e. 1 minus
    # PyTorch's (airbench's "batchnorm_momentum 0.6" is PyTorch momentum 0.4: Keras 0.6)
    momentum: float = Field(0.99, gt=0.0, lt=1.0)
    epsilon: float = Field(1e-3, gt=0.0)
    scale: bool = True  # false: no learned multiplier (gamma), as airbench
    center: bool = True  # false: no learned offset (beta)

    def output(self, shape):
        return shape, (2 + self.scale + self.center) * shape[-1], 0


class ActivationLayer(LayerSpec):
    """A separate non-linearity, e.g. after batchnorm: conv (no activation) -> batchnorm -> relu."""

    type: Literal["activation"]
    function: Literal["relu", "elu", "gelu", "selu", "sigmoid", "tanh", "swish", "leaky_relu"] = "relu"

    def describe(self):
        return f"activation {self.function}"


class Flatten(LayerSpec):
    type: Literal["flatten"]

    def output(self, shape):
        return (math.prod(shape),), 0, 0


class GlobalPool(LayerSpec):
    type: Literal["global_pool"]
    kind: Literal["max", "average"] = "average"
    spatial: ClassVar[bool] = True

    def output(self, shape):
        return (shape[-1],), 0, 0

    def describe(self):
        return f"global_pool {self.kind}"


class Whiten(LayerSpec):
    """A patch-whitening convolution (airbench): 2 x C x kernel^2 filters of kernel x kernel,
    valid padding, whose weights are set in `fit` from the training images (the
    eigenvectors of their patches' covariance scaled by 1/sqrt(eigenvalue + eps), and
    their negatives; whitening.py) and then frozen. Its input is normalised per channel
    by the same images' mean and std; its bias trains for `bias_epochs` epochs (None:
    throughout), then is frozen. The first layer only."""

    type: Literal["whiten"]
    kernel: PositiveInt = 2
    eps: float = Field(5e-4, gt=0.0)
    images: PositiveInt = 5000  # training images the covariance is computed from
    bias_epochs: int | None = Field(None, ge=0)
    spatial: ClassVar[bool] = True

    def output(self, shape):
        oh, ow = _window(self, shape, self.kernel, 1, "valid", "kernel")
        fan_in = self.kernel * self.kernel * shape[2]
        # filters and bias, then the normalisation's mean and std and the bias gate (frozen)
        params = (fan_in + 1) * 2 * fan_in + 2 * shape[2] + 1
        return (oh, ow, 2 * fan_in), params, oh * ow * 2 * fan_in * fan_in

    def describe(self):
        return f"whiten {self.kernel}x{self.kernel}"


LAYER_TYPES: dict[str, type[LayerSpec]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in (Conv, Pool, Dense, Dropout, BatchNorm, ActivationLayer, Flatten, GlobalPool, Whiten)
}


def settable_fields(layer_type: str | None) -> list[str]:
    """The attributes of a layer type a parameter can set (all but name and type)."""
    cls = LAYER_TYPES.get(layer_type or "")
    return [k for k in cls.model_fields if k not in ("name", "type")] if cls else []


def layer_names(layers: list) -> list[str]:
    """Names of layers (raw dicts or specs); an unnamed one is `<type><k>`, k counting per
    type (conv1, pool1, conv2, ...)."""
    counts: dict = {}
    names = []
    for layer in layers:
        kind = _field(layer, "type")
        counts[kind] = counts.get(kind, 0) + 1
        names.append(_field(layer, "name") or f"{kind}{counts[kind]}")
    return names


def _field(layer, key: str):
    """A raw dict's key or a spec's attribute; None where it has none."""
    return layer.get(key) if isinstance(layer, dict) else getattr(layer, key, None)


def architecture(layers: list) -> str:
    """A layer stack in one line: `conv 32 3x3 relu > pool max 2 > dense 400 relu`."""
    return " > ".join(layer.describe() for layer in layers)


def name_layers(layers: list) -> None:
    """Give unnamed layer specs their default names (see `layer_names`)."""
    for layer, name in zip(layers, layer_names(layers), strict=True):
        layer.name = name

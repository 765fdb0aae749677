"""airbench's optimiser and schedule in Keras (KellerJordan/cifar10-airbench,
legacy/airbench94.py: the two parameter groups of `torch.optim.SGD` and `get_lr`), and the
output scale layer.

airbench's SGD has two groups: batchnorm offsets at `bias_scaler` (64) times the learning
rate, everything else at the learning rate, each with PyTorch's coupled weight decay
(`wd / lr` of the group, so that both decay by the same `wd` per step). GroupSGD does the
same with one learning rate: the offsets' gradients are multiplied by
`batchnorm_lr_scale` (momentum SGD is linear in the gradient, so this equals a larger
learning rate) and `l2 * weight` is added to every gradient after that (not scaled).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cnn_cifar")
class GroupSGD(keras.optimizers.SGD):
    def __init__(self, batchnorm_lr_scale: float = 1.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.batchnorm_lr_scale, self.l2 = batchnorm_lr_scale, l2

    def build(self, variables):
        super().build(variables)
        # batchnorm offsets: Keras names them beta
        self._scaled = {self._var_key(v) for v in variables if v.name == "beta"}
        self._no_l2 = {self._var_key(v) for v in variables if getattr(v, "no_l2", False)}

    def update_step(self, gradient, variable, learning_rate):
        gradient = ops.cast(gradient, variable.dtype)
        key = self._var_key(variable)
        if self.batchnorm_lr_scale != 1.0 and key in self._scaled:
            gradient = gradient * ops.cast(self.batchnorm_lr_scale, variable.dtype)
        if self.l2 and key not in self._no_l2:
            gradient = gradient + ops.cast(self.l2, variable.dtype) * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "batchnorm_lr_scale": self.batchnorm_lr_scale, "l2": self.l2}


@keras.saving.register_keras_serializable(package="cnn_cifar")
class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """Linear from start_factor * peak at step 0 up to peak at warmup_steps, then linear
    down to end_factor * peak at total_steps (airbench's get_lr: 0.2, 23%, 0.07)."""

    def __init__(self, peak, total_steps, warmup_steps, start_factor=0.2, end_factor=0.07):
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps
        self.start_factor, self.end_factor = start_factor, end_factor

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        down = float(max(self.total_steps - self.warmup_steps, 1))
        up = self.start_factor + (1 - self.start_factor) * step / warm
        frac = ops.minimum((step - self.warmup_steps) / down, 1.0)
        after = 1 + (self.end_factor - 1) * frac
        return self.peak * ops.where(step < self.warmup_steps, up, after)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "start_factor": self.start_factor,
            "end_factor": self.end_factor,
        }


@keras.saving.register_keras_serializable(package="cnn_cifar")
class Scale(keras.layers.Layer):
    """Multiply by a constant: the logits' scale (`model.output_scale`, airbench's Mul(1/9))."""

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return x * ops.cast(self.scale, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}

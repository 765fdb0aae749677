"""Weight averaging during training: Lookahead as airbench uses it, or an exponential
moving average (KellerJordan/cifar10-airbench, legacy/airbench94.py: `LookaheadState`,
`alpha_schedule`). Declared as `train.averaging` (schema.Averaging)."""

from __future__ import annotations

import keras
import numpy as np


def decay_at(step: int, total: int, decay: float, every: int, power: float) -> float:
    """The averaging decay at `step` of `total`: decay**every * (step/total)**power."""
    return float(decay**every * (min(step, total) / max(total, 1)) ** power)


class WeightAveraging(keras.callbacks.Callback):
    """Every `every` optimizer steps: avg = d * avg + (1 - d) * weights (all float weights,
    batchnorm statistics included, but those a layer marks `no_average`: switches such as
    the whitening bias gate); lookahead then sets the weights to avg. At the end of
    training the weights become avg (airbench's final update with decay 1), so whatever
    runs the model next (evaluation, predictions, the saved file) uses the average."""

    def __init__(self, kind: str, every: int, decay: float, power: float, total_steps: int):
        super().__init__()
        self.kind, self.every, self.decay, self.power = kind, every, decay, power
        self.total_steps = total_steps
        self.n_updates = 0

    def on_train_begin(self, logs=None):
        self.variables = [
            v for v in self.model.weights if "float" in str(v.dtype) and not getattr(v, "no_average", False)
        ]
        self.average = [np.array(v.numpy()) for v in self.variables]
        self.last = 0

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step - self.last < self.every:
            return
        self.last = step
        self.n_updates += 1
        d = decay_at(step, self.total_steps, self.decay, self.every, self.power)
        for i, v in enumerate(self.variables):
            self.average[i] = d * self.average[i] + (1 - d) * v.numpy()
            if self.kind == "lookahead":
                v.assign(self.average[i])

    def on_train_end(self, logs=None):
        for v, avg in zip(self.variables, self.average, strict=True):
            v.assign(avg)

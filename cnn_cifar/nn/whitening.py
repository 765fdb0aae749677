"""The patch-whitening first layer and the dirac initialiser of airbench (Keller Jordan,
arXiv 2404.00498; github KellerJordan/cifar10-airbench, legacy/airbench94.py:
`init_whitening_conv`, `Conv.reset_parameters`).

`whitening_filters` computes, from training images, filters whose outputs are whitened
patches: the covariance of k x k patches (of images normalised per channel), its
eigenvectors scaled by 1/sqrt(eigenvalue + eps), largest eigenvalue first, then the same
filters negated (so that a GELU after them keeps both signs). `initialise` sets every
`Whitening` layer of a built model from the training images; the estimator calls it in
`fit`, before training, from up to `images` of the training images (a seeded sample).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def patches(images: np.ndarray, kernel: int) -> np.ndarray:
    """Every kernel x kernel patch (stride 1) of (n, H, W, C) images, as rows of
    kernel*kernel*C values in (row, column, channel) order: a Keras kernel's layout."""
    c = images.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(images, (kernel, kernel), axis=(1, 2))
    # (n, H-k+1, W-k+1, C, k, k) -> (n, H-k+1, W-k+1, k, k, C)
    return np.asarray(windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kernel * kernel * c))


def whitening_filters(images: np.ndarray, kernel: int = 2, eps: float = 5e-4) -> np.ndarray:
    """(k, k, C, 2*k*k*C) filters for normalised float images (n, H, W, C)."""
    c = images.shape[-1]
    d = kernel * kernel * c
    cov = np.zeros((d, d))
    count = 0
    for start in range(0, len(images), 500):  # a few MB at a time
        rows = patches(np.asarray(images[start : start + 500], dtype=np.float64), kernel)
        cov += rows.T @ rows
        count += len(rows)
    # uncentred, as airbench: the per-channel normalisation has already centred the images
    eigenvalues, eigenvectors = np.linalg.eigh(cov / count)
    order = np.argsort(eigenvalues)[::-1]
    scaled = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)  # columns are filters
    filters = np.concatenate([scaled, -scaled], axis=1)
    return filters.reshape(kernel, kernel, c, 2 * d).astype(np.float32)


@keras.saving.register_keras_serializable(package="cnn_cifar")
class Whitening(keras.layers.Layer):
    """(x - mean) / std, then a frozen k x k valid convolution plus a bias that trains
    while `gate` is 1 (WhiteningBias turns it off after `bias_epochs`)."""

    def __init__(self, kernel=2, eps=5e-4, bias_epochs=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.eps, self.bias_epochs = kernel, eps, bias_epochs

    def build(self, input_shape):
        c = int(input_shape[-1])
        d = self.kernel_size * self.kernel_size * c
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, c, 2 * d), trainable=False)
        self.bias = self.add_weight(name="bias", shape=(2 * d,), initializer="zeros")
        self.bias.no_l2 = True  # see optim.GroupSGD: no decay on a bias that is later frozen
        self.mean = self.add_weight(name="mean", shape=(c,), initializer="zeros", trainable=False)
        self.std = self.add_weight(name="std", shape=(c,), initializer="ones", trainable=False)
        self.gate = self.add_weight(name="gate", shape=(), initializer="ones", trainable=False)
        self.gate.no_average = True  # a switch (averaging.WeightAveraging), not a weight

    def call(self, x):
        dtype = self.compute_dtype
        x = (x - ops.cast(self.mean, dtype)) / ops.cast(self.std, dtype)
        y = ops.conv(x, ops.cast(self.kernel, dtype), padding="valid")
        gate = ops.cast(self.gate, dtype)
        bias = ops.cast(self.bias, dtype)
        return y + gate * bias + (1 - gate) * ops.stop_gradient(bias)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        k = self.kernel_size
        return (n, None if h is None else h - k + 1, None if w is None else w - k + 1, 2 * k * k * c)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel": self.kernel_size,
            "eps": self.eps,
            "bias_epochs": self.bias_epochs,
        }


def initialise(model, x: np.ndarray, rescale: float, images: int, seed: int | None) -> bool:
    """Set the model's Whitening layer (the first layer of the stack) from the training
    images x (as fed to the model, before `rescale`); True if there was one."""
    layers = [layer for layer in model.layers if isinstance(layer, Whitening)]
    if not layers:
        return False
    layer = layers[0]
    take = min(images, len(x))
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[:take])
    sample = np.asarray(x[idx], dtype=np.float32) * rescale
    mean = sample.mean(axis=(0, 1, 2))
    std = sample.std(axis=(0, 1, 2)) + 1e-8
    layer.mean.assign(mean)
    layer.std.assign(std)
    layer.kernel.assign(whitening_filters((sample - mean) / std, layer.kernel_size, layer.eps))
    return True


class WhiteningBias(keras.callbacks.Callback):
    """Trains the whitening bias for its first `bias_epochs` epochs only (airbench's
    whiten_bias_epochs), by the layer's gate (a frozen bias gets no gradient)."""

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model.layers:
            if isinstance(layer, Whitening) and layer.bias_epochs is not None:
                train = epoch < layer.bias_epochs
                layer.gate.assign(1.0 if train else 0.0)
                if not train:
                    _clear_slots(self.model.optimizer, layer.bias)


def _clear_slots(optimizer, variable) -> None:
    """Zero the optimizer's state for `variable` (SGD's momentum, Adam's moments), so that a
    frozen variable stops moving, as one without a gradient does in PyTorch."""
    if not getattr(optimizer, "built", False):
        return
    index = optimizer._get_variable_index(variable)
    for attr in ("momentums", "_momentums", "_velocities"):
        slots = getattr(optimizer, attr, None)
        if slots and slots[index] is not None:
            # zeros by shape: JAX's zeros_like does not take a Keras Variable
            slots[index].assign(ops.zeros(slots[index].shape, slots[index].dtype))


@keras.saving.register_keras_serializable(package="cnn_cifar")
class Dirac(keras.initializers.Initializer):
    """PyTorch's default conv init, uniform(+-1/sqrt(fan_in)), with the first min(C_in,
    C_out) filters replaced by identities (torch.nn.init.dirac_ on w[:C_in], airbench)."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        bound = 1 / math.sqrt(kh * kw * cin)
        w = keras.random.uniform(shape, -bound, bound, seed=self.seed, dtype=dtype or "float32")
        n = min(cin, cout)
        keep = np.ones(shape, np.float32)
        keep[..., :n] = 0
        eye = np.zeros(shape, np.float32)
        eye[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1
        return w * ops.cast(keep, w.dtype) + ops.cast(eye, w.dtype)

    def get_config(self):
        return {"seed": self.seed}

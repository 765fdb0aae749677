"""airbench's training augmentation as Keras layers, inside the model (active in training
only): alternating horizontal flips and whole-pixel random translation with reflect
padding (KellerJordan/cifar10-airbench, legacy/airbench94.py: `CifarLoader.__iter__`,
`batch_flip_lr`, `batch_crop`). Declared as `model.augment.flip: alternate` and
`model.augment.translate_pixels: N`.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cnn_cifar")
class AlternatingFlip(keras.layers.Layer):
    """Each image has a fixed parity (airbench draws a random half once; here a hash of the
    image's pixels, so that the graph needs no image index): images of parity p are
    flipped in the epochs e with (p + e) odd. Over any two epochs every image is seen once
    flipped and once not. `epoch` is set by AlternatingFlipEpoch."""

    def __init__(self, unit: float = 1 / 255, **kwargs):
        super().__init__(**kwargs)
        self.unit = unit  # the rescale: pixels / unit are the integers hashed

    def build(self, input_shape):
        self.epoch = self.add_weight(
            name="epoch", shape=(), dtype="int32", initializer="zeros", trainable=False
        )

    def call(self, x, training=None):
        if not training:
            return x
        pixels = ops.cast(ops.round(ops.cast(x, "float32") / self.unit), "int32")
        # a mixing hash of the pixel sum: its lowest bit alone would follow the brightness
        h = ops.sum(pixels, axis=(1, 2, 3)) * 40503 + ops.sum(pixels[:, ::3, ::5, :], axis=(1, 2, 3))
        parity = ops.mod(ops.floor_divide(h, 7) + ops.cast(self.epoch, "int32"), 2)
        flip = ops.reshape(ops.equal(parity, 1), (-1, 1, 1, 1))
        return ops.where(flip, ops.flip(x, axis=2), x)

    def get_config(self):
        return {**super().get_config(), "unit": self.unit}


class AlternatingFlipEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model.layers:
            if isinstance(layer, AlternatingFlip):
                layer.epoch.assign(epoch)


@keras.saving.register_keras_serializable(package="cnn_cifar")
class PixelTranslate(keras.layers.Layer):
    """Shift each image by dy, dx drawn uniformly from -pixels..pixels (whole pixels), the
    border filled by reflection (PyTorch's 'reflect': the edge pixel is not repeated)."""

    def __init__(self, pixels: int = 2, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pixels, self.seed = pixels, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.pixels == 0:
            return x
        p = self.pixels
        shape = ops.shape(x)
        b, h, w, c = shape[0], x.shape[1], x.shape[2], x.shape[3]
        padded = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        dy = keras.random.randint((b, 1), 0, 2 * p + 1, seed=self.seed_generator)
        dx = keras.random.randint((b, 1), 0, 2 * p + 1, seed=self.seed_generator)
        rows = dy + ops.arange(h, dtype="int32")[None, :]  # (b, h)
        cols = dx + ops.arange(w, dtype="int32")[None, :]  # (b, w)
        rows = ops.broadcast_to(rows[:, :, None, None], (b, h, w + 2 * p, c))
        out = ops.take_along_axis(padded, rows, axis=1)
        cols = ops.broadcast_to(cols[:, None, :, None], (b, h, w, c))
        return ops.take_along_axis(out, cols, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pixels": self.pixels, "seed": self.seed}

"""Shared fixtures: tiny generated data sets (never the real CIFAR-10) and an isolated cache."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_CIFAR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CNN_CIFAR_DATA", raising=False)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):  # rich would draw, not print lines
        monkeypatch.delenv(name, raising=False)


def make_images(n, size=8, channels=3, n_classes=3, seed=0):
    """Learnable toy images: each class brightens its own band of rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.integers(0, 100, (n, size, size, channels), dtype=np.uint8)
    band = size // n_classes
    for c in range(n_classes):
        x[y == c, c * band : (c + 1) * band] += 150
    return x, y


@pytest.fixture
def tiny_npz(tmp_path):
    """An npz data set: 90 train / 30 test 8x8 RGB images, 3 classes."""
    x_train, y_train = make_images(90)
    x_test, y_test = make_images(30, seed=1)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


TINY_CONFIG = """\
name: tiny
data: {{source: npz, path: {path}}}
model:
  layers:
    - {{name: conv1, type: conv, filters: 4, kernel: 3, activation: relu}}
    - {{name: pool1, type: pool, size: 2}}
    - {{name: hidden, type: dense, units: 8, activation: relu}}
train:
  optimizer: {{name: adam, learning_rate: 0.01}}
  epochs: 2
  batch_size: 16
  early_stopping: {{monitor: val_loss, patience: 2}}
  seed: 3
cv: {{n_splits: 2, test_size: 0.2, random_state: 15}}
"""


@pytest.fixture
def tiny_config(tmp_path, tiny_npz):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG.format(path=tiny_npz))
    return path

"""Test-time augmentation (`model.tta`): the model's predictions on several views of each
image, averaged as airbench does (KellerJordan/cifar10-airbench, legacy/airbench94.py:
`infer_mirror_translate`, tta_level 1 and 2).

airbench averages logits. The model outputs softmax probabilities; averaging their logs
is the same thing (log p = logits - logsumexp, and the logsumexp is one number per view
that the final softmax removes), so the result is softmax(weighted mean of log p).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEVELS = ("none", "flip", "flip_translate")
TINY = np.finfo(np.float32).tiny


def views(x: np.ndarray, level: str) -> list[tuple[float, np.ndarray]]:
    """(weight, images) pairs for (n, H, W, C) images; the weights sum to 1."""
    if level == "none":
        return [(1.0, x)]
    mirror = [(0.5, x), (0.5, x[:, :, ::-1])]
    if level == "flip":
        return mirror
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    shifted = [padded[:, :h, :w], padded[:, 2 : h + 2, 2 : w + 2]]  # up-left, down-right
    out = [(0.5 * wt, v) for wt, v in mirror]
    for s in shifted:
        out += [(0.25 * 0.5, s), (0.25 * 0.5, s[:, :, ::-1])]
    return out


def predict_proba(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, level: str, chunk: int = 2000):
    """Class probabilities of images x under TTA `level`; `predict` maps images to the
    model's probabilities."""
    if level == "none":
        return np.asarray(predict(x))
    out = []
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        logp = sum(
            wt * np.log(np.maximum(np.asarray(predict(v), np.float64), TINY)) for wt, v in views(part, level)
        )
        logp = logp - logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        out.append((p / p.sum(axis=1, keepdims=True)).astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

"""`cnn-cifar predict`: classify image files with a model saved by `evaluate`
(`training.model_file`), with the model's test-time augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .. import training
from ..core.vocabulary import UserError
from ..data import images
from ..data.formats import DataError
from ..nn import tta


class PredictError(UserError):
    """An image that cannot be used; str() is one line naming the file."""


# --------------------------------------------------------------------------- images


def load_image(path: str | Path, input_shape) -> np.ndarray:
    """A PNG/JPEG file as uint8 (H, W, C) for the model: decoded by `data.images`, exactly
    as an image folder's file is for training (the same refusals, the same one-line message
    naming the file, no EXIF rotation), converted to the model's channels, then resized
    (Lanczos, which antialiases big photos) to its H x W if it is of another size."""
    h, w, c = input_shape
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise PredictError(f"{path}: no such file") from None
    except OSError as e:
        raise PredictError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    try:
        arr = images.as_channels(images.decode_image(data, str(path)), c)
    except DataError as e:
        raise PredictError(str(e)) from None
    if arr.shape[:2] != (h, w):
        im = Image.fromarray(arr[..., 0] if c == 1 else arr)
        arr = np.asarray(im.resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8)
        arr = arr[..., None] if arr.ndim == 2 else arr
    return arr


def top_k(proba: np.ndarray, class_names, k: int) -> list[list[dict]]:
    """Per row, the k most probable classes: [{"class", "probability"}], best first."""
    k = min(k, proba.shape[1])
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return [
        [{"class": str(class_names[j]), "probability": float(row[j])} for j in idx]
        for row, idx in zip(proba, order, strict=True)
    ]


def predict_files(model_path, image_paths, k: int = 3) -> dict:
    """{"model", "predictions": [{"image", "top"}], "errors": [{"image", "error"}]}.
    A bad image is recorded in errors; the others are still classified."""
    model, meta = training.model_file.load_model(model_path)
    images, names, errors = [], [], []
    for p in image_paths:
        try:
            images.append(load_image(p, meta["input_shape"]))
            names.append(str(p))
        except PredictError as e:
            errors.append({"image": str(p), "error": str(e)})
    predictions = []
    if images:
        proba = tta.predict_proba(
            lambda v: model.predict(v, verbose=0, batch_size=256), np.stack(images), meta.get("tta", "none")
        )
        predictions = [
            {"image": n, "top": t} for n, t in zip(names, top_k(proba, meta["class_names"], k), strict=True)
        ]
    return {"model": str(model_path), "predictions": predictions, "errors": errors}


def format_predictions(result: dict) -> str:
    lines = []
    for p in result["predictions"]:
        top = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in p["top"])
        lines.append(f"{p['image']}: {top}")
    return "\n".join(lines)

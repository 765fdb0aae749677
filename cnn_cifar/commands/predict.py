"""`cnn-cifar predict`: classify image files with a model saved by `evaluate`
(`training.model_file`), with the model's test-time augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .. import training
from ..core.files import one_line
from ..core.vocabulary import UserError
from ..nn import tta


class PredictError(UserError):
    """An image that cannot be used; str() is one line naming the file."""


# --------------------------------------------------------------------------- images


def load_image(path: str | Path, input_shape) -> np.ndarray:
    """Any PNG/JPEG as uint8 (H, W, C) for the model: EXIF-rotated, converted to RGB or L
    to match C, resized (Lanczos, which antialiases big photos) to the model's H x W."""
    h, w, c = input_shape
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise PredictError(f"{path}: no such file") from None
    except Exception as e:
        raise PredictError(f"{path}: cannot read image ({one_line(e, 200)})") from None
    return arr[..., None] if arr.ndim == 2 else arr


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

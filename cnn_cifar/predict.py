"""The saved model file and `cnn-cifar predict`.

`model.keras` is Keras' native zip with one extra member, `cnn_cifar.json` (class names,
input shape, config name), appended after saving: `keras.models.load_model` ignores
members it does not know, so the file stays a plain Keras model and needs no sidecar.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from . import tta
from .files import atomic_path, one_line

META_MEMBER = "cnn_cifar.json"


class PredictError(Exception):
    """A model or image that cannot be used; str() is one line naming the file."""


# --------------------------------------------------------------------------- model file


def save_model(model, path: str | Path, meta: dict) -> None:
    """Save `model` with `meta` inside, atomically (`files.atomic_path`; the temporary
    name keeps the .keras suffix Keras insists on)."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(META_MEMBER, json.dumps(meta, indent=2))


def read_meta(path: str | Path) -> dict:
    """The cnn_cifar.json member; {} for a .keras file saved by someone else."""
    with zipfile.ZipFile(path) as zf:
        if META_MEMBER not in zf.namelist():
            return {}
        meta: dict = json.loads(zf.read(META_MEMBER))
        return meta


def load_model(path: str | Path):
    """(keras model, meta) with meta's class_names and input_shape always filled in.
    Safe mode: a model file cannot run code (no lambda layers deserialised)."""
    import keras

    from . import model as _custom_objects  # noqa: F401  (registers the project's Keras classes)

    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise PredictError(f"{path}: not a Keras .keras model file")
    try:
        meta = read_meta(path)
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as e:
        raise PredictError(f"{path}: cannot load the model ({one_line(e, 200)})") from None
    n_classes = int(model.output_shape[-1])
    meta.setdefault("input_shape", [int(d) for d in model.input_shape[1:]])
    meta.setdefault("class_names", [str(i) for i in range(n_classes)])
    if len(meta["class_names"]) != n_classes:
        raise PredictError(f"{path}: {len(meta['class_names'])} class names for {n_classes} outputs")
    return model, meta


# --------------------------------------------------------------------------- images


def load_image(path: str | Path, input_shape) -> np.ndarray:
    """Any PNG/JPEG as uint8 (H, W, C) for the model: EXIF-rotated, converted to RGB or L
    to match C, resized (Lanczos, which antialiases big photos) to the model's H x W."""
    from PIL import Image, ImageOps

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
    model, meta = load_model(model_path)
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

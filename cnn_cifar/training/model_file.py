"""The saved model file, `model.keras`: Keras' native zip with one extra member,
`cnn_cifar.json` (class names, input shape, config name, test-time augmentation),
appended after saving: `keras.models.load_model` ignores members it does not know, so the
file stays a plain Keras model and needs no sidecar."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras

from ..core.files import atomic_path, one_line
from ..core.vocabulary import UserError

# the project's Keras classes, registered when imported: a saved model names them
from ..nn import augment, optim, whitening  # noqa: F401

META_MEMBER = "cnn_cifar.json"


class ModelFileError(UserError):
    """A model file that cannot be used; str() is one line naming the file."""


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
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a Keras .keras model file")
    try:
        meta = read_meta(path)
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as e:
        raise ModelFileError(f"{path}: cannot load the model ({one_line(e, 200)})") from None
    n_classes = int(model.output_shape[-1])
    meta.setdefault("input_shape", [int(d) for d in model.input_shape[1:]])
    meta.setdefault("class_names", [str(i) for i in range(n_classes)])
    if len(meta["class_names"]) != n_classes:
        raise ModelFileError(f"{path}: {len(meta['class_names'])} class names for {n_classes} outputs")
    return model, meta

"""TensorBoard event files of one fit, written from its history after it ends (tf.summary):
the layout of keras.callbacks.TensorBoard (`train/`, `validation/`, `epoch_<metric>`, step =
epoch from 1) plus the fit's HParams session and final `score` in its own folder."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.records import FitRecord, FitResult
from ..core.vocabulary import FitStatus

TENSORBOARD_DIR = "tensorboard"  # every run with track.tensorboard: one folder per fit
# history key prefix of each TensorBoard subfolder, as keras.callbacks.TensorBoard splits them
SPLITS = {"train": "", "validation": "val_"}
# the HParams table's metric columns, in this order: (tag, subfolder, name shown)
METRICS = (
    ("score", None, "score"),
    ("epoch_accuracy", "validation", "val_accuracy"),
    ("epoch_loss", "validation", "val_loss"),
    ("epoch_accuracy", "train", "accuracy"),
    ("epoch_loss", "train", "loss"),
    ("epoch_learning_rate", "train", "learning_rate"),
)


def write_experiment(folder: Path, names) -> None:
    """The HParams experiment in `folder` itself, once: the columns of the table, in order
    (the fits' parameters, then the metrics with the final score first). Without it
    TensorBoard infers the columns and shows only the first few metrics: not the score."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    if any(folder.glob("events.out.tfevents.*")):  # a resumed run has it already
        return
    folder.mkdir(parents=True, exist_ok=True)
    with _writer(tf, folder):
        hp.hparams_config(
            hparams=[hp.HParam(name) for name in names],
            metrics=[hp.Metric(tag, group=group, display_name=shown) for tag, group, shown in METRICS],
        )


def write_fit(folder: Path, name: str, params: dict, result: FitResult | FitRecord) -> Path:
    """`folder/<name>/`: the fit's per-epoch scalars, HParams session and final score."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    final = folder / name
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        _write_events(tf, hp, tmp, name, params, result)
        if final.exists():  # a fit run again (a resumed search): the new one replaces it
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # renamed when all went well; half-written if not
    return final


def _write_events(tf, hp, tmp: Path, name: str, params: dict, fit: FitResult | FitRecord) -> None:
    result: Mapping[str, Any] = fit  # either record: what is not there reads as absent
    history = result.get("history") or {}
    for split, prefix in SPLITS.items():
        keys = [k for k in history if k.startswith(prefix) and (prefix or not k.startswith("val_"))]
        if not keys:
            continue
        with _writer(tf, tmp / split):
            for key in keys:
                for epoch, value in enumerate(history[key], 1):
                    tf.summary.scalar(f"epoch_{key[len(prefix) :]}", finite(value), step=epoch)
    with _writer(tf, tmp):
        hp.hparams(
            {
                k: _hparam(v)
                for k, v in {**params, "status": str(FitStatus(result.get("status", FitStatus.OK)))}.items()
            },
            trial_id=name,
        )
        if isinstance(result.get("score"), (int, float)):
            tf.summary.scalar("score", finite(result["score"]), step=int(result.get("epochs") or 0))


@contextlib.contextmanager
def _writer(tf, path: Path):
    writer = tf.summary.create_file_writer(str(path))
    try:
        with writer.as_default():
            yield
        writer.flush()
    finally:
        writer.close()


def _hparam(value):
    """An HParams value: bool, int, float or str (anything else as its JSON text)."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


def finite(value) -> float:
    value = float(value)
    return value if math.isfinite(value) else float("nan")

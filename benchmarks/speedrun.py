"""The speedrun part: airbench94 itself (benchmarks/reference.py) against its port,
configs/speedrun.yaml, on the same images, each training in a fresh process, the sides
alternated seed by seed; accuracy over seeds, training time and rates, then port / reference."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from benchmarks import reference
from benchmarks.measure import epoch_timer, keras_device, loadavg, log, median
from benchmarks.settings import config_path
from benchmarks.workers import WorkerError, ask, spawn, start_framework, stop
from cnn_cifar import training
from cnn_cifar.config.loader import load_config
from cnn_cifar.training.runtime import backend


def project_speedrun(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    epochs: float | None,
    side: str = "project",
    sets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """configs/speedrun.yaml trained once through the estimator, as `cnn-cifar evaluate`
    trains it, with a variant's `sets` (config paths, threads, backend); test accuracy with
    its TTA (flip_translate) and without."""
    sets = start_framework(sets or {})
    overrides = [f"train.seed={seed}"] + [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    if epochs is not None:  # the triangular peak stays at 23% of the steps
        overrides += [f"train.epochs={math.ceil(epochs)}", f"train.optimizer.warmup_epochs={0.23 * epochs}"]
    cfg = load_config(config_path("speedrun"), overrides)
    est, timer = training.estimator.from_config(cfg), epoch_timer()
    wall, cpu = time.perf_counter(), time.process_time()
    est.fit(x_train, y_train, callbacks=[timer])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tta = est.tta_
    accuracy: dict[str, float] = {}
    for key, level in (("test_accuracy_tta", tta), ("test_accuracy", "none")):
        est.tta_ = level
        accuracy[key] = float(np.mean(est.predict(x_test) == y_test))
    return {
        "side": side,
        "seed": seed,
        "epochs": cfg.train.epochs,
        "images_trained": est.n_epochs_ * len(x_train),
        "train_s": wall,
        "train_cpu_s": cpu,
        "epoch_s": timer.times,
        "epoch_cpu_s": timer.cpu,
        "images_per_epoch": len(x_train),
        **accuracy,
        "precision": cfg.train.precision,
        "backend": backend(),
        "device": keras_device(),
    }


def speedrun_worker(
    conn: Connection,
    side: str,
    data_path: str,
    subset: int | None,
    seed: int,
    epochs: float | None,
    sets: dict[str, Any] | None = None,
    device: str = "cpu",
) -> None:
    """One training of one side, in a process of its own (torch and TensorFlow never share
    one, and each starts cold as a user's run does)."""
    arrays = reference.load(data_path, subset)
    if side == "reference":
        with contextlib.redirect_stdout(sys.stderr):
            conn.send(reference.train(*arrays, seed=seed, epochs=epochs, device=device))
    else:
        conn.send(project_speedrun(*arrays, seed=seed, epochs=epochs, side=side, sets=sets))


def steady(r: dict[str, Any]) -> tuple[float, float]:
    """(images/s, images per CPU-second) over the epochs after the first (tracing, warm-up),
    full epochs only: a fractional last epoch (airbench's 9.9) is left out."""
    n = len(r["epoch_s"]) - (1 if r["epochs"] != math.ceil(r["epochs"]) else 0)
    wall, cpu = r["epoch_s"][1:n] or r["epoch_s"], r["epoch_cpu_s"][1:n] or r["epoch_cpu_s"]
    k = r["images_per_epoch"]
    return k / median(wall), k / median(cpu)


def _speedrun_side(runs: list[dict[str, Any]]) -> dict[str, Any]:
    acc = [r["test_accuracy"] for r in runs]
    tta = [r["test_accuracy_tta"] for r in runs]
    rates = [steady(r) for r in runs]
    sd: Callable[[list[float]], float] = statistics.stdev if len(runs) > 1 else (lambda xs: float("nan"))
    return {
        "seeds": [r["seed"] for r in runs],
        "epochs": runs[0]["epochs"],
        "accuracy_tta_mean": statistics.mean(tta),
        "accuracy_tta_sd": sd(tta),
        "accuracy_mean": statistics.mean(acc),
        "accuracy_sd": sd(acc),
        "train_s": statistics.mean(r["train_s"] for r in runs),
        "images_per_s": statistics.mean(r["images_trained"] / r["train_s"] for r in runs),
        "images_per_cpu_s": statistics.mean(r["images_trained"] / r["train_cpu_s"] for r in runs),
        "steady_images_per_s": median([s[0] for s in rates]),
        "steady_images_per_cpu_s": median([s[1] for s in rates]),
    }


def run_speedrun(
    args: argparse.Namespace, budget: dict[str, Any], errors: list[str]
) -> dict[str, Any] | None:
    """airbench94 itself (benchmarks/reference.py) against configs/speedrun.yaml: the same
    data, each side's own recipe (airbench 9.9 epochs, the port 10) unless
    --speedrun-epochs, alternated seed by seed, one fresh process per training."""
    if not reference.available():
        print(f"speedrun: skipped: {reference.EXTRA}", file=sys.stderr)
        return None
    b = budget["speedrun"]
    epochs = b["epochs"] if args.speedrun_epochs is None else args.speedrun_epochs
    seeds = b["seeds"] if args.seeds is None else args.seeds
    variants = {"project": {}, **{f"project_{name}": sets for name, sets in args.variant_sets}}
    out: dict[str, Any] = {
        "subset": b["subset"],
        "epochs": epochs,
        "device": args.device,
        "variants": variants,
    }
    out.update({"load_start": loadavg(), "runs": []})
    sides = ["reference", *variants]
    for i, seed in enumerate(seeds):
        for side in sides[:: 1 if i % 2 == 0 else -1]:
            log(f"speedrun seed {seed} {side} ... (load {loadavg()})")
            sets = variants.get(side)
            task = (side, str(args.data), b["subset"], seed, epochs, sets, args.device)
            proc, conn = spawn(speedrun_worker, *task)
            try:
                r = ask(proc, conn)
            except WorkerError as e:
                errors.append(f"speedrun {side} seed {seed}: {e}")
                continue
            finally:
                stop(proc, conn)
            out["runs"].append(r)
            figures = {k: v for k, v in r.items() if "epoch_" not in k}
            log(f"speedrun seed {seed} {side}: {json.dumps(figures)}")
    out.update(speedrun_summary(out["runs"]))
    out["load_end"] = loadavg()
    return out


_RATIOS = ("images_per_s", "images_per_cpu_s", "steady_images_per_s", "steady_images_per_cpu_s", "train_s")


def speedrun_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side (mean and spread over seeds), then each port side's figures over the
    reference's (ratios, and its TTA accuracy minus the reference's)."""
    names = sorted({r["side"] for r in runs}, key=lambda side: (side != "reference", side != "project", side))
    sides = {side: _speedrun_side([r for r in runs if r["side"] == side]) for side in names}
    ref = sides.get("reference")
    for side, s in sides.items():
        if ref and side != "reference":
            s["ratios"] = {key: s[key] / ref[key] for key in _RATIOS}
            s["accuracy_tta_difference"] = s["accuracy_tta_mean"] - ref["accuracy_tta_mean"]
    return {"sides": sides}

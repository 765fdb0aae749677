"""The throughput part: training images/s of the project's estimator against the
tutorial's plain Keras loop, each side in a worker of its own, rounds alternated, with
FLOP/s against the machine's peak."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.measure import (
    epoch_timer,
    gemm_gflops,
    loadavg,
    log,
    median,
    peak_worker,
    training_flops_per_image,
)
from benchmarks.settings import config_path
from benchmarks.workers import (
    PROCESS_KEYS,
    WorkerError,
    ask,
    load_slice,
    spawn,
    start_framework,
    stop,
)
from cnn_cifar import nn, training
from cnn_cifar.config.layers import LayerSpec
from cnn_cifar.config.loader import load_config
from cnn_cifar.training.runtime import resolve_precision


def tutorial_model(layers: Sequence[LayerSpec], input_shape: Sequence[int], n_classes: int) -> Any:
    """The tutorial's way: keras.Sequential, layer by layer, every default left alone (each
    layer from `nn.model.LAYER_BUILDERS`, which without dtype or seeds is Keras' defaults);
    a Flatten before the first dense layer and a softmax Dense at the end, as the project's
    model has."""
    import keras

    model = keras.Sequential([keras.Input(shape=tuple(input_shape))])
    for layer in layers:
        if layer.flat_input and len(model.output_shape) == 4:
            model.add(keras.layers.Flatten())
        model.add(nn.model.LAYER_BUILDERS[layer.type](layer, None, None))
    if len(model.output_shape) == 4:
        model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(n_classes, activation="softmax"))
    return model


def throughput_worker(
    conn: Connection, side: str, config: str, data_path: str, n: int, sets: dict[str, Any]
) -> None:
    """Loads its slice once, then runs one fit per request until it receives None."""
    sets = start_framework(sets)
    import keras

    cfg = load_config(config, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    x, y, n_classes = load_slice(data_path, n)
    if side == "baseline":
        xf = x.astype("float32") / 255  # the tutorial materialises float pixels
        onehot = keras.utils.to_categorical(y, n_classes)
    while True:
        msg = conn.recv()
        if msg is None:
            break
        timer = epoch_timer()
        if side == "baseline":
            keras.backend.clear_session()
            model = tutorial_model(cfg.model.layers, x.shape[1:], n_classes)
            model.compile(
                loss="categorical_crossentropy",
                optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
                metrics=["accuracy"],
            )
            model.fit(
                xf,
                onehot,
                batch_size=32,
                epochs=msg["epochs"],
                validation_split=0.2,
                verbose=0,
                callbacks=[timer],
            )
            n_fit = len(x) - int(len(x) * 0.2)
            del model
        else:
            est = training.estimator.from_config(cfg).set_params(
                train__epochs=msg["epochs"], train__early_stopping=None
            )
            est.fit(x, y, callbacks=[timer])
            n_fit = len(x) - round(len(x) * cfg.train.validation_split)
            est.release()
        precision = "float32" if side == "baseline" else resolve_precision(cfg.train.precision)
        conn.send({"epoch_s": timer.times, "cpu_s": timer.cpu, "n_fit": n_fit, "precision": precision})


def project_settings(config: str, sets: dict[str, Any]) -> str:
    """The project side's speed settings, as the table shows them: the config's (with a
    variant's changes) and the variant's process settings."""
    cfg = load_config(config, [f"{k}={json.dumps(v)}" for k, v in sets.items() if k not in PROCESS_KEYS])
    t = cfg.train
    return (
        f"batch {t.batch_size}, steps_per_execution {t.steps_per_execution}, precision {t.precision}"
        f" -> {resolve_precision(t.precision) if 'backend' not in sets else '?'}"
        + "".join(f", {k} {sets[k]}" for k in PROCESS_KEYS if k in sets)
    )


def run_throughput(args: argparse.Namespace, budget: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    variants = dict([("project", {}), *args.variant_sets])
    out: dict[str, Any] = {
        "epochs": budget["epochs"],
        "rounds": budget["rounds"],
        "gemm_samples": [],
        "peak_samples": {"float32": [], "bfloat16": []},
        "load_start": loadavg(),
        "models": {},
    }
    peak = spawn(peak_worker)
    for name in args.models:
        config = str(config_path(name))
        n = budget["slice"].get(name, min(budget["slice"].values()))
        flops = training_flops_per_image(load_config(config).model)
        workers = {
            side: spawn(
                throughput_worker,
                "baseline" if side == "baseline" else "project",
                config,
                str(args.data),
                n,
                sets,
            )
            for side, sets in [("baseline", {}), *list(variants.items())]
        }
        times: dict[str, list[float]] = {side: [] for side in workers}
        cpu: dict[str, list[float]] = {side: [] for side in workers}
        n_fit: dict[str, int] = {}
        precision: dict[str, str] = {}
        order = list(workers)
        for r in range(budget["rounds"]):
            out["gemm_samples"].append(gemm_gflops())
            try:
                for dtype, rate in ask(*peak, {}).items():
                    out["peak_samples"][dtype].append(rate)
            except WorkerError as e:
                errors.append(f"throughput peak: {e}")
                peak = spawn(peak_worker)
            for side in list(order if r % 2 == 0 else order[::-1]):  # ABBA: cancel drift
                try:
                    reply = ask(*workers[side], {"epochs": budget["epochs"]})
                except WorkerError as e:
                    errors.append(f"throughput {name} {side}: {e}")
                    log(f"{name} {side}: {e}; dropped")
                    stop(*workers.pop(side))
                    order.remove(side)
                    continue
                times[side] += reply["epoch_s"][1:]
                cpu[side] += reply["cpu_s"][1:]
                n_fit[side], precision[side] = reply["n_fit"], reply["precision"]
                log(
                    f"{name} round {r + 1}/{budget['rounds']} {side}: "
                    + ", ".join(f"{reply['n_fit'] / t:.0f}" for t in reply["epoch_s"][1:])
                    + f" images/s (load {loadavg()})"
                )
        for worker in workers.values():
            stop(*worker)
        sides = {}
        for side, ts in times.items():
            if not ts:
                continue
            ips = [n_fit[side] / t for t in ts]
            # images per CPU-second (all threads): the work an image costs, which other
            # processes on the machine disturb far less than the wall clock
            ipc = [n_fit[side] / t for t in cpu[side]]
            sides[side] = {
                "images_per_s": median(ips),
                "min": min(ips),
                "max": max(ips),
                "samples": ips,
                "images_per_cpu_s": median(ipc),
                "precision": precision[side],
            }
        out["models"][name] = {
            "n_slice": n,
            "n_fit": next(iter(n_fit.values()), None),
            "mflop_per_image": flops / 1e6,
            "project_settings": project_settings(config, variants["project"]),
            "variants": dict(variants),
            "sides": sides,
        }
    stop(*peak)
    # The machine's peak: the best sample (other processes only ever lower it), so the
    # fractions below are conservative when the machine is busy.
    out["peak_gflops"] = {d: max(xs, default=float("nan")) for d, xs in out["peak_samples"].items()}
    out["gemm_gflops"] = max(out["gemm_samples"], default=float("nan"))
    out["gemm_median"] = median(out["gemm_samples"])
    for m in out["models"].values():
        base = m["sides"].get("baseline")
        for side, s in m["sides"].items():
            other = base if base and side != "baseline" else None
            s["ratio"] = s["images_per_s"] / other["images_per_s"] if other else None
            # fastest epoch against fastest epoch: what each side does when it has the machine
            s["best_ratio"] = s["max"] / other["max"] if other else None
            s["cpu_ratio"] = s["images_per_cpu_s"] / other["images_per_cpu_s"] if other else None
            s["gflops"] = s["images_per_s"] * m["mflop_per_image"] / 1e3
            s["peak_fraction"] = s["gflops"] / out["peak_gflops"].get(s["precision"], float("nan"))
            s["numpy_gemm_fraction"] = s["gflops"] / out["gemm_gflops"]
    out["load_end"] = loadavg()
    return out

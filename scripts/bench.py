#!/usr/bin/env python
"""Benchmark the project's training against the tutorial's plain Keras loop.

    .venv/bin/python scripts/bench.py                    # all but speedrun, ~45 min on 2 cores
    .venv/bin/python scripts/bench.py --quick            # smaller slices and budgets, ~5 min
    .venv/bin/python scripts/bench.py --smoke            # every part on a tiny slice, < 2 min (CI)
    .venv/bin/python scripts/bench.py --only throughput,memory
    .venv/bin/python scripts/bench.py --only throughput --variant f32:train.precision=float32
    .venv/bin/python scripts/bench.py --only speedrun     # airbench94 beside its port, ~2.5 h

Prints a table and writes results/bench-<timestamp>.json. Exits 1 when any part failed (a
worker that died, a fit or a search that failed), after printing what the others measured.
--smoke checks that every part runs, not what it measures: its budgets are far too small
for the figures to mean anything, so the table shows "smoke" where a target's verdict
would be, and the JSON goes to a temporary folder as bench-smoke-<timestamp>.json.
Parts:

throughput  For each model (two_conv_hidden, final): training images/s of the project's
            estimator (CNNClassifier from the config, as `cnn-cifar cv` trains it) and of
            a tutorial-style loop (keras.Sequential, float32 pixels / 255, one-hot labels,
            model.fit(batch_size=32, validation_split=0.2), every default left alone).
            Each side lives in its own worker process (so each keeps its own TensorFlow
            settings) and they ALTERNATE: baseline, project, project, baseline, ... one
            fresh fit of `--epochs` epochs each; the first epoch (tracing) is not timed.
            images/s = training rows / epoch wall time, the validation pass included on
            both sides; the figure is the median over all timed epochs. FLOP/s are
            3 x 2 x multiply-accumulates per image (shapes.infer) x images/s, shown as a
            fraction of the machine's peak in the precision the side computes in: the
            framework's own matmul (TensorFlow/oneDNN, 2048x2048 in a tf.function, in
            float32 and in bfloat16), measured in a worker of its own before every round
            (best sample). numpy's float32 GEMM (OpenBLAS) is measured beside it and
            labelled as such: here it reaches about half of TensorFlow's float32 rate.
memory      20 sequential fits of a small model in one fresh process: VmRSS after each fit
            (/proc/self/status), growth first -> last, and the peak (VmHWM).
search      Time to quality on a fixed stratified subset: sklearn's RandomizedSearchCV over
            CNNClassifier at the tutorial's arithmetic (float32, one step per call, n_jobs=1)
            against `cnn-cifar search --jobs 2` with the project's defaults and the config's
            strategy (others with --search-strategies). Same candidates, same folds, the
            tutorial's protocol per fit (validation split, early stopping) with the epochs
            capped; the budgets (subset, n_iter, folds, epochs) are printed with the figures.
            Wall times include starting the process and loading the data. Time to quality:
            RandomizedSearchCV answers when it ends; for the project, the moment (from its
            fits/ journal) a candidate had all its folds with a mean within 1 point of the
            plain search's best.
speedrun    airbench94 itself against configs/speedrun.yaml, its port (needs the reference
            extra: pip install -e ".[reference]"; without it the part says so and is
            skipped). The reference is the `airbench` package's own training, run on the
            CPU in float32 by scripts/airbench_reference.py, which changes only device,
            precision and data feeding (its docstring lists each change); --device cuda
            runs it on the GPU in float16, as published, and the port then trains where
            its Keras backend puts it (KERAS_BACKEND=torch takes the GPU). Both sides
            train on the same images (--data, all 50,000; --quick and --smoke a subset),
            each with its own recipe (airbench 9.9 epochs, the port 10), each training in
            a fresh process, the sides alternated seed by seed (--seeds, default 0,1).
            Per side: test accuracy with its TTA and without (mean +/- sd over seeds),
            training seconds (the whole training call: network built, whitening fitted,
            every step), images/s and images per CPU-second over that call and over the
            steady epochs (median epoch after the first); then port / reference.

Slices and subsets are the package's `--subset N` draw (data.sources.load_dataset(subset=N):
stratified, seeded), so a bench slice holds the images `cnn-cifar ... --subset N` trains on.
The machine may be shared: the load average is recorded before and after each part, and
only ratios measured within one run should be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import typing
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# the package from this checkout, and airbench_reference.py beside this file (spawned
# workers inherit sys.path)
sys.path[:0] = [path for path in (str(ROOT), str(ROOT / "scripts")) if path not in sys.path]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
PARTS = ("throughput", "memory", "search", "speedrun")
# speedrun is two hours and more on two cores: run it by name (--only speedrun); --smoke runs it too
DEFAULT_PARTS = ("throughput", "memory", "search")
MODELS = ("two_conv_hidden", "final")
TARGETS = {
    "final": {"ratio": 2.0, "cpu_ratio": 2.0, "peak_fraction": 0.60},
    "two_conv_hidden": {"ratio": 1.5},
    "memory_growth_mb": 100.0,
    "search_time_fraction": 0.10,
    "search_score_points": 1.0,
    "tensorboard_fraction": 0.03,  # of a search's wall time
}
# default / --quick / --smoke budgets
BUDGETS = {
    # slices sized so a timed epoch lasts several seconds even on a quiet machine
    "default": {
        "slice": {"two_conv_hidden": 15000, "final": 8000},
        "epochs": 3,
        "rounds": 4,  # a median of at least 4 alternated rounds: one noisy round cannot decide
        "memory_fits": 20,
        "memory_images": 1000,
        # room for pruning: enough images and epochs that the candidates' curves part
        "search": {"subset": 10000, "n_iter": 10, "cv": 3, "epochs": 10},
        # all 50,000 training images, each recipe's own epochs (None), two seeds per side
        "speedrun": {"subset": None, "epochs": None, "seeds": [0, 1]},
    },
    "quick": {
        "slice": {"two_conv_hidden": 3000, "final": 2000},
        "epochs": 3,
        "rounds": 2,
        "memory_fits": 20,
        "memory_images": 500,
        "search": {"subset": 1500, "n_iter": 4, "cv": 2, "epochs": 2},
        "speedrun": {"subset": 12800, "epochs": 2, "seeds": [0]},
    },
    # every code path once, as fast as it goes: one timed epoch, one round, two candidates
    "smoke": {
        "slice": {"two_conv_hidden": 400, "final": 400},
        "epochs": 2,
        "rounds": 1,
        "memory_fits": 3,
        "memory_images": 200,
        "search": {"subset": 400, "n_iter": 3, "cv": 2, "epochs": 2},  # 2 epochs: room for the 1-epoch probe
        "speedrun": {"subset": 2560, "epochs": 1, "seeds": [0]},  # two batches of 1024
    },
}
SMOKE = "smoke"  # the verdict printed for every target in --smoke mode


class WorkerError(RuntimeError):
    """A worker process reported an error or died."""


# --------------------------------------------------------------------------- pure helpers


def training_flops_per_image(model, input_shape=(32, 32, 3), n_classes: int = 10) -> int:
    """Training FLOPs per image: forward (1 x MACs) + backward (2 x MACs), 2 FLOPs a MAC."""
    from cnn_cifar.config import shapes

    _, macs = shapes.totals(shapes.infer(model, tuple(input_shape), n_classes))
    return 3 * 2 * macs


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """numpy float32 matmul rate (GFLOP/s), best of `repeats` after one warm-up product."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _peak_worker(conn, n: int = 2048, repeats: int = 5):
    """The framework's matmul peak: float32 and bfloat16 GFLOP/s of an n x n product in a
    tf.function (oneDNN), best of `repeats` after a warm-up, on every request until None."""
    from cnn_cifar.training.runtime import configure_threads

    configure_threads(None)  # TensorFlow started as the CLI starts it, every thread
    import tensorflow as tf

    product = tf.function(lambda a, b: tf.matmul(a, b)[0, 0])
    while conn.recv() is not None:
        rates = {}
        for dtype in ("float32", "bfloat16"):
            a = tf.cast(tf.random.uniform((n, n)), dtype)
            b = tf.cast(tf.random.uniform((n, n)), dtype)
            product(a, b).numpy()
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                product(a, b).numpy()
                best = min(best, time.perf_counter() - start)
            rates[dtype] = 2 * n**3 / best / 1e9
        conn.send(rates)


def median(xs) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else float("nan")


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def vm_status() -> dict:
    """VmRSS and VmHWM (peak) of this process in MB, from /proc/self/status."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024
    except OSError:
        import resource

        out["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def parse_variant(text: str) -> tuple[str, dict]:
    """`name:key=value,key=value` -> (name, {key: value}); values are YAML.
    Keys are config paths (train.precision, conv2.kernel) or `threads`."""
    import yaml

    name, _, rest = text.partition(":")
    sets = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--variant {text!r}: expected name:key=value,...")
        sets[key.strip()] = yaml.safe_load(value)
    return name, sets


def fmt(x, spec: str = ".0f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def verdict(value, target, higher: bool = True, smoke: bool = False) -> str:
    if smoke:
        return SMOKE
    if value is None or not math.isfinite(value):
        return "n/a"
    return "MET" if (value >= target if higher else value <= target) else "not met"


def table(result: dict) -> str:
    """The report: one block per part that ran, then the errors, if any."""
    smoke = bool(result.get("smoke"))
    lines = [
        f"bench {result['started']}  {result['machine']}",
        f"keras {result['versions'].get('keras')} / tensorflow {result['versions'].get('tensorflow')}"
        f"  backend {result.get('backend', '?')}  load average at start {result['load_start']}",
    ]
    if smoke:
        lines.append("SMOKE RUN: tiny budgets check that every part runs; its figures measure nothing")
    tp = result.get("throughput")
    if tp:
        lines += [
            "",
            f"THROUGHPUT  (images/s: median of {tp['epochs'] - 1} timed epoch(s) x "
            f"{tp['rounds']} alternated round(s);",
            _peak_line(tp),
            "of peak: the side's GFLOP/s over the peak of the precision it computes in (f32 / bf16);",
            "img/cpu-s: images per CPU-second of the process; best: fastest epoch against fastest)",
            f"{'model':<16}{'side':<18}{'images':>7}{'img/s':>8}{'range':>13}{'ratio':>7}"
            f"{'GFLOP/s':>9}{'of peak':>13}{'img/cpu-s':>10}{'ratio':>7}{'best':>6}  target",
        ]
        for name, m in tp["models"].items():
            for side, s in m["sides"].items():
                rng = f"{fmt(s['min'])}-{fmt(s['max'])}"
                ratio = s.get("ratio")
                tgt = ""
                if side == "project":
                    tgt = _targets_text(TARGETS.get(name, {}), s, smoke)
                peak = s.get("peak_fraction")
                of_peak = f"{fmt(peak * 100 if peak else None, '.0f')}% {_SHORT.get(s.get('precision'), '?')}"
                lines.append(
                    f"{name:<16}{side[:17]:<18}{fmt(m['n_fit'], 'd'):>7}{fmt(s['images_per_s']):>8}"
                    f"{rng:>13}{fmt(ratio, '.2f'):>7}{fmt(s.get('gflops'), '.1f'):>9}"
                    f"{of_peak:>13}"
                    f"{fmt(s.get('images_per_cpu_s')):>10}{fmt(s.get('cpu_ratio'), '.2f'):>7}"
                    f"{fmt(s.get('best_ratio'), '.2f'):>6}  {tgt}"
                )
            lines.append(
                f"{'':<16}training MFLOP/image {m['mflop_per_image']:.1f}; "
                f"project settings: {m['project_settings']}"
            )
        lines.append(f"load average after: {tp['load_end']}")
    mem = result.get("memory")
    if mem:
        lines += [
            "",
            f"MEMORY  ({mem['fits']} sequential fits of {mem['model']} on {mem['images']} images, "
            "one process)",
            f"RSS after fit 1 {mem['rss_first_mb']:.0f} MB, after fit {mem['fits']} "
            f"{mem['rss_last_mb']:.0f} MB: growth {mem['growth_mb']:+.0f} MB "
            f"(target < {TARGETS['memory_growth_mb']:.0f} MB: "
            f"{verdict(mem['growth_mb'], TARGETS['memory_growth_mb'], higher=False, smoke=smoke)}); "
            f"peak (VmHWM) {mem['peak_mb']:.0f} MB; {mem['seconds']:.0f} s",
        ]
    se = result.get("search")
    if se:
        b = se["budget"]
        lines += [
            "",
            f"SEARCH  (configs/search.yaml space; stratified subset of {b['subset']} training images, "
            f"n_iter {b['n_iter']}, {b['cv']} folds (test_size {b['test_size']}), at most "
            f"{b['epochs']} epochs per fit with the config's early stopping;",
            "to quality: until a candidate's full CV mean is within 1 point of the plain best)",
            f"{'run':<44}{'wall s':>8}{'of plain':>9}{'to qual s':>10}{'of plain':>9}{'fits':>6}"
            f"{'best CV':>9}{'vs plain':>9}  target",
        ]
        plain = se["runs"].get("plain")
        for key, r in se["runs"].items():
            lines.append(_search_line(key, r, plain, smoke))
        lines += [_tracking_line(r, smoke) for r in se["runs"].values() if r.get("tracking_s") is not None]
        lines.append(f"load average after: {se['load_end']}")
    if result.get("speedrun"):
        lines += _speedrun_table(result["speedrun"], smoke)
    errors = result.get("errors")
    if errors:
        lines += ["", f"ERRORS ({len(errors)})"] + [f"  {e}" for e in errors]
    return "\n".join(lines)


def _speedrun_table(sr: dict, smoke: bool) -> list[str]:
    images = "all training images" if sr["subset"] is None else f"the --subset {sr['subset']} draw"
    where = (  # the reference's device; each port side's is in its runs
        "the reference on CUDA in float16" if sr.get("device") == "cuda" else "float32 on the CPU"
    )
    lines = [
        "",
        "SPEEDRUN  (airbench94 itself, scripts/airbench_reference.py, against configs/speedrun.yaml;",
        f"{images}, {where}, one fresh process per training, alternated; accuracy: mean +/- sd over seeds;",
        "img/s and img/cpu-s: images trained over the whole training call;",
        "steady: the median epoch after the first)",
        f"{'side':<11}{'seeds':>6}{'epochs':>7}{'TTA acc %':>15}{'no-TTA acc %':>15}{'train s':>9}"
        f"{'img/s':>7}{'img/cpu-s':>10}{'steady img/s':>13}{'steady /cpu-s':>14}",
    ]
    for side, s in sr.get("sides", {}).items():
        lines.append(
            f"{side:<11}{len(s['seeds']):>6}{s['epochs']:>7}"
            f"{_pm(s['accuracy_tta_mean'], s['accuracy_tta_sd']):>15}"
            f"{_pm(s['accuracy_mean'], s['accuracy_sd']):>15}{fmt(s['train_s']):>9}"
            f"{fmt(s['images_per_s']):>7}{fmt(s['images_per_cpu_s']):>10}"
            f"{fmt(s['steady_images_per_s']):>13}{fmt(s['steady_images_per_cpu_s']):>14}"
        )
    for side, s in sr.get("sides", {}).items():
        r = s.get("ratios")
        if not r:
            continue
        diff = s["accuracy_tta_difference"] * 100
        lines.append(
            f"{side} / reference: img/cpu-s {r['images_per_cpu_s']:.2f}x "
            f"(steady {r['steady_images_per_cpu_s']:.2f}x), img/s {r['images_per_s']:.2f}x, "
            f"training time {r['train_s']:.2f}x; TTA accuracy {diff:+.2f} points"
        )
        lines.append(
            f"  targets: img/cpu-s >= 1.0x: {verdict(r['images_per_cpu_s'], 1.0, smoke=smoke)}; "
            f"|accuracy difference| <= 0.3 points: {verdict(-abs(round(diff, 2)), -0.3, smoke=smoke)}"
        )
    for name, sets in sr.get("variants", {}).items():
        if sets:
            lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in sets.items()))
    lines.append(f"load average after: {sr['load_end']}")
    return lines


def _pm(mean: float, sd: float) -> str:
    return f"{100 * mean:.2f} +/- {100 * sd:.2f}" if not math.isnan(sd) else f"{100 * mean:.2f}"


_SHORT = {"float32": "f32", "bfloat16": "bf16"}
_TARGET_NAMES = {
    "ratio": ("wall ratio", "{:.1f}x"),
    "cpu_ratio": ("per CPU-s", "{:.1f}x"),
    "peak_fraction": ("of peak", "{:.0%}"),
}


def _targets_text(targets: dict, side: dict, smoke: bool) -> str:
    """`wall ratio >= 2.0x: MET; ...` for the targets of a model's project side."""
    return "; ".join(
        f"{label} >= {spec.format(target)}: {verdict(side.get(key), target, smoke=smoke)}"
        for key, (label, spec) in _TARGET_NAMES.items()
        if (target := targets.get(key)) is not None
    )


def _peak_line(tp: dict) -> str:
    peaks, samples = tp.get("peak_gflops", {}), tp.get("peak_samples", {})
    framework = ", ".join(
        f"{dtype} {fmt(peaks.get(dtype))} (median {fmt(median(samples.get(dtype, [])))})"
        for dtype in ("float32", "bfloat16")
    )
    return (
        f"peak GFLOP/s, TensorFlow matmul 2048^2: {framework}; numpy (OpenBLAS) float32 GEMM "
        f"{fmt(tp['gemm_gflops'])} (median {fmt(tp.get('gemm_median'))}); best of "
        f"{len(tp['gemm_samples'])} samples, one per round;"
    )


def _tracking_line(r: dict, smoke: bool) -> str:
    share = r["tracking_s"] / r["wall_s"] if r.get("wall_s") else None
    limit = TARGETS["tensorboard_fraction"]
    return (
        f"  {r['label']}: TensorBoard wrote {r.get('tensorboard_files', 0)} files, "
        f"{r.get('tensorboard_bytes', 0) / 1024:.0f} KB, in {r['tracking_s']:.2f} s = "
        f"{fmt(share * 100 if share is not None else None, '.2f')}% of its wall time "
        f"(target < {limit:.0%}: {verdict(share, limit, higher=False, smoke=smoke)})"
    )


def _search_line(key: str, r: dict, plain: dict | None, smoke: bool = False) -> str:
    def of_plain(name):
        if key == "plain" or not plain or not r.get(name) or not plain.get("wall_s"):
            return None
        return r[name] / plain["wall_s"]

    frac, ttq = of_plain("wall_s"), of_plain("time_to_quality_s")
    gap = (
        (r["best_score"] - plain["best_score"]) * 100
        if plain
        and key != "plain"
        and r.get("best_score") is not None
        and plain.get("best_score") is not None
        else None
    )
    tgt = ""
    if key != "plain" and plain and r.get("wall_s"):
        ok = ttq is not None and ttq <= TARGETS["search_time_fraction"]
        limit = TARGETS["search_time_fraction"]
        tgt = f"within 1 pt in <= {limit:.2f} of the time: {SMOKE if smoke else 'MET' if ok else 'not met'}"
    if r.get("error"):
        tgt = "ERROR: " + r["error"][:80]
    return (
        f"{r['label'][:43]:<44}{fmt(r.get('wall_s')):>8}{fmt(frac, '.2f'):>9}"
        f"{fmt(r.get('time_to_quality_s')):>10}{fmt(ttq, '.2f'):>9}"
        f"{fmt(r.get('n_fits'), 'd'):>6}{fmt(r.get('best_score'), '.4f'):>9}{fmt(gap, '+.1f'):>9}  {tgt}"
    )


def result_path(out: Path, started: datetime, smoke: bool) -> Path:
    """Where the JSON goes: bench-<timestamp>.json, or bench-smoke-<timestamp>.json so a
    smoke run's figures are never read as a benchmark's."""
    return out / f"bench-{'smoke-' if smoke else ''}{started.strftime('%Y-%m-%d_%H-%M-%S')}.json"


# --------------------------------------------------------------------------- worker processes


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore")


def _child(conn, task, *args) -> None:
    """A spawned worker's entry point: runs task(conn, *args). An exception is sent to the
    parent as {"error": "Type: message"} (traceback on stderr) rather than a bare EOF."""
    _quiet_tf()
    try:
        task(conn, *args)
    except BaseException as e:
        traceback.print_exc()
        from cnn_cifar.core.files import one_line

        with contextlib.suppress(OSError):
            conn.send({"error": one_line(e)})
    finally:
        conn.close()


def _spawn(task, *args):
    """Start task(conn, *args) in a fresh process (spawned, so each keeps its own framework
    settings); returns (process, the parent's end of the pipe)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, task, *args), daemon=True)
    proc.start()
    child.close()  # so a dead worker reads as EOFError
    return proc, parent


def _ask(proc, conn, message=None) -> dict:
    """Send `message` (unless None) and wait for the worker's reply; WorkerError if it
    reported an error or died."""
    try:
        if message is not None:
            conn.send(message)
    except OSError:
        pass  # it has ended: its error may still wait in the pipe
    try:
        reply = conn.recv()
    except (EOFError, OSError):
        proc.join(timeout=10)
        raise WorkerError(f"the worker died (exit code {proc.exitcode})") from None
    if "error" in reply:
        raise WorkerError(reply["error"])
    return reply


def _stop(proc, conn) -> None:
    with contextlib.suppress(OSError):
        conn.send(None)
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()


def _load_slice(data_path: str, n: int):
    """The `--subset n` draw of the training set (stratified, seeded), as the CLI takes it."""
    from cnn_cifar.data.sources import SUBSET_SEED, detect_source, load_dataset

    ds = load_dataset(detect_source(data_path), data_path, subset=n, seed=SUBSET_SEED)
    return ds.x_train, ds.y_train, ds.n_classes


# --------------------------------------------------------------------------- throughput


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.cpu = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)
            self.cpu.append(time.process_time() - self._cpu)

    return EpochTimer()


def tutorial_model(layers, input_shape, n_classes: int):
    """The tutorial's way: keras.Sequential, layer by layer, every default left alone (each
    layer from `nn.model.LAYER_BUILDERS`, which without dtype or seeds is Keras' defaults);
    a Flatten before the first dense layer and a softmax Dense at the end, as the project's
    model has."""
    import keras

    from cnn_cifar.nn.model import LAYER_BUILDERS

    model = keras.Sequential([keras.Input(shape=tuple(input_shape))])
    for layer in layers:
        if layer.flat_input and len(model.output_shape) == 4:
            model.add(keras.layers.Flatten())
        model.add(LAYER_BUILDERS[layer.type](layer, None, None))
    if len(model.output_shape) == 4:
        model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(n_classes, activation="softmax"))
    return model


def _start_framework(sets: dict) -> dict:
    """In a worker, before any Keras work: apply a variant's process settings (backend,
    threads, inter_threads) and start the backend quietly, as the CLI does; returns the
    variant's config settings."""
    sets = dict(sets)
    threads, inter = sets.pop("threads", None), sets.pop("inter_threads", None)
    if sets.get("backend"):  # KERAS_BACKEND, before Keras is imported
        os.environ["KERAS_BACKEND"] = sets.pop("backend")
    if inter:  # before anything starts TensorFlow
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(inter)
    from cnn_cifar.training.runtime import configure_threads

    configure_threads(threads)  # None: the framework's defaults
    return sets


def _throughput_worker(conn, side: str, config: str, data_path: str, n: int, sets: dict):
    """Loads its slice once, then runs one fit per request until it receives None."""
    sets = _start_framework(sets)
    import keras

    from cnn_cifar.config.loader import load_config
    from cnn_cifar.training.estimator import from_config
    from cnn_cifar.training.runtime import resolve_precision

    cfg = load_config(config, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    x, y, n_classes = _load_slice(data_path, n)
    if side == "baseline":
        xf = x.astype("float32") / 255  # the tutorial materialises float pixels
        onehot = keras.utils.to_categorical(y, n_classes)
    while True:
        msg = conn.recv()
        if msg is None:
            break
        timer = _epoch_timer()
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
            est = from_config(cfg).set_params(train__epochs=msg["epochs"], train__early_stopping=None)
            est.fit(x, y, callbacks=[timer])
            n_fit = len(x) - round(len(x) * cfg.train.validation_split)
            est.release()
        precision = "float32" if side == "baseline" else resolve_precision(cfg.train.precision)
        conn.send({"epoch_s": timer.times, "cpu_s": timer.cpu, "n_fit": n_fit, "precision": precision})


def _project_settings(config: str, sets: dict) -> str:
    from cnn_cifar.config.loader import load_config
    from cnn_cifar.training.runtime import resolve_precision

    special = ("threads", "inter_threads", "backend")
    cfg = load_config(config, [f"{k}={json.dumps(v)}" for k, v in sets.items() if k not in special])
    t = cfg.train
    return (
        f"batch {t.batch_size}, steps_per_execution {t.steps_per_execution}, precision {t.precision}"
        f" -> {resolve_precision(t.precision) if 'backend' not in sets else '?'}"
        + "".join(f", {k} {sets[k]}" for k in special if k in sets)
    )


def run_throughput(args, budget, errors: list) -> dict:
    from cnn_cifar.config.loader import load_config

    variants = dict([("project", {}), *args.variant_sets])
    out = {
        "epochs": budget["epochs"],
        "rounds": budget["rounds"],
        "gemm_samples": [],
        "peak_samples": {"float32": [], "bfloat16": []},
        "load_start": loadavg(),
        "models": {},
    }
    peak_worker = _spawn(_peak_worker)
    for name in args.models:
        config = str(ROOT / "configs" / f"{name}.yaml")
        n = budget["slice"].get(name, min(budget["slice"].values()))
        flops = training_flops_per_image(load_config(config).model)
        workers = {
            side: _spawn(
                _throughput_worker,
                "baseline" if side == "baseline" else "project",
                config,
                str(args.data),
                n,
                sets,
            )
            for side, sets in [("baseline", {}), *list(variants.items())]
        }
        times = {side: [] for side in workers}
        cpu = {side: [] for side in workers}
        n_fit, precision = {}, {}
        order = list(workers)
        for r in range(budget["rounds"]):
            out["gemm_samples"].append(gemm_gflops())
            try:
                for dtype, rate in _ask(*peak_worker, {}).items():
                    out["peak_samples"][dtype].append(rate)
            except WorkerError as e:
                errors.append(f"throughput peak: {e}")
                peak_worker = _spawn(_peak_worker)
            for side in list(order if r % 2 == 0 else order[::-1]):  # ABBA: cancel drift
                try:
                    reply = _ask(*workers[side], {"epochs": budget["epochs"]})
                except WorkerError as e:
                    errors.append(f"throughput {name} {side}: {e}")
                    _log(f"{name} {side}: {e}; dropped")
                    _stop(*workers.pop(side))
                    order.remove(side)
                    continue
                times[side] += reply["epoch_s"][1:]
                cpu[side] += reply["cpu_s"][1:]
                n_fit[side], precision[side] = reply["n_fit"], reply["precision"]
                _log(
                    f"{name} round {r + 1}/{budget['rounds']} {side}: "
                    + ", ".join(f"{reply['n_fit'] / t:.0f}" for t in reply["epoch_s"][1:])
                    + f" images/s (load {loadavg()})"
                )
        for worker in workers.values():
            _stop(*worker)
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
            "project_settings": _project_settings(config, variants["project"]),
            "variants": dict(variants),
            "sides": sides,
        }
    _stop(*peak_worker)
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


# --------------------------------------------------------------------------- memory


def _memory_worker(conn, data_path: str, fits: int, images: int):
    from cnn_cifar.config.loader import load_config
    from cnn_cifar.training.estimator import from_config
    from cnn_cifar.training.runtime import configure_threads

    configure_threads(None)
    x, y, _ = _load_slice(data_path, images)
    cfg = load_config(ROOT / "configs" / "two_conv.yaml", ["train.epochs=1", "train.early_stopping=null"])
    rss = []
    start = time.perf_counter()
    for _ in range(fits):
        est = from_config(cfg).fit(x, y)
        est.predict(x[:100])
        rss.append(vm_status()["VmRSS"])
    conn.send({"rss": rss, "peak": vm_status().get("VmHWM"), "seconds": time.perf_counter() - start})


def run_memory(args, budget, errors: list) -> dict | None:
    proc, conn = _spawn(_memory_worker, str(args.data), budget["memory_fits"], budget["memory_images"])
    try:
        reply = _ask(proc, conn)
    except WorkerError as e:
        errors.append(f"memory: {e}")
        return None
    finally:
        _stop(proc, conn)
    rss = reply["rss"]
    return {
        "model": "two_conv (1 epoch each)",
        "fits": len(rss),
        "images": budget["memory_images"],
        "rss_mb": rss,
        "rss_first_mb": rss[0],
        "rss_last_mb": rss[-1],
        "growth_mb": rss[-1] - rss[0],
        "peak_mb": reply["peak"],
        "seconds": reply["seconds"],
        "load_end": loadavg(),
    }


# --------------------------------------------------------------------------- search


def plain_search(conn, config: str, sets: list[str], data_path: str, subset: int, folds: int):
    """The tutorial's search, in a worker process: sklearn's RandomizedSearchCV(n_jobs=1)
    over CNNClassifier, with the candidates (space, n_iter, random_state) and the folds
    (training.folds.cv_splits) `cnn-cifar search` draws from the same config."""
    from sklearn.model_selection import RandomizedSearchCV

    from cnn_cifar.config.loader import load_config
    from cnn_cifar.data.dataset import dataset, resolve_data
    from cnn_cifar.search.space import parse_space
    from cnn_cifar.training.estimator import from_config
    from cnn_cifar.training.folds import cv_splits
    from cnn_cifar.training.runtime import configure_threads

    configure_threads(None)
    cfg = load_config(config, sets)
    data = resolve_data(cfg, data_path, subset)
    start = time.perf_counter()
    ds = dataset(data)
    splits = cv_splits(ds.y_train, folds, cfg.cv.test_size, cfg.cv.random_state)
    search = RandomizedSearchCV(
        from_config(cfg, input_shape=ds.input_shape),
        parse_space(cfg, config),
        n_iter=cfg.search.n_iter,
        cv=splits,
        scoring=cfg.search.scoring,
        random_state=cfg.search.random_state,
        refit=False,
        n_jobs=1,
        error_score="raise",
    )
    search.fit(ds.x_train, ds.y_train)
    conn.send(
        {
            "search_s": time.perf_counter() - start,
            "best_score": float(search.best_score_),
            "best_params": {
                k: (v.item() if hasattr(v, "item") else v) for k, v in search.best_params_.items()
            },
            "n_fits": len(search.cv_results_["params"]) * len(splits),
        }
    )


def _search_sets(b: dict) -> list[str]:
    return [f"search.n_iter={b['n_iter']}", f"search.cv={b['cv']}", f"train.epochs={b['epochs']}"]


def _run_plain_search(args, b: dict) -> dict:
    sets = [*_search_sets(b), "train.precision=float32", "train.steps_per_execution=1"]
    start = time.perf_counter()  # process start and data loading included, as for the CLI
    proc, conn = _spawn(
        plain_search, str(ROOT / "configs" / "search.yaml"), sets, str(args.data), b["subset"], b["cv"]
    )
    try:
        out = _ask(proc, conn)
    except WorkerError as e:
        return {"error": str(e), "wall_s": time.perf_counter() - start}
    finally:
        _stop(proc, conn)
    out["wall_s"] = time.perf_counter() - start
    return out


def _run_cli_search(args, b: dict, extra: list[str]) -> dict:
    from cnn_cifar.search.journal import load_fits

    results = Path(tempfile.mkdtemp(prefix="bench-search-"))
    cmd = [
        str(Path(sys.executable).with_name("cnn-cifar")),
        "search",
        str(ROOT / "configs" / "search.yaml"),
        "--data",
        str(args.data),
        "--subset",
        str(b["subset"]),
        "--results-dir",
        str(results),
    ]
    for s in _search_sets(b) + extra:
        cmd += ["--set", s]
    if args.search_jobs:
        cmd += ["--jobs", str(args.search_jobs)]
    start, epoch0 = time.perf_counter(), time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env())
        wall = time.perf_counter() - start
        best = sorted(results.glob("*/best.json"))
        if proc.returncode != 0 or not best:
            return {"error": _last_line(proc.stderr or proc.stdout), "wall_s": wall, "command": " ".join(cmd)}
        record = json.loads(best[-1].read_text())
        journal = load_fits(best[-1].parent).values()
        tracking = _tracking_cost(best[-1].parent)
    finally:
        shutil.rmtree(results, ignore_errors=True)  # the run folder was only a means
    fits = [_fit_event(fit, epoch0) for fit in journal]
    out = {
        "wall_s": wall,
        "best_score": record["best_score"],
        "best_params": record["best_params"],
        "n_fits": len(fits),
        "fits": sorted(fits, key=lambda f: f["elapsed_s"]),
        "command": " ".join(cmd),
        **tracking,
    }
    failed = [fit for fit in journal if fit["status"] == "failed"]  # pruned fits are not errors
    if failed:  # the search goes on past a failed fit; the bench must not
        out["error"] = f"{len(failed)} of {len(fits)} fits failed: {failed[0].get('error', '?')}"
    return out


def _tracking_cost(run_dir: Path) -> dict:
    """What TensorBoard cost the search: the seconds its run spent writing event files (the
    run's own log line) and their size on disk."""
    import re

    log_text = (run_dir / "log.txt").read_text() if (run_dir / "log.txt").is_file() else ""
    spent = re.search(r"tracking: ([0-9.]+) s in all", log_text)
    files = [f for f in (run_dir / "tensorboard").rglob("*") if f.is_file()]
    return {
        "tracking_s": float(spent.group(1)) if spent else None,
        "tensorboard_bytes": sum(f.stat().st_size for f in files),
        "tensorboard_files": len(files),
    }


def _fit_event(fit: dict, epoch0: float) -> dict:
    """What time to quality needs of a fits/ record: when it ended, seconds after the start."""
    ended = datetime.fromisoformat(fit["finished"]).timestamp() - epoch0
    return {
        "elapsed_s": round(ended, 3),
        "candidate": fit["candidate"],
        "fold": fit["fold"],
        "rung": fit.get("rung"),
        "status": fit["status"],
        "score": fit.get("score"),
        "probe": fit.get("probe"),  # racing's probe: not a fold's score
    }


def time_to_quality(fits: list[dict], folds: int, target: float) -> float | None:
    """Seconds until some candidate had all `folds` scores at the last rung (halving) with
    a mean >= target; None if none did."""
    last_rung = max((f["rung"] or 0 for f in fits), default=0)
    scores: dict[int, dict[int, float]] = {}
    for f in sorted(fits, key=lambda f: f["elapsed_s"]):
        if f["status"] != "ok" or (f["rung"] or 0) != last_rung or f.get("probe"):
            continue
        mine = scores.setdefault(f["candidate"], {})
        mine[f["fold"]] = f["score"]
        if len(mine) == folds and sum(mine.values()) / folds >= target - 1e-9:
            return f["elapsed_s"]
    return None


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def machine() -> str:
    """Architecture, cores, CPU model and whether it computes bfloat16 natively: the figures
    of two machines compare only where these agree (precision auto is float32 without it)."""
    from cnn_cifar.training.runtime import native_bf16

    model = platform.processor() or platform.node()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        names = (line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        model = next(names, model)
    bf16 = "native bfloat16" if native_bf16() else "no native bfloat16"
    return f"{platform.machine()} {os.cpu_count()} cores, {model}, {bf16}"


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_search(args, budget, errors: list) -> dict:
    from cnn_cifar.config.loader import load_config

    b = dict(budget["search"])
    cfg = load_config(ROOT / "configs" / "search.yaml")
    b["test_size"] = cfg.cv.test_size
    default = cfg.search.strategy
    out = {"budget": b, "load_start": loadavg(), "runs": {}}
    jobs = f", --jobs {args.search_jobs}" if args.search_jobs else ""
    plan: list[tuple[str, str, list[str]]] = [
        ("plain", "RandomizedSearchCV, tutorial arithmetic", []),
        ("project", f"cnn-cifar search (default: {default}{jobs})", []),
    ]
    plan += [
        (f"project_{s}", f"cnn-cifar search, strategy {s}{jobs}", [f"search.strategy={s}"])
        for s in args.search_strategies
        if s != default
    ]
    for name, sets in args.search_variant_sets:
        extra = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
        plan.append((f"project_{name}", f"cnn-cifar search, {name}{jobs}", extra))
    for key, label, extra in plan:
        _log(f"search: {label} ... (load {loadavg()})")
        r = _run_plain_search(args, b) if key == "plain" else _run_cli_search(args, b, extra)
        r["label"] = label
        out["runs"][key] = r
        _log(
            f"search: {label}: {fmt(r.get('wall_s'))} s, best {fmt(r.get('best_score'), '.4f')}"
            + (f" ERROR {r['error']}" if r.get("error") else "")
        )
        if r.get("error"):
            errors.append(f"search {label}: {r['error']}")
    plain = out["runs"]["plain"]
    for key, r in out["runs"].items():
        if key != "plain" and "fits" in r and plain.get("best_score") is not None:
            target = plain["best_score"] - TARGETS["search_score_points"] / 100
            r["time_to_quality_s"] = time_to_quality(r["fits"], b["cv"], target)
    if not plain.get("error"):
        plain["time_to_quality_s"] = plain.get("wall_s")  # it answers when it ends
    out["load_end"] = loadavg()
    return out


# --------------------------------------------------------------------------- speedrun


def _project_speedrun(
    x_train, y_train, x_test, y_test, seed: int, epochs: float | None, side: str = "project", sets=None
) -> dict:
    """configs/speedrun.yaml trained once through the estimator, as `cnn-cifar evaluate`
    trains it, with a variant's `sets` (config paths, threads, backend); test accuracy with
    its TTA (flip_translate) and without."""
    sets = _start_framework(sets or {})
    from cnn_cifar.config.loader import load_config
    from cnn_cifar.training.estimator import from_config
    from cnn_cifar.training.runtime import backend

    overrides = [f"train.seed={seed}"] + [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    if epochs is not None:  # the triangular peak stays at 23% of the steps
        overrides += [f"train.epochs={math.ceil(epochs)}", f"train.optimizer.warmup_epochs={0.23 * epochs}"]
    cfg = load_config(ROOT / "configs" / "speedrun.yaml", overrides)
    est, timer = from_config(cfg), _epoch_timer()
    wall, cpu = time.perf_counter(), time.process_time()
    est.fit(x_train, y_train, callbacks=[timer])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tta = est.tta_
    accuracy = {}
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


def keras_device() -> str:
    """Where Keras computes in this process: the GPU's name, else "cpu"."""
    import keras

    name = keras.backend.backend()
    if name == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    if name == "jax":
        import jax

        device = jax.devices()[0]
        return device.device_kind if device.platform == "gpu" else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "cpu"


def _speedrun_worker(conn, side: str, data_path: str, subset, seed: int, epochs, sets=None, device="cpu"):
    """One training of one side, in a process of its own (torch and TensorFlow never share
    one, and each starts cold as a user's run does)."""
    import airbench_reference

    arrays = airbench_reference.load(data_path, subset)
    if side == "reference":
        with contextlib.redirect_stdout(sys.stderr):
            conn.send(airbench_reference.train(*arrays, seed=seed, epochs=epochs, device=device))
    else:
        conn.send(_project_speedrun(*arrays, seed=seed, epochs=epochs, side=side, sets=sets))


def _steady(r: dict) -> tuple[float, float]:
    """(images/s, images per CPU-second) over the epochs after the first (tracing, warm-up),
    full epochs only: a fractional last epoch (airbench's 9.9) is left out."""
    n = len(r["epoch_s"]) - (1 if r["epochs"] != math.ceil(r["epochs"]) else 0)
    wall, cpu = r["epoch_s"][1:n] or r["epoch_s"], r["epoch_cpu_s"][1:n] or r["epoch_cpu_s"]
    k = r["images_per_epoch"]
    return k / median(wall), k / median(cpu)


def _speedrun_side(runs: list[dict]) -> dict:
    acc = [r["test_accuracy"] for r in runs]
    tta = [r["test_accuracy_tta"] for r in runs]
    steady = [_steady(r) for r in runs]
    sd = statistics.stdev if len(runs) > 1 else (lambda xs: float("nan"))
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
        "steady_images_per_s": median([s[0] for s in steady]),
        "steady_images_per_cpu_s": median([s[1] for s in steady]),
    }


def run_speedrun(args, budget, errors: list) -> dict | None:
    """airbench94 itself (scripts/airbench_reference.py) against configs/speedrun.yaml: the same
    data, each side's own recipe (airbench 9.9 epochs, the port 10) unless
    --speedrun-epochs, alternated seed by seed, one fresh process per training."""
    import airbench_reference

    if not airbench_reference.available():
        print(f"speedrun: skipped: {airbench_reference.EXTRA}", file=sys.stderr)
        return None
    b = budget["speedrun"]
    epochs = b["epochs"] if args.speedrun_epochs is None else args.speedrun_epochs
    seeds = b["seeds"] if args.seeds is None else args.seeds
    variants = {"project": {}, **{f"project_{name}": sets for name, sets in args.variant_sets}}
    out = {"subset": b["subset"], "epochs": epochs, "device": args.device, "variants": variants}
    out.update({"load_start": loadavg(), "runs": []})
    sides = ["reference", *variants]
    for i, seed in enumerate(seeds):
        for side in sides[:: 1 if i % 2 == 0 else -1]:
            _log(f"speedrun seed {seed} {side} ... (load {loadavg()})")
            sets = variants.get(side)
            task = (side, str(args.data), b["subset"], seed, epochs, sets, args.device)
            proc, conn = _spawn(_speedrun_worker, *task)
            try:
                r = _ask(proc, conn)
            except WorkerError as e:
                errors.append(f"speedrun {side} seed {seed}: {e}")
                continue
            finally:
                _stop(proc, conn)
            out["runs"].append(r)
            figures = {k: v for k, v in r.items() if "epoch_" not in k}
            _log(f"speedrun seed {seed} {side}: {json.dumps(figures)}")
    out.update(speedrun_summary(out["runs"]))
    out["load_end"] = loadavg()
    return out


_RATIOS = ("images_per_s", "images_per_cpu_s", "steady_images_per_s", "steady_images_per_cpu_s", "train_s")


def speedrun_summary(runs: list[dict]) -> dict:
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


# --------------------------------------------------------------------------- main


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("keras", "tensorflow", "numpy", "scikit-learn", "torch", "jax"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def options(argv=None) -> argparse.Namespace:
    """The command line, checked: parts, models, search strategies and the budget resolved
    (args.parts, args.models, args.search_strategies, args.budget, args.out)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only",
        help=f"comma-separated parts to run: {', '.join(PARTS)} "
        f"(default: {', '.join(DEFAULT_PARTS)}; --smoke: all)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller slices, fewer rounds, a smaller search")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="every part on a tiny slice in under two minutes, to prove the bench runs (CI); "
        "no verdicts, the JSON goes to a temporary folder as bench-smoke-*.json",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("CNN_CIFAR_DATA", DEFAULT_DATA)),
        help="CIFAR-10 source (default: $CNN_CIFAR_DATA or ../shared/data/cifar10-jpeg.tar.xz)",
    )
    p.add_argument("--models", default=",".join(MODELS), help="throughput models (config names)")
    p.add_argument("--rounds", type=int, help="alternated rounds per model (default 4, quick 2, smoke 1)")
    p.add_argument("--epochs", type=int, help="epochs per timed fit; the first is not timed (default 3)")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VAL,...",
        help="also time a project variant, e.g. f32:train.precision=float32 or t1:threads=1 "
        "(keys: config paths, threads, inter_threads, backend); speedrun: also train the port so",
    )
    p.add_argument(
        "--search-strategies",
        default="",
        metavar="S,...",
        help="also time these search strategies (search.strategy's values) besides the default",
    )
    p.add_argument(
        "--search-variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VAL,...",
        help="also time cnn-cifar search with these --set options, e.g. noprune:search.prune.rule=none",
    )
    p.add_argument(
        "--search-jobs",
        type=int,
        default=2,
        help="--jobs for cnn-cifar search (default 2: one fit per core; 0: leave it out)",
    )
    p.add_argument(
        "--seeds",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        metavar="S,...",
        help="speedrun: the seeds each side trains with (default 0,1; quick and smoke 0)",
    )
    p.add_argument(
        "--speedrun-epochs",
        type=float,
        metavar="E",
        help="speedrun: epochs for both sides (default: airbench 9.9, the port its config's 10)",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="speedrun: where airbench94 trains (cuda: float16, as published); the port trains "
        "where its Keras backend puts it (KERAS_BACKEND; TensorFlow and torch take a visible GPU)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the JSON (default: results/, with --smoke a new temporary folder)",
    )
    args = p.parse_args(argv)
    only = args.only or ",".join(PARTS if args.smoke else DEFAULT_PARTS)
    args.parts = [s.strip() for s in only.split(",") if s.strip()]
    bad = sorted(set(args.parts) - set(PARTS))
    if bad:
        p.error(f"--only: unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    args.models = [m for m in args.models.split(",") if m]
    missing = [m for m in args.models if not (ROOT / "configs" / f"{m}.yaml").is_file()]
    if missing:
        p.error(f"--models: no configs/{missing[0]}.yaml")
    from cnn_cifar.config.schema import Search

    strategies = typing.get_args(Search.model_fields["strategy"].annotation)
    args.search_strategies = [x for x in args.search_strategies.split(",") if x]
    bad = sorted(set(args.search_strategies) - set(strategies))
    if bad:
        p.error(f"--search-strategies: unknown {', '.join(bad)}; choose from {', '.join(strategies)}")
    if args.device == "cuda" and "speedrun" in args.parts:
        import airbench_reference

        if airbench_reference.available() and not airbench_reference.cuda_available():
            p.error(airbench_reference.NO_CUDA)
    try:
        args.variant_sets = [parse_variant(v) for v in args.variant]
        args.search_variant_sets = [parse_variant(v) for v in args.search_variant]
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    args.budget = json.loads(
        json.dumps(BUDGETS["smoke" if args.smoke else "quick" if args.quick else "default"])
    )
    if args.rounds:
        args.budget["rounds"] = args.rounds
    if args.epochs:
        args.budget["epochs"] = max(2, args.epochs)
    return args


def output_folder(args) -> Path:
    """--out, else results/, else for --smoke a new temporary folder (smoke figures must not
    sit among real ones)."""
    if args.out is not None:
        return args.out
    return Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else ROOT / "results"


def main(argv=None) -> int:
    args = options(argv)
    budget = args.budget
    _quiet_tf()
    from cnn_cifar.data.sources import DataError, detect_source, load_dataset

    try:  # decode (or read from the cache) once here, before the workers all want it
        load_dataset(detect_source(str(args.data)), str(args.data))
    except DataError as e:
        print(f"bench.py: --data: {e}", file=sys.stderr)
        return 2
    from cnn_cifar.core.files import one_line, write_json
    from cnn_cifar.training.runtime import backend

    started = datetime.now()
    errors: list[str] = []
    result = {
        "started": started.isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "machine": machine(),
        "versions": _versions(),
        "backend": backend(),
        "load_start": loadavg(),
        "quick": args.quick,
        "smoke": args.smoke,
        "budget": budget,
        "errors": errors,
    }
    wall = time.perf_counter()
    parts = {"throughput": run_throughput, "memory": run_memory, "search": run_search}
    for part, run in {**parts, "speedrun": run_speedrun}.items():
        if part not in args.parts:
            continue
        try:
            figures = run(args, budget, errors)
        except Exception as e:
            traceback.print_exc()
            errors.append(f"{part}: {one_line(e)}")
            continue
        if figures is not None:
            result[part] = figures
    result["wall_s"] = time.perf_counter() - wall
    result["load_end"] = loadavg()
    text = (
        table(result) + f"\n\ntotal {result['wall_s'] / 60:.1f} min; load average at end {result['load_end']}"
    )
    print(text)
    out = output_folder(args)
    out.mkdir(parents=True, exist_ok=True)
    path = result_path(out, started, args.smoke)
    write_json(path, result, indent=1)
    print(f"wrote {path}")
    if errors:
        print(f"bench.py: {len(errors)} part(s) failed; first: {errors[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

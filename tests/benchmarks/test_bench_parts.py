"""The benchmark's pure parts: FLOP counting, GEMM timing, slices, the tutorial's model,
medians, time to quality from a search's journal, and how a worker's error reaches the
parent. (The timed parts need the real data set and minutes: `.ci/run` runs
`python -m benchmarks --smoke` on it.)"""

import multiprocessing as mp
import types

import numpy as np
import pytest
from conftest import REPO

from benchmarks.measure import gemm_gflops, median, training_flops_per_image
from benchmarks.search import time_to_quality
from benchmarks.throughput import tutorial_model
from benchmarks.workers import WorkerError, ask, child, load_slice
from cnn_cifar.config.loader import load_config

ROOT = REPO


def test_training_flops_of_the_tutorial_models():
    final = load_config(ROOT / "configs" / "final.yaml").model
    # conv1 32x32x32x(3*3*3) + conv2 16x16x32x(9*9*32) + hidden 512x750 + output 750x10
    macs = 32 * 32 * 32 * 27 + 16 * 16 * 32 * 9 * 9 * 32 + 512 * 750 + 750 * 10
    assert training_flops_per_image(final) == 6 * macs
    assert (
        round(training_flops_per_image(final) / 1e6) == 135
    )  # 135 MFLOPs a training image: the figure the bench's peak ratio rests on
    hidden = load_config(ROOT / "configs" / "two_conv_hidden.yaml").model
    assert training_flops_per_image(hidden) == 6 * (
        32 * 32 * 32 * 27 + 16 * 16 * 32 * 288 + 2048 * 400 + 4000
    )


def test_gemm_rate_is_positive():
    assert gemm_gflops(n=64, repeats=2) > 0


def test_slices_are_the_packages_subset_draw(tiny_npz):
    from cnn_cifar.data.sources import SUBSET_SEED, load_dataset

    x, y, n_classes = load_slice(str(tiny_npz), 30)
    assert n_classes == 3 and x.shape == (30, 8, 8, 3)
    assert np.bincount(y).tolist() == [10, 10, 10]  # stratified
    same = load_dataset("npz", str(tiny_npz), subset=30, seed=SUBSET_SEED)  # = --subset 30
    assert (same.x_train == x).all() and (same.y_train == y).all()


def test_tutorial_model_is_built_from_the_layer_registry():
    from cnn_cifar.config import shapes

    layers = load_config(ROOT / "configs" / "final.yaml").model.layers
    model = tutorial_model(layers, (32, 32, 3), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    first_dense = next(i for i, layer in enumerate(layers) if layer.type == "dense")
    assert kinds[first_dense] == "Flatten"  # implied before dense
    assert kinds[-1] == "Dense" and model.layers[-1].units == 10
    assert model.layers[-1].activation.__name__ == "softmax"
    spec = load_config(ROOT / "configs" / "final.yaml").model
    assert model.count_params() == shapes.totals(shapes.infer(spec, (32, 32, 3), 10))[0]


def test_median_ignores_missing():
    assert median([3.0, None, 1.0, float("nan"), 2.0]) == 2.0
    assert np.isnan(median([]))


def test_time_to_quality_replays_the_journal():
    def fit(t, c, f, score, rung=None, status="ok"):
        return {"elapsed_s": t, "candidate": c, "fold": f, "rung": rung, "status": status, "score": score}

    fits = [
        fit(10, 0, 0, 0.50),
        fit(11, 1, 0, 0.60),
        fit(20, 1, 1, 0.58),
        fit(21, 0, 1, 0.70),
        fit(30, 2, 0, 0.0, status="failed"),
    ]
    assert time_to_quality(fits, 2, 0.59) == 20  # c1 complete at 20 s, mean 0.59
    assert time_to_quality(fits, 2, 0.595) == 21  # c0 complete at 21 s, mean 0.60
    assert time_to_quality(fits, 2, 0.61) is None
    # halving: only the last rung's fits count, however good the early ones
    rungs = [fit(5, 0, 0, 0.9, 0), fit(6, 0, 1, 0.9, 0), fit(40, 0, 0, 0.6, 1), fit(41, 0, 1, 0.6, 1)]
    assert time_to_quality(rungs, 2, 0.6) == 41


def test_a_worker_error_reaches_the_parent():
    def task(conn):
        raise ValueError("boom")

    parent, child_end = mp.Pipe()
    child(child_end, task)
    proc = types.SimpleNamespace(join=lambda timeout=None: None, exitcode=1)
    with pytest.raises(WorkerError, match="ValueError: boom"):  # though it ended first
        ask(proc, parent, {"epochs": 2})
    with pytest.raises(WorkerError, match="died"):  # nothing more: EOF
        ask(proc, parent)

"""scripts/bench.py's pure parts: FLOP counting, GEMM timing, slices, variants, the table.
(The timed parts need the real data set and minutes; run the script itself for those.)"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cnn_cifar.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_flops_of_the_tutorial_models(bench):
    final = load_config(ROOT / "configs" / "final.yaml").model.layers
    # conv1 32x32x32x(3*3*3) + conv2 16x16x32x(9*9*32) + hidden 512x750 + output 750x10
    macs = 32 * 32 * 32 * 27 + 16 * 16 * 32 * 9 * 9 * 32 + 512 * 750 + 750 * 10
    assert bench.training_flops_per_image(final) == 6 * macs
    assert round(bench.training_flops_per_image(final) / 1e6) == 135          # the figure
    hidden = load_config(ROOT / "configs" / "two_conv_hidden.yaml").model.layers
    assert bench.training_flops_per_image(hidden) == 6 * (32 * 32 * 32 * 27 + 16 * 16 * 32 * 288
                                                          + 2048 * 400 + 4000)


def test_gemm_rate_is_positive(bench):
    assert bench.gemm_gflops(n=64, repeats=2) > 0


def test_stratified_slice_keeps_class_proportions(bench):
    y = np.repeat(np.arange(10), 100)
    idx = bench.stratified_slice(y, 200)
    assert len(idx) == len(set(idx)) == 200
    assert np.bincount(y[idx]).tolist() == [20] * 10
    assert (bench.stratified_slice(y, 200) == idx).all()                       # seeded
    assert sorted(bench.stratified_slice(y, 5000)) == list(range(1000))         # n >= len(y)


def test_parse_variant(bench):
    assert bench.parse_variant("f32:train.precision=float32,train.steps_per_execution=1") == \
        ("f32", {"train.precision": "float32", "train.steps_per_execution": 1})
    assert bench.parse_variant("t1:threads=1") == ("t1", {"threads": 1})
    with pytest.raises(Exception, match="expected"):
        bench.parse_variant("bad:train.precision")


def test_median_ignores_missing(bench):
    assert bench.median([3.0, None, 1.0, float("nan"), 2.0]) == 2.0
    assert np.isnan(bench.median([]))


def _result():
    sides = {"baseline": {"images_per_s": 400.0, "min": 380.0, "max": 420.0, "ratio": None,
                          "gflops": 54.0, "gemm_fraction": 0.34},
             "project": {"images_per_s": 900.0, "min": 850.0, "max": 950.0, "ratio": 2.25,
                         "gflops": 121.6, "gemm_fraction": 0.76}}
    return {"started": "2025-01-01T00:00:00", "machine": "x86_64 2 cores", "backend": "tensorflow",
            "versions": {"keras": "3", "tensorflow": "2"}, "load_start": "1.0 1.0 1.0",
            "throughput": {"epochs": 3, "rounds": 3, "gemm_gflops": 160.0, "gemm_samples": [150.0, 160.0, 170.0],
                           "load_end": "1.0 1.0 1.0",
                           "models": {"final": {"n_fit": 4000, "mflop_per_image": 135.1,
                                                "project_settings": "batch 32", "sides": sides}}},
            "memory": {"model": "two_conv", "fits": 20, "images": 1000, "rss_first_mb": 800.0,
                       "rss_last_mb": 870.0, "growth_mb": 70.0, "peak_mb": 880.0, "seconds": 60.0},
            "search": {"budget": {"subset": 5000, "n_iter": 10, "cv": 2, "test_size": 0.2, "epochs": 3},
                       "load_end": "1.0 1.0 1.0",
                       "runs": {"plain": {"label": "RandomizedSearchCV", "wall_s": 400.0, "n_fits": 20,
                                          "best_score": 0.50},
                                "project": {"label": "cnn-cifar search", "wall_s": 150.0, "n_fits": 30,
                                            "best_score": 0.495, "time_to_quality_s": 90.0},
                                "slow": {"label": "cnn-cifar search, random", "wall_s": 300.0, "n_fits": 20,
                                         "best_score": 0.50, "time_to_quality_s": 120.0},
                                "broken": {"label": "cnn-cifar search, halving", "wall_s": 3.0,
                                           "error": "SearchError: boom"}}}}


def test_table_reports_each_target(bench):
    text = bench.table(_result())
    assert "ratio >= 2.0: MET; GEMM >= 60%: MET" in text
    assert "growth +70 MB (target < 100 MB: MET)" in text
    lines = text.splitlines()
    project = next(line for line in lines if line.startswith("cnn-cifar search  "))
    assert project.split()[2:5] == ["150", "0.38", "90"]                   # wall, of plain, to quality
    assert project.endswith("within 1 pt in <= 1/4 time: MET")             # 90/400 s
    slow = next(line for line in lines if line.startswith("cnn-cifar search, random"))
    assert slow.endswith("within 1 pt in <= 1/4 time: not met")            # 120/400 s
    assert "ERROR: SearchError: boom" in text
    assert "n_iter 10, 2 folds" in text
    json.dumps(_result())                                          # what main() writes


def test_time_to_quality_replays_the_journal(bench):
    def fit(t, c, f, score, rung=None, status="ok"):
        return {"elapsed_s": t, "candidate": c, "fold": f, "rung": rung, "status": status, "score": score}
    fits = [fit(10, 0, 0, 0.50), fit(11, 1, 0, 0.60), fit(20, 1, 1, 0.58), fit(21, 0, 1, 0.70),
            fit(30, 2, 0, 0.0, status="failed")]
    assert bench.time_to_quality(fits, 2, 0.59) == 20           # c1 complete at 20 s, mean 0.59
    assert bench.time_to_quality(fits, 2, 0.595) == 21          # c0 complete at 21 s, mean 0.60
    assert bench.time_to_quality(fits, 2, 0.61) is None
    # halving: only the last rung's fits count, however good the early ones
    rungs = [fit(5, 0, 0, 0.9, 0), fit(6, 0, 1, 0.9, 0), fit(40, 0, 0, 0.6, 1), fit(41, 0, 1, 0.6, 1)]
    assert bench.time_to_quality(rungs, 2, 0.6) == 41


def test_unknown_part_is_an_error(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "speed"])
    assert "unknown part" in capsys.readouterr().err

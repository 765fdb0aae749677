"""The benchmark's report: the table with each target's verdict (none in a smoke run), and
the speedrun's summary of the reference against its port."""

import json
import math

import numpy as np
import pytest

from benchmarks.cli import options
from benchmarks.speedrun import speedrun_summary, steady
from benchmarks.tables import table
from cnn_cifar.core.vocabulary import DATA_ENV


def _result():
    sides = {
        "baseline": {
            "images_per_s": 400.0,
            "min": 380.0,
            "max": 420.0,
            "ratio": None,
            "gflops": 54.0,
            "precision": "float32",
            "peak_fraction": 0.12,
        },
        "project": {
            "images_per_s": 900.0,
            "min": 850.0,
            "max": 950.0,
            "ratio": 2.25,
            "cpu_ratio": 1.9,
            "gflops": 121.6,
            "precision": "bfloat16",
            "peak_fraction": 0.61,
        },
    }
    return {
        "started": "2025-01-01T00:00:00",
        "machine": "x86_64 2 cores",
        "backend": "tensorflow",
        "versions": {"keras": "3", "tensorflow": "2"},
        "load_start": "1.0 1.0 1.0",
        "throughput": {
            "epochs": 3,
            "rounds": 3,
            "gemm_gflops": 160.0,
            "gemm_samples": [150.0, 160.0, 170.0],
            "peak_gflops": {"float32": 450.0, "bfloat16": 200.0},
            "peak_samples": {"float32": [440.0, 450.0], "bfloat16": [190.0, 200.0]},
            "load_end": "1.0 1.0 1.0",
            "models": {
                "final": {
                    "n_fit": 4000,
                    "mflop_per_image": 135.1,
                    "project_settings": "batch 32",
                    "sides": sides,
                }
            },
        },
        "memory": {
            "model": "two_conv",
            "fits": 20,
            "images": 1000,
            "rss_first_mb": 800.0,
            "rss_last_mb": 870.0,
            "growth_mb": 70.0,
            "peak_mb": 880.0,
            "seconds": 60.0,
        },
        "search": {
            "budget": {"subset": 5000, "n_iter": 10, "cv": 2, "test_size": 0.2, "epochs": 3},
            "load_end": "1.0 1.0 1.0",
            "runs": {
                "plain": {"label": "RandomizedSearchCV", "wall_s": 400.0, "n_fits": 20, "best_score": 0.50},
                "project": {
                    "label": "cnn-cifar search",
                    "wall_s": 150.0,
                    "n_fits": 30,
                    "best_score": 0.495,
                    "time_to_quality_s": 30.0,
                    "tracking_s": 1.5,
                    "tensorboard_bytes": 40960,
                    "tensorboard_files": 30,
                },
                "slow": {
                    "label": "cnn-cifar search, random",
                    "wall_s": 300.0,
                    "n_fits": 20,
                    "best_score": 0.50,
                    "time_to_quality_s": 120.0,
                },
                "broken": {"label": "cnn-cifar search, halving", "wall_s": 3.0, "error": "SearchError: boom"},
            },
        },
    }


def test_table_reports_each_target():
    text = table(_result())
    assert "wall ratio >= 2.0x: MET; per CPU-s >= 2.0x: not met; of peak >= 60%: MET" in text
    assert "61% bf16" in text and "12% f32" in text
    assert "float32 450 (median 445), bfloat16 200 (median 195)" in text
    assert "growth +70 MB (target < 100 MB: MET)" in text
    lines = text.splitlines()
    project = next(line for line in lines if line.startswith("cnn-cifar search  "))
    assert project.split()[2:5] == ["150", "0.38", "30"]  # wall, of plain, to quality
    assert project.endswith("within 1 pt in <= 0.10 of the time: MET")  # 30/400 s
    slow = next(line for line in lines if line.startswith("cnn-cifar search, random"))
    assert slow.endswith("within 1 pt in <= 0.10 of the time: not met")  # 120/400 s
    assert "ERROR: SearchError: boom" in text
    assert "TensorBoard wrote 30 files, 40 KB, in 1.50 s = 1.00% of its wall time (target < 3%: MET)" in text
    assert "n_iter 10, 2 folds" in text
    json.dumps(_result())  # what main() writes


def test_table_in_smoke_mode_gives_no_verdicts():
    result = _result()
    result["smoke"] = True
    text = table(result)
    assert "SMOKE RUN" in text
    assert "MET" not in text  # neither MET nor "not met"
    assert "wall ratio >= 2.0x: smoke; per CPU-s >= 2.0x: smoke; of peak >= 60%: smoke" in text
    assert "(target < 100 MB: smoke)" in text
    assert "within 1 pt in <= 0.10 of the time: smoke" in text


def _training(side, seed, tta, plain, wall, cpu, epochs=10, per_epoch=50000):
    n = math.ceil(epochs)
    return {
        "side": side,
        "seed": seed,
        "epochs": epochs,
        "images_trained": int(per_epoch * epochs),
        "train_s": sum(wall),
        "train_cpu_s": sum(cpu),
        "epoch_s": wall[:n],
        "epoch_cpu_s": cpu[:n],
        "images_per_epoch": per_epoch,
        "test_accuracy_tta": tta,
        "test_accuracy": plain,
    }


def test_steady_rate_leaves_out_the_first_and_a_fractional_last_epoch():
    # airbench's 9.9 epochs: the tenth is 90% of an epoch and would read as a fast one
    r = _training("reference", 0, 0.9, 0.89, [9.0] + [2.0] * 8 + [1.8], [18.0] + [4.0] * 8 + [3.6], 9.9, 1000)
    assert steady(r) == (500.0, 250.0)
    whole = _training("project", 0, 0.9, 0.89, [9.0, 2.0, 4.0, 4.0], [18.0, 4.0, 4.0, 4.0], 4, 1000)
    assert steady(whole) == (250.0, 250.0)  # median of epochs 2-4


def test_speedrun_summary_compares_the_port_with_the_reference():
    runs = [
        _training("reference", 0, 0.9070, 0.8969, [100.0] * 10, [200.0] * 10),
        _training("project", 0, 0.9050, 0.8960, [200.0] * 10, [250.0] * 10),
        _training("project", 1, 0.9030, 0.8940, [200.0] * 10, [250.0] * 10),
        _training("reference", 1, 0.9050, 0.8950, [100.0] * 10, [200.0] * 10),
    ]
    summary = speedrun_summary(runs)
    assert list(summary["sides"]) == ["reference", "project"]
    ref, port = summary["sides"]["reference"], summary["sides"]["project"]
    assert ref["seeds"] == [0, 1] and port["seeds"] == [0, 1]
    assert ref["accuracy_tta_mean"] == pytest.approx(0.9060)
    assert ref["accuracy_tta_sd"] == pytest.approx(np.std([0.9070, 0.9050], ddof=1))
    assert ref["images_per_s"] == pytest.approx(500.0) and port["images_per_cpu_s"] == pytest.approx(200.0)
    assert port["ratios"]["images_per_cpu_s"] == pytest.approx(0.8)
    assert port["ratios"]["train_s"] == pytest.approx(2.0)
    assert port["accuracy_tta_difference"] == pytest.approx(-0.0020)
    assert "ratios" not in ref
    text = table({**_result(), "speedrun": {"subset": None, "load_end": "0", **summary}})
    assert "project / reference: img/cpu-s 0.80x" in text and "TTA accuracy -0.20 points" in text
    assert "img/cpu-s >= 1.0x: not met; |accuracy difference| <= 0.3 points: MET" in text
    assert "90.60 +/- 0.14" in text


def test_speedrun_summary_of_one_side_has_no_ratios():
    summary = speedrun_summary([_training("project", 0, 0.9, 0.89, [2.0] * 10, [4.0] * 10)])
    assert list(summary["sides"]) == ["project"] and "ratios" not in summary["sides"]["project"]
    assert math.isnan(summary["sides"]["project"]["accuracy_sd"])  # one seed: no spread


def test_each_speedrun_variant_is_compared_with_the_reference(monkeypatch):
    runs = [
        _training("project_spe5", 0, 0.90, 0.89, [300.0] * 10, [250.0] * 10),
        _training("project", 0, 0.90, 0.89, [200.0] * 10, [250.0] * 10),
        _training("reference", 0, 0.91, 0.90, [100.0] * 10, [200.0] * 10),
    ]
    sides = speedrun_summary(runs)["sides"]
    assert list(sides) == ["reference", "project", "project_spe5"]
    assert sides["project_spe5"]["ratios"]["train_s"] == pytest.approx(3.0)
    monkeypatch.setenv(DATA_ENV, "cifar10.npz")  # the data is not read: only the options
    args = options(["--only", "speedrun", "--variant", "spe5:train.steps_per_execution=5"])
    assert args.variant_sets == [("spe5", {"train.steps_per_execution": 5})]

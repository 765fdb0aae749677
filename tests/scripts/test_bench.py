"""scripts/bench.py's pure parts: FLOP counting, GEMM timing, slices, variants, the table,
the command line (--smoke) and how a failed part fails the run. (The timed parts need the
real data set and minutes: `.ci/run` runs `scripts/bench.py --smoke` on it.)"""

import dis
import importlib.util
import json
import types

import numpy as np
import pytest
from conftest import REPO

from cnn_cifar.config.loader import load_config

ROOT = REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_flops_of_the_tutorial_models(bench):
    final = load_config(ROOT / "configs" / "final.yaml").model
    # conv1 32x32x32x(3*3*3) + conv2 16x16x32x(9*9*32) + hidden 512x750 + output 750x10
    macs = 32 * 32 * 32 * 27 + 16 * 16 * 32 * 9 * 9 * 32 + 512 * 750 + 750 * 10
    assert bench.training_flops_per_image(final) == 6 * macs
    assert (
        round(bench.training_flops_per_image(final) / 1e6) == 135
    )  # 135 MFLOPs a training image: the figure the bench's peak ratio rests on
    hidden = load_config(ROOT / "configs" / "two_conv_hidden.yaml").model
    assert bench.training_flops_per_image(hidden) == 6 * (
        32 * 32 * 32 * 27 + 16 * 16 * 32 * 288 + 2048 * 400 + 4000
    )


def test_gemm_rate_is_positive(bench):
    assert bench.gemm_gflops(n=64, repeats=2) > 0


def test_slices_are_the_packages_subset_draw(bench, tiny_npz):
    from cnn_cifar.data.sources import SUBSET_SEED, load_dataset

    x, y, n_classes = bench._load_slice(str(tiny_npz), 30)
    assert n_classes == 3 and x.shape == (30, 8, 8, 3)
    assert np.bincount(y).tolist() == [10, 10, 10]  # stratified
    same = load_dataset("npz", str(tiny_npz), subset=30, seed=SUBSET_SEED)  # = --subset 30
    assert (same.x_train == x).all() and (same.y_train == y).all()


def test_tutorial_model_is_built_from_the_layer_registry(bench):
    from cnn_cifar.config import shapes

    layers = load_config(ROOT / "configs" / "final.yaml").model.layers
    model = bench.tutorial_model(layers, (32, 32, 3), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    first_dense = next(i for i, layer in enumerate(layers) if layer.type == "dense")
    assert kinds[first_dense] == "Flatten"  # implied before dense
    assert kinds[-1] == "Dense" and model.layers[-1].units == 10
    assert model.layers[-1].activation.__name__ == "softmax"
    spec = load_config(ROOT / "configs" / "final.yaml").model
    assert model.count_params() == shapes.totals(shapes.infer(spec, (32, 32, 3), 10))[0]


def test_parse_variant(bench):
    assert bench.parse_variant("f32:train.precision=float32,train.steps_per_execution=1") == (
        "f32",
        {"train.precision": "float32", "train.steps_per_execution": 1},
    )
    assert bench.parse_variant("t1:threads=1") == ("t1", {"threads": 1})
    with pytest.raises(Exception, match="expected"):
        bench.parse_variant("bad:train.precision")


def test_median_ignores_missing(bench):
    assert bench.median([3.0, None, 1.0, float("nan"), 2.0]) == 2.0
    assert np.isnan(bench.median([]))


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


def test_table_reports_each_target(bench):
    text = bench.table(_result())
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


def test_time_to_quality_replays_the_journal(bench):
    def fit(t, c, f, score, rung=None, status="ok"):
        return {"elapsed_s": t, "candidate": c, "fold": f, "rung": rung, "status": status, "score": score}

    fits = [
        fit(10, 0, 0, 0.50),
        fit(11, 1, 0, 0.60),
        fit(20, 1, 1, 0.58),
        fit(21, 0, 1, 0.70),
        fit(30, 2, 0, 0.0, status="failed"),
    ]
    assert bench.time_to_quality(fits, 2, 0.59) == 20  # c1 complete at 20 s, mean 0.59
    assert bench.time_to_quality(fits, 2, 0.595) == 21  # c0 complete at 21 s, mean 0.60
    assert bench.time_to_quality(fits, 2, 0.61) is None
    # halving: only the last rung's fits count, however good the early ones
    rungs = [fit(5, 0, 0, 0.9, 0), fit(6, 0, 1, 0.9, 0), fit(40, 0, 0, 0.6, 1), fit(41, 0, 1, 0.6, 1)]
    assert bench.time_to_quality(rungs, 2, 0.6) == 41


def test_unknown_part_is_an_error(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "speed"])
    assert "unknown part" in capsys.readouterr().err


def test_table_in_smoke_mode_gives_no_verdicts(bench):
    result = _result()
    result["smoke"] = True
    text = bench.table(result)
    assert "SMOKE RUN" in text
    assert "MET" not in text  # neither MET nor "not met"
    assert "wall ratio >= 2.0x: smoke; per CPU-s >= 2.0x: smoke; of peak >= 60%: smoke" in text
    assert "(target < 100 MB: smoke)" in text
    assert "within 1 pt in <= 0.10 of the time: smoke" in text


def test_smoke_options(bench):
    args = bench.options(["--smoke"])
    assert args.parts == list(bench.PARTS)  # every part
    assert args.budget == bench.BUDGETS["smoke"]
    assert args.budget["rounds"] == 1 and args.budget["epochs"] == 2
    assert args.budget["search"]["n_iter"] == 3 and args.budget["search"]["cv"] == 2
    assert max(args.budget["slice"].values()) <= 500
    out = bench.output_folder(args)
    assert out != ROOT / "results" and "bench-smoke-" in out.name  # a temporary folder
    out.rmdir()
    assert bench.options([]).budget == bench.BUDGETS["default"]
    assert bench.output_folder(bench.options([])) == ROOT / "results"
    assert bench.options(["--smoke", "--rounds", "2"]).budget["rounds"] == 2


def test_smoke_result_file_cannot_pass_for_a_benchmark(bench, tmp_path):
    from datetime import datetime

    when = datetime(2025, 1, 2, 3, 4, 5)
    assert bench.result_path(tmp_path, when, smoke=True).name == "bench-smoke-2025-01-02_03-04-05.json"
    assert bench.result_path(tmp_path, when, smoke=False).name == "bench-2025-01-02_03-04-05.json"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--smoke", "--quick"], "not allowed with"),
        (["--search-strategies", "racing,fastest"], "unknown fastest"),
        (["--models", "nonesuch"], "no configs/nonesuch.yaml"),
        (["--variant", "bad:train.precision"], "expected name:key=value"),
    ],
)
def test_bad_options_are_errors(bench, capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.options(argv)
    assert message in capsys.readouterr().err


def _stub_parts(bench, monkeypatch, throughput):
    monkeypatch.setattr(bench, "run_throughput", throughput)
    monkeypatch.setattr(bench, "run_memory", lambda args, budget, errors: None)
    monkeypatch.setattr(bench, "run_search", lambda args, budget, errors: None)


@pytest.mark.parametrize("failure", ["reported", "raised"])
def test_a_failed_part_fails_the_run(bench, monkeypatch, tmp_path, tiny_npz, capsys, failure):
    def throughput(args, budget, errors):
        if failure == "raised":
            raise NameError("name 'args' is not defined")
        errors.append("throughput final baseline: the worker died (exit code 1)")

    _stub_parts(bench, monkeypatch, throughput)
    assert bench.main(["--smoke", "--data", str(tiny_npz), "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ERRORS (1)" in out
    written = list(tmp_path.glob("bench-smoke-*.json"))
    assert len(written) == 1 and len(json.loads(written[0].read_text())["errors"]) == 1


def test_a_run_without_errors_exits_0(bench, monkeypatch, tmp_path, tiny_npz):
    _stub_parts(bench, monkeypatch, lambda args, budget, errors: None)
    assert bench.main(["--smoke", "--data", str(tiny_npz), "--out", str(tmp_path)]) == 0


def test_a_worker_error_reaches_the_parent(bench):
    import multiprocessing as mp

    def task(conn):
        raise ValueError("boom")

    parent, child = mp.Pipe()
    bench._child(child, task)
    proc = types.SimpleNamespace(join=lambda timeout=None: None, exitcode=1)
    with pytest.raises(bench.WorkerError, match="ValueError: boom"):  # though it ended first
        bench._ask(proc, parent, {"epochs": 2})
    with pytest.raises(bench.WorkerError, match="died"):  # nothing more: EOF
        bench._ask(proc, parent)


def _global_reads(code):
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            yield ins.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_reads(const)


def test_every_name_the_bench_reads_exists(bench):
    """The bug of ce32ab3: worker functions reading `args` and `p`, main's locals."""
    import builtins

    missing = {
        name
        for fn in vars(bench).values()
        if isinstance(fn, types.FunctionType) and fn.__module__ == bench.__name__
        for name in _global_reads(fn.__code__)
        if not hasattr(bench, name) and not hasattr(builtins, name)
    }
    assert not missing

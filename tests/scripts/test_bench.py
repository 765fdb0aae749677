"""scripts/bench.py's pure parts: FLOP counting, GEMM timing, slices, variants, the table,
the command line (--smoke) and how a failed part fails the run. (The timed parts need the
real data set and minutes: `.ci/run` runs `scripts/bench.py --smoke` on it.)"""

import dis
import importlib.util
import json
import math
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import REPO, write_npz

from cnn_cifar.config.loader import load_config

ROOT = REPO
SCRIPTS = ROOT / "scripts"


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
    assert bench.options([]).parts == list(bench.DEFAULT_PARTS) == ["throughput", "memory", "search"]
    assert bench.options(["--only", "speedrun", "--seeds", "3,4"]).seeds == [3, 4]
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
    monkeypatch.setattr(bench, "run_speedrun", lambda args, budget, errors: None)


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


# ------------------------------------------------------------------ speedrun


@pytest.fixture
def airbench_reference():
    spec = importlib.util.spec_from_file_location("airbench_reference", SCRIPTS / "airbench_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speedrun_without_the_extra_says_so_in_one_line(bench, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import airbench_reference  # the module run_speedrun imports

    monkeypatch.setattr(airbench_reference, "available", lambda: False)
    errors: list = []
    args = bench.options(["--smoke", "--only", "speedrun"])
    assert bench.run_speedrun(args, args.budget, errors) is None and errors == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'speedrun: skipped: the reference extra is not installed (pip install -e ".[reference]": '
        "torch and airbench)"
    ]


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


def test_steady_rate_leaves_out_the_first_and_a_fractional_last_epoch(bench):
    # airbench's 9.9 epochs: the tenth is 90% of an epoch and would read as a fast one
    r = _training("reference", 0, 0.9, 0.89, [9.0] + [2.0] * 8 + [1.8], [18.0] + [4.0] * 8 + [3.6], 9.9, 1000)
    assert bench._steady(r) == (500.0, 250.0)
    whole = _training("project", 0, 0.9, 0.89, [9.0, 2.0, 4.0, 4.0], [18.0, 4.0, 4.0, 4.0], 4, 1000)
    assert bench._steady(whole) == (250.0, 250.0)  # median of epochs 2-4


def test_speedrun_summary_compares_the_port_with_the_reference(bench):
    runs = [
        _training("reference", 0, 0.9070, 0.8969, [100.0] * 10, [200.0] * 10),
        _training("project", 0, 0.9050, 0.8960, [200.0] * 10, [250.0] * 10),
        _training("project", 1, 0.9030, 0.8940, [200.0] * 10, [250.0] * 10),
        _training("reference", 1, 0.9050, 0.8950, [100.0] * 10, [200.0] * 10),
    ]
    summary = bench.speedrun_summary(runs)
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
    text = bench.table({**_result(), "speedrun": {"subset": None, "load_end": "0", **summary}})
    assert "project / reference: img/cpu-s 0.80x" in text and "TTA accuracy -0.20 points" in text
    assert "img/cpu-s >= 1.0x: not met; |accuracy difference| <= 0.3 points: MET" in text
    assert "90.60 +/- 0.14" in text


def test_speedrun_summary_of_one_side_has_no_ratios(bench):
    summary = bench.speedrun_summary([_training("project", 0, 0.9, 0.89, [2.0] * 10, [4.0] * 10)])
    assert list(summary["sides"]) == ["project"] and "ratios" not in summary["sides"]["project"]
    assert math.isnan(summary["sides"]["project"]["accuracy_sd"])  # one seed: no spread


def test_each_speedrun_variant_is_compared_with_the_reference(bench):
    runs = [
        _training("project_spe5", 0, 0.90, 0.89, [300.0] * 10, [250.0] * 10),
        _training("project", 0, 0.90, 0.89, [200.0] * 10, [250.0] * 10),
        _training("reference", 0, 0.91, 0.90, [100.0] * 10, [200.0] * 10),
    ]
    sides = bench.speedrun_summary(runs)["sides"]
    assert list(sides) == ["reference", "project", "project_spe5"]
    assert sides["project_spe5"]["ratios"]["train_s"] == pytest.approx(3.0)
    args = bench.options(["--only", "speedrun", "--variant", "spe5:train.steps_per_execution=5"])
    assert args.variant_sets == [("spe5", {"train.steps_per_execution": 5})]


def test_timed_event_times_the_brackets_airbench_records(airbench_reference, monkeypatch):
    Event = airbench_reference.TimedEvent
    monkeypatch.setattr(Event, "cuda_event", None)  # on the CPU: the wall clock
    Event.INTERVALS.clear()
    start, end = Event(enable_timing=True), Event(enable_timing=True)
    start.record()
    sum(i * i for i in range(200000))  # CPU work between the marks
    end.record()
    ms = start.elapsed_time(end)
    ((wall, cpu),) = Event.INTERVALS
    assert ms == pytest.approx(1e3 * wall) and wall > 0 and cpu > 0


def test_on_cuda_the_timed_event_reports_the_real_events_time(airbench_reference, monkeypatch):
    class FakeCudaEvent:  # torch.cuda.Event's interface: GPU milliseconds between records
        def __init__(self, enable_timing=False):
            self.recorded = False

        def record(self, stream=None):
            self.recorded = True

        def elapsed_time(self, end):
            return 250.0

    Event = airbench_reference.TimedEvent
    monkeypatch.setattr(Event, "cuda_event", FakeCudaEvent)
    Event.INTERVALS.clear()
    start, end = Event(), Event()
    start.record()
    end.record()
    assert start.event.recorded and end.event.recorded
    assert start.elapsed_time(end) == pytest.approx(250.0)
    assert Event.INTERVALS[0][0] == pytest.approx(0.25)


def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(airbench_reference, monkeypatch, capsys):
    monkeypatch.setattr(airbench_reference, "available", lambda: True)
    monkeypatch.setattr(airbench_reference, "cuda_available", lambda: False)
    assert airbench_reference.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("airbench_reference.py: --device cuda:") and "\n" not in err


def test_bench_device_cuda_without_a_gpu_stops_before_any_training(bench, monkeypatch, capsys):
    import airbench_reference  # the module bench.py reads (scripts/ is on its path)

    monkeypatch.setattr(airbench_reference, "available", lambda: True)
    monkeypatch.setattr(airbench_reference, "cuda_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        bench.options(["--only", "speedrun", "--device", "cuda"])
    assert stop.value.code == 2
    assert "--device cuda: torch sees no CUDA GPU" in capsys.readouterr().err


def test_reference_trains_on_the_cpu_from_the_projects_arrays(airbench_reference, tmp_path):
    # a process of its own, as the bench runs it (airbench imports only with its stand-ins)
    if not airbench_reference.available():
        pytest.skip(airbench_reference.EXTRA)
    data = write_npz(tmp_path / "c.npz", n_train=1100, n_test=200, size=32, n_classes=10)
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "airbench_reference.py"), "--data", str(data), "--epochs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout)
    assert r["images_trained"] == 2 * 1024 and r["images_per_epoch"] == 1024  # last partial batch dropped
    assert len(r["epoch_s"]) == len(r["epoch_cpu_s"]) == 2
    assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["test_accuracy_tta"] <= 1.0
    assert r["train_cpu_s"] > 0 and r["torch"].startswith(("2.", "3."))


def test_reference_script_skips_in_one_line_without_the_extra(airbench_reference, monkeypatch, capsys):
    monkeypatch.setattr(airbench_reference, "available", lambda: False)
    assert airbench_reference.main(["--smoke"]) == 0
    assert capsys.readouterr().out.strip() == f"airbench_reference.py: skipped: {airbench_reference.EXTRA}"

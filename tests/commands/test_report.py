"""`cnn-cifar report` on a results folder holding a real cv run, a real evaluate run, a
search run and runs that are still running or were interrupted."""

import csv
import json

import numpy as np
import pytest
import yaml
from conftest import REPO, invoke, write_config

from cnn_cifar.commands.report import COLUMNS, gather, markdown

# the tiny config without its hidden layer, one epoch, a quarter of each fold for testing
SECTIONS = {
    "model": {
        "layers": [
            {"name": "conv1", "type": "conv", "filters": 2, "kernel": 3, "activation": "relu"},
            {"name": "pool1", "type": "pool", "size": 2},
        ]
    },
    "train": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 1, "batch_size": 16, "seed": 3},
    "cv": {"n_splits": 2, "test_size": 0.25, "random_state": 15},
}


def fake_run(results, folder, command, status, files=None):
    path = results / folder
    path.mkdir(parents=True)
    (path / "run.json").write_text(
        json.dumps({"command": command, "name": "fake", "status": status, "started": "2020-01-01T10:00:00"})
    )
    for name, content in (files or {}).items():
        (path / name).write_text(json.dumps(content))
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    x = rng.integers(0, 256, (80, 8, 8, 3), dtype=np.uint8)
    np.savez(
        root / "tiny.npz",
        x_train=x[:60],
        y_train=y[:60],
        x_test=x[60:],
        y_test=y[60:],
        class_names=np.array(["a", "b"]),
    )
    write_config(root / "tiny.yaml", root / "tiny.npz", **SECTIONS)
    out = root / "results"
    for args in (["cv", root / "tiny.yaml"], ["evaluate", root / "tiny.yaml"]):
        result = invoke(
            *args, "--results-dir", out, "--threads", 1, cache=root / "cache", catch_exceptions=True
        )
        assert result.exit_code == 0, result.output
    fake_run(
        out,
        "2020-01-01_10-00-00_search_fake",
        "search",
        "finished",
        {
            "best.json": {
                "best_score": 0.61,
                "best_std": 0.02,
                "scoring": "f1_macro",
                "config": {"name": "search"},
            }
        },
    )
    fake_run(out, "2020-01-01_11-00-00_cv_fake", "cv", "running")
    fake_run(out, "2020-01-01_12-00-00_evaluate_fake", "evaluate", "interrupted")
    (out / "2020-01-01_13-00-00_cv_torn").mkdir()
    (out / "2020-01-01_13-00-00_cv_torn" / "run.json").write_text('{"command": "cv", "sta')
    return root, out


def test_report_writes_md_and_csv_and_prints_the_table(results):
    _, out = results
    result = invoke("report", "--results-dir", out)
    assert result.exit_code == 0, result.output
    with open(out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and list(rows[0]) == list(COLUMNS)
    md = (out / "report.md").read_text().strip().splitlines()
    assert len([line for line in md if line.startswith("| 20")]) == 6
    for row in rows:
        assert row["run"] in result.stdout
    assert not [p for p in out.iterdir() if "tmp" in p.name]


def test_cv_and_evaluate_figures_come_from_their_files(results):
    _, out = results
    rows = {r["command"] + ("_fake" if "fake" in r["run"] else ""): r for r in gather(out)}
    cv_dir = next(p for p in out.iterdir() if "_cv_tiny" in p.name)
    ev_dir = next(p for p in out.iterdir() if "_evaluate_tiny" in p.name)
    cv = json.loads((cv_dir / "cv.json").read_text())
    m = json.loads((ev_dir / "metrics.json").read_text())
    assert rows["cv"]["cv_mean"] == cv["mean_accuracy"] and rows["cv"]["cv_std"] == cv["std_accuracy"]
    assert [rows["cv"]["cv_ci_low"], rows["cv"]["cv_ci_high"]] == cv["ci_accuracy"]
    assert rows["cv"]["config"] == "tiny" and rows["cv"]["epochs"] == "1"
    assert rows["evaluate"]["test_accuracy"] == m["accuracy"]
    assert rows["evaluate"]["macro_f1"] == m["macro_f1"] and rows["evaluate"]["epochs"] == 1
    assert rows["evaluate"]["status"] == "finished" and rows["evaluate"]["wall_time_s"] > 0
    assert rows["search_fake"]["cv_mean"] == 0.61 and rows["search_fake"]["config"] == "search"


def test_unfinished_runs_are_listed_with_their_status(results):
    _, out = results
    by_run = {r["run"]: r for r in gather(out)}
    assert by_run["2020-01-01_11-00-00_cv_fake"]["status"] == "running"
    assert by_run["2020-01-01_12-00-00_evaluate_fake"]["status"] == "interrupted"
    assert by_run["2020-01-01_13-00-00_cv_torn"]["status"] == "unreadable"
    table = markdown(gather(out))
    assert "0.6100 ± 0.0200 (f1_macro)" in table and "| interrupted |" in table


def test_report_without_runs(tmp_path):
    assert invoke("report", "--results-dir", tmp_path / "nothing").exit_code == 2
    (tmp_path / "empty").mkdir()
    result = invoke("report", "--results-dir", tmp_path / "empty")
    assert result.exit_code == 0 and "no runs" in result.output
    assert (tmp_path / "empty" / "report.csv").read_text().startswith("run,command")


def test_ci_column_and_a_cv_json_written_before_it(tmp_path):
    """The report shows the corrected 95% interval of the CV mean; for a cv.json that has
    none (older runs) it is computed from the folds."""
    from cnn_cifar.results.stats import mean_interval

    folds = [
        {"fold": i, "accuracy": a, "n_train": 400, "n_test": 100} for i, a in enumerate((0.6, 0.62, 0.61), 1)
    ]
    fake_run(
        tmp_path,
        "2020-01-01_10-00-00_cv_old",
        "cv",
        "finished",
        {"cv.json": {"mean_accuracy": 0.61, "std_accuracy": 0.008, "folds": folds}},
    )
    (row,) = gather(tmp_path)
    low, high = mean_interval([0.6, 0.62, 0.61], [400] * 3, [100] * 3)
    assert (row["cv_ci_low"], row["cv_ci_high"]) == (low, high)
    assert f"[{low:.4f}, {high:.4f}]" in markdown([row]) and "CV 95% CI" in markdown([row])


def test_accuracy_against_training_time_from_the_finished_evaluate_runs(results):
    from cnn_cifar.commands.report import accuracy_over_time

    _, out = results
    result = invoke("report", "--results-dir", out)
    assert result.exit_code == 0 and "accuracy_vs_time.png" in result.stdout
    (run,) = accuracy_over_time(out)  # the interrupted evaluate run is left out
    ev_dir = next(p for p in out.iterdir() if "_evaluate_tiny" in p.name)
    m = json.loads((ev_dir / "metrics.json").read_text())
    assert run["name"] == "tiny" and run["test_accuracy"] == m["accuracy"]
    assert run["minutes"] == pytest.approx(m["training_time_s"] / 60)
    assert run["val_accuracy"] == m["history"].get("val_accuracy", [])
    png = (out / "accuracy_vs_time.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_the_readme_picture_redraws_from_the_runs_kept_in_docs(tmp_path):
    """docs/runs keeps the run.json and metrics.json of the runs behind the README's
    picture, so `cnn-cifar report --results-dir docs/runs` redraws it on any machine."""
    import shutil

    from cnn_cifar.commands.report import accuracy_over_time

    kept = REPO / "docs" / "runs"
    out = tmp_path / "runs"
    shutil.copytree(kept, out)
    result = invoke("report", "--results-dir", out)
    assert result.exit_code == 0, result.output
    drawn = [(r["name"], r["test_accuracy"]) for r in accuracy_over_time(out)]
    kept_metrics = [json.loads(p.read_text()) for p in sorted(out.glob("*/metrics.json"))]
    assert drawn == [(m["name"], m["accuracy"]) for m in kept_metrics]
    assert {name for name, _ in drawn} == {"final", "fast", "speedrun"}
    # and the speedrun bench kept beside them: airbench94 itself and the port, one CPU
    from cnn_cifar.commands.report import bench_trainings

    bench = bench_trainings(out)
    assert {r["name"] for r in bench} == {"airbench94 itself", "speedrun.yaml"}
    assert [r["reference"] for r in bench].count(True) >= 1
    assert (out / "accuracy_vs_time.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "record",
    [
        {"command": "cv", "name": "x", "status": 5, "started": "2020-01-01T10:00:00"},
        {"command": 3, "name": "x", "status": "finished"},
        {"command": "cv", "name": ["x"], "status": "finished", "wall_time_s": "long"},
        {"command": "cv", "name": "x", "status": "done"},  # no such status
        [1, 2],
    ],
)
def test_a_run_json_of_the_wrong_shape_is_unreadable_not_a_traceback(tmp_path, record):
    run = tmp_path / "2020-01-01_10-00-00_cv_x"
    run.mkdir()
    (run / "run.json").write_text(json.dumps(record))
    result = invoke("report", "--results-dir", tmp_path)
    assert result.exit_code == 0, result.output
    (row,) = gather(tmp_path)
    assert row["status"] == "unreadable" and row["command"] == ""
    assert "unreadable" in result.output


def test_runs_of_one_config_are_told_apart_by_data_subset_and_overrides(tmp_path):
    for folder, path, subset, overrides in (
        ("2020-01-01_10-00-00_cv_two_conv", "/data/cifar10-jpeg.tar.xz", None, ""),
        ("2020-01-01_11-00-00_cv_two_conv", "/data/cifar10-jpeg.tar.xz", 2000, "train.epochs=2\n"),
        ("2020-01-01_12-00-00_cv_two_conv", None, None, "train.seed=1\nconv2.kernel=9\n"),
    ):
        run = tmp_path / folder
        run.mkdir()
        info = {"command": "cv", "name": "two_conv", "status": "finished", "started": "2020-01-01T10:00:00"}
        (run / "run.json").write_text(json.dumps(info))
        data = {"source": "image_folder" if path else "cifar10", "path": path, "subset": subset}
        (run / "config.yaml").write_text(yaml.safe_dump({"name": "two_conv", "data": data}))
        (run / "overrides.txt").write_text(overrides)
    rows = gather(tmp_path)
    assert [(r["data"], r["subset"], r["overrides"]) for r in rows] == [
        ("cifar10-jpeg.tar.xz", "", ""),
        ("cifar10-jpeg.tar.xz", 2000, "train.epochs=2"),
        ("cifar10", "", "train.seed=1 conv2.kernel=9"),
    ]
    table = markdown(rows)
    assert "| cifar10-jpeg.tar.xz, 2,000 images | train.epochs=2 |" in table
    assert (tmp_path / "report.csv").exists() is False  # gather writes nothing


def _bench_result(path, machine="x86_64 2 cores, AMD EPYC, native bfloat16", subset=None, device=None):
    def training(side, seed, acc, seconds):
        run = {"side": side, "seed": seed, "train_s": seconds, "test_accuracy_tta": acc}
        return run if device is None else {**run, "device": device}

    runs = [training("reference", 0, 0.907, 2040.0), training("project", 0, 0.905, 1900.0)]
    path.write_text(json.dumps({"machine": machine, "speedrun": {"subset": subset, "runs": runs}}))


def test_the_speedrun_bench_trainings_are_drawn_beside_the_runs_the_reference_as_a_star(tmp_path):
    from cnn_cifar.commands.report import bench_trainings

    _bench_result(tmp_path / "bench-2026-12-04_14-55-40.json")
    _bench_result(tmp_path / "bench-smoke-2026-12-04_14-10-21.json")  # measures nothing: left out
    _bench_result(tmp_path / "bench-2026-12-04_15-00-00.json", subset=2560)
    (tmp_path / "bench-2026-12-01_00-00-00.json").write_text('{"throughput": {}}')  # no speedrun part
    (tmp_path / "bench-2026-12-02_00-00-00.json").write_text("{not json")
    _bench_result(tmp_path / "bench-2026-12-03_00-00-00.json", device="NVIDIA H200")  # seconds, not minutes
    drawn = bench_trainings(tmp_path)
    assert [(d["name"], d["reference"], d["test_accuracy"]) for d in drawn] == [
        ("airbench94 itself", True, 0.907),
        ("speedrun.yaml", False, 0.905),
    ] * 2
    assert drawn[0]["label"] == "airbench94 itself, seed 0, bench on AMD EPYC"
    assert drawn[0]["minutes"] == pytest.approx(34.0)
    assert drawn[3]["label"] == "speedrun.yaml, seed 0, bench on AMD EPYC, --subset 2560"
    result = invoke("report", "--results-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "accuracy_vs_time.png").read_bytes().startswith(b"\x89PNG")

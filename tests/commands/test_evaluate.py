"""`cnn-cifar evaluate` on tiny generated data: every output file, --best, --epochs.

One evaluate run is shared by the module (training is the slow part); each test reads
back one of its files."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, invoke, write_config, write_npz
from PIL import Image
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from cnn_cifar.commands import evaluate as ev
from cnn_cifar.config.loader import load_config, to_dict
from cnn_cifar.data.sources import CIFAR10_CLASSES

NAMES = ["cat", "dog", "ship"]
# the tiny config with 3 filters in conv1
LAYERS = [
    {"name": "conv1", "type": "conv", "filters": 3, "kernel": 3, "activation": "relu"},
    {"name": "pool1", "type": "pool", "size": 2},
    {"name": "hidden", "type": "dense", "units": 8, "activation": "relu"},
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = write_npz(root / "tiny.npz", n_train=100, n_test=30, class_names=NAMES, size=12)
    write_config(root / "tiny.yaml", data, model={"layers": LAYERS})
    return root


def run_folders(results) -> list[Path]:
    return sorted(p for p in Path(results).iterdir() if p.is_dir()) if Path(results).is_dir() else []


@pytest.fixture(scope="module")
def evaluated(workspace):
    """One `evaluate` run; the test-set probabilities the trained model gave are captured."""
    captured = {}
    original = ev.train_and_test

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        captured["proba"] = out["proba"].copy()
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ev, "train_and_test", spy)
        result = invoke(
            "evaluate",
            workspace / "tiny.yaml",
            "--results-dir",
            workspace / "results",
            "--threads",
            1,
            cache=workspace / "cache",
            catch_exceptions=True,
        )
    assert result.exit_code == 0, result.output
    (run,) = run_folders(workspace / "results")
    with np.load(workspace / "tiny.npz") as z:
        x_test, y_test = z["x_test"], z["y_test"]
    return {
        "run": run,
        "stdout": result.stdout,
        "proba": captured["proba"],
        "x_test": x_test,
        "y_test": y_test,
        "metrics": json.loads((run / "metrics.json").read_text()),
    }


def test_writes_every_file_and_prints_headline(evaluated):
    run = evaluated["run"]
    for name in (
        "metrics.json",
        "classification_report.txt",
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "training_curves.png",
        "misclassified.png",
        "model.keras",
        "summary.md",
        "config.yaml",
        "run.json",
    ):
        assert (run / name).is_file(), name
    assert not [p.name for p in run.iterdir() if "tmp" in p.name]
    info = json.loads((run / "run.json").read_text())
    assert info["command"] == "evaluate" and info["status"] == "finished"
    assert info["accuracy"] == evaluated["metrics"]["accuracy"]
    assert "test accuracy" in evaluated["stdout"] and str(run) in evaluated["stdout"]


def test_reloaded_model_gives_identical_predictions(evaluated):
    import keras

    model = keras.models.load_model(evaluated["run"] / "model.keras", safe_mode=True)
    proba = model.predict(evaluated["x_test"], batch_size=512, verbose=0)
    np.testing.assert_allclose(proba, evaluated["proba"], rtol=1e-5, atol=1e-7)


def test_metrics_agree_with_sklearn(evaluated):
    m, y_true = evaluated["metrics"], evaluated["y_test"]
    y_pred = evaluated["proba"].argmax(axis=1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0))
    per_class = f1_score(y_true, y_pred, average=None, labels=[0, 1, 2], zero_division=0)
    assert [m["per_class"][n]["f1"] for n in NAMES] == pytest.approx(per_class)
    assert [m["per_class"][n]["support"] for n in NAMES] == [10, 10, 10]
    assert m["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=[0, 1, 2]).tolist()
    report = (evaluated["run"] / "classification_report.txt").read_text()
    assert report == classification_report(
        y_true, y_pred, labels=[0, 1, 2], target_names=NAMES, digits=3, zero_division=0
    )


def test_metrics_json_records_training_and_config(evaluated, workspace):
    import keras

    m = evaluated["metrics"]
    assert m["epochs"] == len(m["history"]["loss"]) <= 2
    assert set(m["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert m["training_time_s"] >= 0 and m["n_train"] == 100 and m["n_test"] == 30
    model = keras.models.load_model(evaluated["run"] / "model.keras", safe_mode=True)
    assert m["parameters"] == model.count_params()
    assert m["config"] == to_dict(load_config(workspace / "tiny.yaml"))
    assert m["search_run"] is None and m["tutorial_figure"] is None
    assert m["class_names"] == NAMES and m["input_shape"] == [12, 12, 3]


def test_confusion_csv_has_class_names_on_both_axes(evaluated):
    with open(evaluated["run"] / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 4 and all(len(r) == 4 for r in rows)
    assert rows[0][1:] == NAMES and [r[0] for r in rows[1:]] == NAMES
    counts = [[int(v) for v in r[1:]] for r in rows[1:]]
    assert counts == evaluated["metrics"]["confusion_matrix"]
    assert sum(map(sum, counts)) == 30


@pytest.mark.parametrize(
    "name, min_size",
    [
        ("confusion_matrix.png", (1200, 500)),
        ("training_curves.png", (900, 400)),
        ("misclassified.png", (600, 300)),
    ],
)
def test_pngs_are_readable_images(evaluated, name, min_size):
    with Image.open(evaluated["run"] / name) as im:
        im.verify()
    with Image.open(evaluated["run"] / name) as im:
        assert im.format == "PNG"
        assert im.width >= min_size[0] and im.height >= min_size[1], im.size
        if name == "confusion_matrix.png":  # two panels side by side
            assert im.width > 1.5 * im.height


def test_model_file_carries_class_names_and_input_shape(evaluated):
    from cnn_cifar.training.model_file import load_model, read_meta

    meta = read_meta(evaluated["run"] / "model.keras")
    assert meta["class_names"] == NAMES and meta["input_shape"] == [12, 12, 3]
    _, loaded_meta = load_model(evaluated["run"] / "model.keras")
    assert loaded_meta["class_names"] == NAMES


def test_summary_links_plots_and_lists_scores(evaluated):
    run, m = evaluated["run"], evaluated["metrics"]
    text = (run / "summary.md").read_text()
    assert f"{m['accuracy']:.2%}" in text and f"{m['macro_f1']:.2%}" in text
    for name in NAMES:
        assert f"| {name} |" in text
    for link in ("confusion_matrix.png", "training_curves.png", "misclassified.png"):
        assert f"]({link})" in text and (run / link).is_file()
    assert "71%" not in text  # not the tutorial's model or data


def test_summary_compares_with_tutorial_and_names_confusions():
    names = list(CIFAR10_CLASSES)
    cm = np.diag([90] * 10)
    cm[3, 5], cm[3, 3] = 10, 80  # cats taken for dogs
    per_class = {
        n: {"precision": 0.9, "recall": 0.9, "f1": 0.65 if n == "cat" else 0.9, "support": 100} for n in names
    }
    m = {
        "name": "final",
        "accuracy": 0.7,
        "macro_f1": 0.69,
        "macro_precision": 0.7,
        "macro_recall": 0.7,
        "n_train": 50000,
        "n_test": 1000,
        "epochs": 8,
        "max_epochs": 20,
        "validation_split": 0.2,
        "training_time_s": 600.0,
        "parameters": 1000,
        "tutorial_figure": 0.71,
        "search_run": None,
        "confusion_matrix": cm.tolist(),
        "class_names": names,
        "per_class": per_class,
    }
    text = ev.summary_markdown(m)
    assert "71%" in text and "2.0 points below" in text
    assert "cat taken for dog: 10 of 90 test images" in text
    assert "F1 below 0.70: cat." in text
    assert "tutorial: 71%" in ev.headline(m)


def test_tutorial_model_is_recognised():
    final = load_config(CONFIGS / "final.yaml")
    assert ev.is_tutorial_model(final, CIFAR10_CLASSES)
    assert not ev.is_tutorial_model(final, NAMES)
    assert not ev.is_tutorial_model(load_config(CONFIGS / "two_conv_hidden.yaml"), CIFAR10_CLASSES)
    t = final.train
    assert (
        t.optimizer.name,
        t.optimizer.learning_rate,
        t.batch_size,
        t.validation_split,
        t.early_stopping.patience,
    ) == ("adadelta", 1.0, 32, 0.2, 2)


def test_epochs_option_turns_early_stopping_off_through_the_router():
    cfg = load_config(CONFIGS / "final.yaml", ev.epochs_overrides(3))
    assert cfg.train.epochs == 3 and cfg.train.early_stopping is None
    assert ev.epochs_overrides(None) == []


# --------------------------------------------------------------------------- --best


def write_search_run(results: Path, stamp: str, hidden_units: int, workspace: Path) -> Path:
    """A search run folder as `cnn-cifar search` leaves it: run.json and best.json."""
    folder = results / f"{stamp}_search_tiny"
    folder.mkdir(parents=True)
    config = to_dict(load_config(workspace / "tiny.yaml", [f"hidden.units={hidden_units}"]))
    (folder / "run.json").write_text(
        json.dumps({"command": "search", "name": "tiny", "status": "ok", "started": "2020-01-01T00:00:00"})
    )
    (folder / "best.json").write_text(
        json.dumps(
            {
                "best_params": {"hidden__units": hidden_units},
                "best_score": 0.9,
                "best_std": 0.01,
                "best_candidate": 2,
                "scoring": "accuracy",
                "strategy": "random",
                "config": config,
                "data": {"source": "npz", "path": str(workspace / "tiny.npz"), "subset": None},
            }
        )
    )
    return folder


def test_best_without_a_search_run_says_what_to_run(workspace, tmp_path):
    results = tmp_path / "results"
    result = invoke("evaluate", "--best", "--results-dir", results)
    assert result.exit_code == 2
    assert "cnn-cifar search configs/search.yaml" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run_folders(results) == []


def test_best_trains_the_latest_search_runs_config(workspace, tmp_path):
    results = tmp_path / "results"
    write_search_run(results, "2020-01-01_00-00-00", 4, workspace)
    latest = write_search_run(results, "2020-01-02_00-00-00", 6, workspace)
    result = invoke(
        "evaluate",
        "--best",
        "--results-dir",
        results,
        "--epochs",
        1,
        "--set",
        "conv1.filters=2",
        "--threads",
        1,
    )
    assert result.exit_code == 0, result.output
    (run,) = [p for p in run_folders(results) if "_evaluate_" in p.name]
    m = json.loads((run / "metrics.json").read_text())
    assert m["search_run"] == str(latest) and m["search"]["best_params"] == {"hidden__units": 6}
    layers = {layer["name"]: layer for layer in m["config"]["model"]["layers"]}
    assert layers["hidden"]["units"] == 6 and layers["conv1"]["filters"] == 2  # --set applies
    assert m["epochs"] == 1 and m["config"]["train"]["early_stopping"] is None  # --epochs
    assert json.loads((run / "run.json").read_text())["search_run"] == str(latest)
    assert "CV accuracy 0.9000 ± 0.0100" in (run / "summary.md").read_text()


def test_best_given_folder_and_bad_folder(workspace, tmp_path):
    results = tmp_path / "results"
    older = write_search_run(results, "2020-01-01_00-00-00", 4, workspace)
    write_search_run(results, "2020-01-02_00-00-00", 6, workspace)
    assert ev.find_search_run(results, str(older)) == older
    cfg, search = ev.best_config(older, ["train.batch_size=8"])
    assert cfg.model.layers[2].units == 4 and cfg.train.batch_size == 8
    assert search["run"] == str(older) and search["best_score"] == 0.9
    result = invoke("evaluate", "--best", tmp_path, "--results-dir", results)
    assert result.exit_code == 2 and "best.json" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "conv9.kernel=3"], "conv9.kernel"),
        (["--set", "conv1.kernel=40", "--set", "conv1.padding=valid"], "conv1"),
        (["--data", "/no/such/data.npz"], "/no/such/data.npz"),
    ],
)
def test_mistakes_fail_before_any_run_folder(workspace, tmp_path, args, message):
    results = tmp_path / "results"
    result = invoke("evaluate", workspace / "tiny.yaml", "--results-dir", results, *args)
    assert result.exit_code == 2 and message in result.output
    assert run_folders(results) == []


def test_evaluate_needs_a_config_or_best(workspace, tmp_path):
    assert invoke("evaluate").exit_code == 2
    result = invoke("evaluate", tmp_path / "missing.yaml")
    assert result.exit_code == 2 and "missing.yaml" in result.output


def test_best_keeps_the_search_subset_unless_told_otherwise(workspace, tmp_path):
    """A search on a subset is evaluated on that subset's training images, not on all."""
    results = tmp_path / "results"
    folder = write_search_run(results, "2020-01-01_00-00-00", 4, workspace)
    best = json.loads((folder / "best.json").read_text())
    best["data"]["subset"] = 40
    (folder / "best.json").write_text(json.dumps(best))
    result = invoke("evaluate", "--best", "--results-dir", results, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "data: 40 training images" in result.output
    result = invoke("evaluate", "--best", "--results-dir", results, "--epochs", 1, "--subset", 50)
    assert "data: 50 training images" in result.output

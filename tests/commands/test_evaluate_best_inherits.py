"""`evaluate --best` says what it takes from its search besides the best candidate (the
search's --subset and --set settings): printed before it starts, recorded in run.json,
metrics.json and summary.md, shown by `report`; `--full-data` drops the subset.

One real `cnn-cifar search` (on a subset, with --set overrides) is shared by the module;
each evaluate of it is a real run into its own results folder."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import cli_command, invoke, write_config, write_npz

from cnn_cifar.commands import evaluate as ev
from cnn_cifar.config.loader import load_config, to_dict

NAMES = ["cat", "dog", "ship"]
SEARCH_SET = ["train.epochs=1", "cv.n_splits=2", "search.n_iter=2"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished search on a 60-image subset with SEARCH_SET: its workspace and run folder."""
    root = tmp_path_factory.mktemp("inherits")
    data = write_npz(root / "tiny.npz", n_train=120, n_test=30, class_names=NAMES, size=12)
    search = {"strategy": "random", "n_iter": 3, "random_state": 1, "space": {"hidden__units": [4, 8]}}
    write_config(root / "search.yaml", data, search=search)
    args = [f"--set={o}" for o in SEARCH_SET]
    result = invoke(
        "search",
        root / "search.yaml",
        "--subset",
        60,
        *args,
        "--results-dir",
        root / "searches",
        "--threads",
        1,
        "--no-tensorboard",
        cache=root / "cache",
    )
    assert result.exit_code == 0, result.output
    (run,) = (root / "searches").iterdir()
    assert (run / "overrides.txt").read_text() == "".join(f"{o}\n" for o in SEARCH_SET)
    return {"root": root, "run": run}


def results_of(searched, tmp_path) -> Path:
    """A results folder holding a copy of the shared search run (each test its own)."""
    results = tmp_path / "results"
    shutil.copytree(searched["run"], results / searched["run"].name)
    return results


def evaluate_runs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if "_evaluate_" in p.name)


def test_best_says_before_it_starts_what_it_takes_from_the_search_and_records_it(searched, tmp_path):
    results = results_of(searched, tmp_path)
    proc = subprocess.run(
        [*cli_command(), "evaluate", "--best", "--results-dir", str(results), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), "CNN_CIFAR_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.splitlines()
    said = err.index("from the search: --subset 60, train.epochs=1")  # not cv.* or search.*
    assert "--full-data for the whole data set" in err[said + 1]
    decoded = next(i for i, line in enumerate(err) if line.startswith("data: 60 training images, 15 test"))
    assert said < decoded  # said before any data is decoded
    assert "from the search: --subset 60, train.epochs=1)" in proc.stdout  # the headline too
    (run,) = evaluate_runs(results)
    inherited = {"subset": 60, "overrides": ["train.epochs=1"]}
    assert json.loads((run / "run.json").read_text())["inherited"] == inherited
    m = json.loads((run / "metrics.json").read_text())
    assert m["search"]["inherited"] == inherited and m["search"]["subset"] == 60
    assert m["n_train"] == 60 and m["epochs"] == 1
    assert (run / "overrides.txt").read_text() == ""  # this command's own --set: none
    summary = (run / "summary.md").read_text()
    assert "Taken from the search besides its best candidate: --subset 60, train.epochs=1" in summary
    assert "(a --subset sample, " in summary

    report = invoke("report", "--results-dir", results)
    assert report.exit_code == 0, report.output
    row = next(line for line in (results / "report.md").read_text().splitlines() if run.name in line)
    assert "| tiny.npz, 60 images | (from the search: --subset 60, train.epochs=1) |" in row


def test_full_data_drops_the_searchs_subset_and_says_so(searched, tmp_path):
    results = results_of(searched, tmp_path)
    result = invoke("evaluate", "--best", "--full-data", "--results-dir", results, "--threads", 1)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "from the search: train.epochs=1" in lines
    assert "--full-data: the whole data set, not the search's --subset 60" in lines
    assert "data: 120 training images, 30 test images" in result.output
    (run,) = evaluate_runs(results)
    assert json.loads((run / "run.json").read_text())["inherited"] == {
        "subset": None,
        "overrides": ["train.epochs=1"],
    }
    m = json.loads((run / "metrics.json").read_text())
    assert m["n_train"] == 120 and m["n_test"] == 30 and m["data"]["subset"] is None
    assert "subset: null" in (run / "config.yaml").read_text()
    rows = invoke("report", "--results-dir", results)
    assert rows.exit_code == 0
    row = next(line for line in (results / "report.md").read_text().splitlines() if run.name in line)
    assert "| tiny.npz | (from the search: train.epochs=1) |" in row


def test_own_options_are_not_counted_as_the_searchs(searched, tmp_path):
    """--epochs and --subset replace what the search set: nothing is then inherited."""
    results = results_of(searched, tmp_path)
    result = invoke(
        "evaluate", "--best", "--epochs", 2, "--subset", 90, "--results-dir", results, "--threads", 1
    )
    assert result.exit_code == 0, result.output
    assert "from the search" not in result.output
    assert "data: 90 training images" in result.output
    (run,) = evaluate_runs(results)
    assert json.loads((run / "run.json").read_text())["inherited"] == {"subset": None, "overrides": []}
    assert (run / "overrides.txt").read_text() == "train.epochs=2\ntrain.early_stopping=null\n"
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


def test_full_data_with_subset_is_refused_in_one_line(searched, tmp_path):
    results = results_of(searched, tmp_path)
    result = invoke("evaluate", "--best", "--full-data", "--subset", 50, "--results-dir", results)
    assert result.exit_code == 2
    assert result.output == "Error: --full-data and --subset N contradict each other: give one of them\n"
    assert evaluate_runs(results) == []


def test_help_says_what_best_inherits_and_shows_full_data():
    text = invoke("evaluate", "--help").output
    assert "--best takes the search's data set, its --subset" in " ".join(text.split())
    assert "cnn-cifar evaluate --best --full-data" in text
    assert "--full-data" in text and "no subset" in " ".join(text.split())


def test_full_data_drops_a_configs_own_subset(tmp_path):
    data = write_npz(tmp_path / "tiny.npz", n_train=60, n_test=30, class_names=NAMES)
    config = write_config(tmp_path / "tiny.yaml", data)
    text = config.read_text().replace(f"path: {data}", f"path: {data}\n  subset: 30")
    config.write_text(text)
    assert load_config(config).data.subset == 30
    results = tmp_path / "results"
    result = invoke(
        "evaluate", config, "--full-data", "--epochs", 1, "--results-dir", results, "--threads", 1
    )
    assert result.exit_code == 0, result.output
    assert "data: 60 training images, 30 test images" in result.output
    assert "from the search" not in result.output


# --------------------------------------------------------------------------- which overrides


def search_folder(tmp_path: Path, search_set: list[str], best_units: int) -> Path:
    """A search run folder as `cnn-cifar search` leaves it after `--set search_set`: its
    overrides.txt and best.json (the config with the overrides, then the candidate's units)."""
    data = write_npz(tmp_path / "tiny.npz", n_train=60, n_test=30, class_names=NAMES)
    config = write_config(tmp_path / "tiny.yaml", data, search={"space": {"hidden__units": [4, 6]}})
    folder = tmp_path / "2020-01-01_00-00-00_search_tiny"
    folder.mkdir()
    cfg = to_dict(load_config(config, [*search_set, f"hidden.units={best_units}"]))
    cfg.pop("search", None)
    best = {"best_params": {"hidden__units": best_units}, "best_score": 0.5, "config": cfg}
    best["data"] = {"source": "npz", "path": str(data), "subset": 40}
    (folder / "best.json").write_text(json.dumps(best))
    (folder / "overrides.txt").write_text("".join(f"{o}\n" for o in search_set))
    return folder


@pytest.mark.parametrize(
    "search_set, own, inherited",
    [
        (["train.epochs=3", "train.batch_size=8"], [], ["train.epochs=3", "train.batch_size=8"]),
        (["train__epochs=3"], [], ["train__epochs=3"]),  # as the user spelled it
        (["hidden.units=16"], [], []),  # the search varied it: the candidate's value holds
        (["cv.n_splits=5", "search.n_iter=3"], [], []),  # evaluate uses neither
        (["train.epochs=3"], ["train.epochs=3"], []),  # this command's own, said again
        (["train.epochs=3"], ["train__epochs=5"], []),  # replaced by this command's own
        (["train.early_stopping.patience=4"], ev.epochs_overrides(2), []),  # --epochs turns it off
        (["conv1.filters=2", "train.seed=7"], ["conv1.kernel=5"], ["conv1.filters=2", "train.seed=7"]),
    ],
)
def test_inherited_overrides_are_the_searchs_still_in_force(tmp_path, search_set, own, inherited):
    folder = search_folder(tmp_path, search_set, best_units=6)
    cfg, search = ev.best_config(folder, own)
    assert search["inherited"] == {"subset": 40, "overrides": inherited}
    assert cfg.data.subset == 40 and cfg.model.layers[2].units == 6


def test_inherited_subset_goes_with_subset_full_data_or_an_own_set(tmp_path):
    folder = search_folder(tmp_path, [], best_units=6)
    assert ev.best_config(folder)[1]["inherited"]["subset"] == 40
    assert ev.best_config(folder, subset=50)[1]["inherited"]["subset"] is None
    cfg, search = ev.best_config(folder, full_data=True)
    assert cfg.data.subset is None and search["inherited"]["subset"] is None and search["subset"] == 40
    cfg, search = ev.best_config(folder, ["data.subset=20"])
    assert cfg.data.subset == 20 and search["inherited"]["subset"] is None
    (folder / "overrides.txt").unlink()  # a search run by run_search alone: no overrides.txt
    assert ev.best_config(folder)[1]["inherited"]["overrides"] == []


def _env() -> dict:
    """This process's environment without the developer's CNN_CIFAR_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CNN_CIFAR_")}

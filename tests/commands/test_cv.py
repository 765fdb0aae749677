"""The CLI through Click's test runner: cv end to end on tiny data, and user mistakes."""

import json

import pytest
from conftest import invoke


def test_help_for_group_and_cv():
    result = invoke("--help")
    assert result.exit_code == 0 and "cnn-cifar cv configs/two_conv.yaml" in result.output
    result = invoke("cv", "--help")
    assert result.exit_code == 0 and "Examples" in result.output and "--set" in result.output


def test_cv_writes_a_complete_run_folder(tmp_path, tiny_config):
    results = tmp_path / "results"
    result = invoke("cv", tiny_config, "--results-dir", results, "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    (run,) = results.iterdir()
    summary = json.loads((run / "cv.json").read_text())
    assert len(summary["fold_accuracies"]) == 2 and summary["epochs"] == [1, 1]
    assert 0 <= summary["mean_accuracy"] <= 1
    assert {"accuracy", "fit_time_s", "epochs"} <= set(summary["folds"][0])
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["command"] == "cv"
    assert "epochs: 1" in (run / "config.yaml").read_text()
    assert (run / "overrides.txt").read_text() == "train.epochs=1\n"
    assert "fold 1/2" in (run / "log.txt").read_text()
    assert not list(run.glob(".*tmp"))
    assert "mean accuracy over 2 folds" in result.output
    # a second run never overwrites the first
    assert invoke("cv", tiny_config, "--results-dir", results, "--set", "train.epochs=1").exit_code == 0
    assert len(list(results.iterdir())) == 2


def test_cv_jobs_2_matches_sequential(tmp_path, tiny_config):
    accuracies = []
    for jobs in (1, 2):
        results = tmp_path / f"r{jobs}"
        result = invoke("cv", tiny_config, "--results-dir", results, "--jobs", jobs)
        assert result.exit_code == 0, result.output
        (run,) = results.iterdir()
        accuracies.append(json.loads((run / "cv.json").read_text())["fold_accuracies"])
    assert accuracies[0] == pytest.approx(accuracies[1], abs=1e-6)


def test_subset_and_data_override(tmp_path, tiny_config, tiny_npz):
    result = invoke(
        "cv",
        tiny_config,
        "--results-dir",
        tmp_path / "r",
        "--data",
        tiny_npz,
        "--subset",
        60,
        "--set",
        "train.epochs=1",
    )
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "r").iterdir()
    summary = json.loads((run / "cv.json").read_text())
    assert summary["n_train"] == 60 and summary["data"]["source"] == "npz"


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--set", "conv1.kernal=3"],
            "--set: conv1.kernal: no such setting (did you mean kernel?); conv1 (conv) takes filters, kernel",
        ),
        (["--set", "pool1.size=16"], "pool1): pool size 16 is larger than the 8x8 feature map"),
        (["--set", "conv7.kernel=3"], "conv7.kernel: no such setting"),
        (["--data", "/no/such/file.npz"], "/no/such/file.npz"),
    ],
)
def test_user_mistakes_are_one_line_exit_2_and_no_run(tmp_path, tiny_config, args, expected):
    results = tmp_path / "results"
    result = invoke("cv", tiny_config, "--results-dir", results, *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output
    assert "Traceback" not in result.output
    assert not results.exists()  # nothing started, nothing half-written


def test_data_env_var(tmp_path, tiny_config, tiny_npz, monkeypatch):
    monkeypatch.setenv("CNN_CIFAR_DATA", "/no/such/dir")
    result = invoke("cv", tiny_config, "--results-dir", tmp_path / "r")
    assert result.exit_code == 2 and "/no/such/dir" in result.output


def test_repeats_and_the_interval_in_cv_json(tmp_path, tiny_config):
    results = tmp_path / "results"
    result = invoke(
        "cv", tiny_config, "--results-dir", results, "--set", "train.epochs=1", "--set", "cv.n_repeats=2"
    )
    assert result.exit_code == 0, result.output
    (run,) = results.iterdir()
    summary = json.loads((run / "cv.json").read_text())
    assert [f["repeat"] for f in summary["folds"]] == [1, 1, 2, 2] and summary["cv"]["n_repeats"] == 2
    low, high = summary["ci_accuracy"]
    assert low <= summary["mean_accuracy"] <= high and summary["ci_level"] == 0.95
    assert "95% confidence interval of the mean" in result.output

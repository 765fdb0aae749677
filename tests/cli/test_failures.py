"""Bad input and machine limits found after the config checks, in the data or the machine:
each ends in one line naming its origin, exit 2 for the user's input and 1 for the
machine, a run recorded failed where one was started, and no temporary file left."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import invoke, make_images, write_config
from PIL import Image

from cnn_cifar.core import files


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert lines and lines[-1].startswith("Error: ") and "Traceback" not in result.output, result.output
    return lines[-1]


def npz(path, y_train=None, x_train=None, **extra):
    x, y = make_images(90)
    arrays = {
        "x_train": x if x_train is None else x_train,
        "y_train": y if y_train is None else y_train,
        "x_test": x[:30],
        "y_test": y[:30],
        **extra,
    }
    np.savez(path, **arrays)
    return path


def run_records(results):
    return [json.loads((p / "run.json").read_text()) for p in sorted(results.glob("*/"))]


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--subset", 10],
            "--subset 10: 10 training images of 3 classes are too few for stratified folds "
            "with test_size 0.2",
        ),
        (["--subset", 60, "--set", "cv.test_size=0.01"], "at least"),
    ],
)
def test_too_few_images_for_the_folds_is_a_user_error(tmp_path, tiny_config, args, expected):
    result = invoke("cv", tiny_config, "--results-dir", tmp_path / "r", *args)
    assert result.exit_code == 2
    assert expected in one_error_line(result)
    assert run_records(tmp_path / "r") == []  # found by decoding, before a run folder exists


def test_subset_larger_than_the_data_is_refused_with_the_real_count(tmp_path, tiny_config):
    result = invoke("cv", tiny_config, "--results-dir", tmp_path / "r", "--subset", 1000)
    assert result.exit_code == 2
    assert one_error_line(result) == "Error: --subset 1000: the data set has only 90 training images"


@pytest.mark.parametrize(
    "labels, found", [(-1, "4 distinct values (-1, 0, 1, 2)"), (10**12, "(0, 1, 2, 1000000000000)")]
)
def test_labels_must_be_0_to_k_minus_1(tmp_path, labels, found):
    y = np.arange(90) % 3
    y[-1] = labels
    path = npz(tmp_path / "d.npz", y_train=y)
    result = invoke("cv", write_config(tmp_path / "c.yaml", path), "--results-dir", tmp_path / "r")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "labels must be 0..K-1" in line and found in line
    assert not (tmp_path / "r").exists()  # found by the probe, before a run


def test_one_class_is_refused_before_training(tmp_path):
    path = npz(tmp_path / "d.npz", y_train=np.zeros(90, np.int64), y_test=np.zeros(30, np.int64))
    result = invoke("cv", write_config(tmp_path / "c.yaml", path), "--results-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert "the training set holds 1 class; a classifier needs 2 or more" in one_error_line(result)
    assert run_records(tmp_path / "r") == []  # exit 2: no run folder


def test_zero_channel_images_are_refused(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=np.zeros((90, 8, 8, 0), np.uint8))
    result = invoke("cv", write_config(tmp_path / "c.yaml", path), "--results-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert "with H, W and C at least 1, got (90, 8, 8, 0)" in one_error_line(result)


def test_first_decode_says_what_it_does(tmp_path, tiny_config, capsys):
    from cnn_cifar.data.sources import load_dataset

    load_dataset(
        "npz", str(yaml.safe_load(tiny_config.read_text())["data"]["path"]), cache_dir=tmp_path / "c"
    )
    assert f"cached in {tmp_path / 'c'}" in capsys.readouterr().err


def test_every_training_command_prints_its_image_counts(tmp_path, tiny_config):
    result = invoke("cv", tiny_config, "--results-dir", tmp_path / "r", "--set", "train.epochs=1")
    assert "data: 90 training images, 30 test images, 3 classes, 8x8x3 pixels" in result.output


def test_no_data_and_no_internet_says_how_to_give_data(tmp_path, tiny_config, monkeypatch):
    import keras

    def offline():
        raise OSError("Name or service not known")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    raw = yaml.safe_load(tiny_config.read_text())
    raw["data"] = {"source": "cifar10"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    result = invoke("cv", cfg, "--results-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert "--data PATH or the CNN_CIFAR_DATA environment variable" in one_error_line(result)


def test_a_missing_data_path_is_named_once_by_where_it_came_from(tmp_path, tiny_config, monkeypatch):
    result = invoke("cv", tiny_config, "--data", "/no/such.npz")
    assert one_error_line(result) == "Error: --data: /no/such.npz: no such file or directory"
    monkeypatch.setenv("CNN_CIFAR_DATA", "/no/such.npz")
    assert one_error_line(invoke("cv", tiny_config)).startswith("Error: CNN_CIFAR_DATA: /no/such.npz")


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"x\x00\x01\xff", "not UTF-8 text (byte 0xff at offset 3)"),
        (("a: " + "[" * 50_000 + "]" * 50_000).encode(), "nested too deeply"),
    ],
)
def test_unreadable_configs_are_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    result = invoke("cv", path, "--results-dir", tmp_path / "r")
    assert result.exit_code == 2 and expected in one_error_line(result)


def test_saved_config_repeats_the_run(tmp_path, tiny_config, monkeypatch):
    result = invoke(
        "cv", tiny_config, "--results-dir", tmp_path / "r", "--set", "train.epochs=1", "--subset", 60
    )
    (run,) = (tmp_path / "r").iterdir()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["subset"] == 60 and os.path.isabs(saved["data"]["path"])
    monkeypatch.chdir(tmp_path)
    again = invoke("cv", run / "config.yaml", "--results-dir", tmp_path / "again")
    assert again.exit_code == 0
    (rerun,) = (tmp_path / "again").iterdir()
    assert (
        json.loads((rerun / "cv.json").read_text())["fold_accuracies"]
        == json.loads((run / "cv.json").read_text())["fold_accuracies"]
    )
    assert result.exit_code == 0


def test_search_space_mistakes_come_before_the_data(tmp_path, tiny_config):
    raw = yaml.safe_load(tiny_config.read_text())
    raw["data"]["path"] = "/no/such.npz"  # would fail if it were read first
    raw["search"] = {"space": {"conv1__kernal": [3]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert "search.space.conv1__kernal: no such setting" in one_error_line(invoke("search", path))


# --------------------------------------------------------------------------- the machine


@pytest.mark.parametrize("command", ["cv", "evaluate", "search"])
def test_results_dir_under_a_file_is_refused_before_the_data_is_read(tmp_path, tiny_config, command):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke(command, tiny_config, "--results-dir", blocker / "results")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: --results-dir {blocker / 'results'}: {blocker} is a file, not a folder"
    ]
    assert not (tmp_path / "cache").exists()  # nothing decoded


def test_full_disk_leaves_no_temporary_file_and_a_failed_record(tmp_path, tiny_config, monkeypatch):
    real = files.os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if ".config." in os.readlink(f"/proc/self/fd/{fd}"):  # run.json written, config.yaml is not
            raise OSError(28, "No space left on device")
        return real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    result = invoke("cv", tiny_config, "--results-dir", tmp_path / "r")
    assert result.exit_code == 1 and "No space left on device" in one_error_line(result)
    (run,) = (tmp_path / "r").iterdir()
    assert not [p for p in run.iterdir() if ".tmp" in p.name]
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_atomic_path_removes_its_temporary_file_when_the_write_fails(tmp_path):
    with pytest.raises(OSError), files.atomic_path(tmp_path / "x.json") as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_evaluate_best_skips_an_unreadable_run_json(tmp_path, tiny_config):
    results = tmp_path / "r"
    (results / "torn").mkdir(parents=True)
    (results / "torn" / "run.json").write_text('{"command": "sea')
    result = invoke("evaluate", "--best", "--results-dir", results)
    assert result.exit_code == 2 and "no finished search run here" in one_error_line(result)


def test_predict_with_a_missing_model_fails_before_loading_tensorflow(tmp_path):
    code = (
        "import sys; from click.testing import CliRunner; from cnn_cifar.cli import main; "
        "r = CliRunner().invoke(main, ['predict', 'missing.keras', 'x.png']); "
        "print(r.exit_code, 'tensorflow' in sys.modules); print(r.output)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.splitlines()[0] == "2 False", out.stdout + out.stderr
    assert "Error: missing.keras: no such model file" in out.stdout


def test_run_json_records_the_versions(tmp_path, tiny_config):
    invoke("cv", tiny_config, "--results-dir", tmp_path / "r", "--set", "train.epochs=1")
    (info,) = run_records(tmp_path / "r")
    assert {"cnn-cifar", "keras", "tensorflow", "scikit-learn"} <= set(info["machine"])


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_of_the_parent_ends_its_workers_within_seconds(tmp_path, tiny_config):
    env = {**os.environ, "CNN_CIFAR_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnn_cifar.cli",
            "cv",
            str(tiny_config),
            "--jobs",
            "2",
            "--results-dir",
            str(tmp_path / "r"),
            "--set",
            "train.epochs=100000",
            "--set",
            "train.early_stopping=null",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(workers) < 2:
            time.sleep(1)
            workers = [p for p in children(proc.pid) if "loky" in _cmdline(p)]
        assert len(workers) >= 2, "the workers did not start"
        time.sleep(8)  # they import TensorFlow and start fitting
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 15
        while time.time() < deadline and any(alive(p) for p in workers):
            time.sleep(0.5)
        assert not any(alive(p) for p in workers)
    finally:  # a failed check leaves nothing training
        for pid in [proc.pid, *workers]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


# --------------------------------------------------------------------------- conventions


def test_a_statistic_that_does_not_exist_is_nan():
    from cnn_cifar.search.render import _mean_std

    mean, std = _mean_std([0.61])  # a candidate dropped after one fold
    assert mean == 0.61 and np.isnan(std)
    assert all(np.isnan(_mean_std([])))


def test_cv_progress_shows_the_mean_of_the_folds_not_a_best(tmp_path, tiny_config):
    result = invoke("cv", tiny_config, "--results-dir", tmp_path / "r", "--set", "train.epochs=1")
    progress = [line for line in result.output.splitlines() if line.startswith("folds 2/2")]
    assert progress and "| mean 0." in progress[-1] and "best" not in progress[-1]


def test_a_worker_whose_parent_died_before_its_first_task_ends_at_once():
    # the command's pid travels with the task; a worker started late finds another parent
    code = "from cnn_cifar.runtime import exit_with_parent; exit_with_parent(1); import time; time.sleep(60)"
    start = time.time()
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 1 and time.time() - start < 30


@pytest.mark.parametrize("command", ["cv", "evaluate"])
@pytest.mark.parametrize(
    "spoil, words",
    [
        (
            lambda root: (root / "train/b/1.png").write_bytes(b"not a png"),
            "train/b/1.png: cannot decode image",
        ),
        (lambda root: [f.unlink() for f in (root / "train/b").iterdir()], "b has no training images"),
        (
            lambda root: Image.new("RGB", (9, 8)).save(root / "test/a/1.png"),
            "test/a/1.png: image is 9x8, expected 8x8",
        ),
    ],
    ids=["corrupt image", "empty class folder", "another size"],
)
def test_data_mistakes_found_while_decoding_leave_no_run_folder(tmp_path, command, spoil, words):
    """Exit 2 means no run folder: the data is decoded and checked before one is made."""
    root = tmp_path / "images"
    x, y = make_images(60, size=8, n_classes=2)
    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            folder = root / split / "ab"[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    spoil(root)
    config = write_config(tmp_path / "c.yaml", root)
    result = invoke(command, config, "--data", root, "--results-dir", tmp_path / "r")
    assert result.exit_code == 2 and words in one_error_line(result)
    assert not (tmp_path / "r").exists() or run_records(tmp_path / "r") == []


def test_a_model_too_large_for_this_machine_is_refused_before_anything_runs(tmp_path, tiny_config):
    # 68 x 1e9 weights in the hidden layer alone: far past any machine's memory
    result = invoke("cv", tiny_config, "--set", "hidden.units=1000000000", "--results-dir", tmp_path / "r")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith(f"Error: {tiny_config}: model: one fit needs at least ")
    assert "(parameters 68,000,000,115, " in line and "GiB available" in line
    assert not (tmp_path / "r").exists()


def test_dry_run_prints_each_candidates_memory_and_refuses_one_too_large(tmp_path, tiny_npz):
    search = {"n_iter": 2, "space": {"hidden__units": [8, 1000000000]}, "strategy": "random"}
    config = write_config(tmp_path / "s.yaml", tiny_npz, search=search)
    result = invoke("search", config, "--dry-run")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "memory per fit at least " in text and "(1 cannot run)" in text
    assert "INVALID (cannot run): model: one fit needs at least" in text

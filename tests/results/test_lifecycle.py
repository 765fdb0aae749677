"""Every way a training command ends, for cv, evaluate and search: the exit status the
README states and a truthful run.json (runs.Run is the one lifecycle they share).

    0    finished      2    a user's mistake, before any run folder exists
    1    failed        130  interrupted (Ctrl-C or SIGTERM)
    SIGKILL: nothing can be written; `report` records the run stale, never running.

Signals are sent to a real `cnn-cifar` process while it trains (tiny data, many epochs).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import yaml
from conftest import CliProcess, invoke, tiny_raw

from cnn_cifar.training import estimator

COMMANDS = ("cv", "evaluate", "search")
LONG = ["--set", "train.epochs=100000", "--set", "train.early_stopping=null"]


@pytest.fixture
def config(tmp_path, tiny_npz):
    raw = tiny_raw(tiny_npz)
    raw["search"] = {"strategy": "random", "n_iter": 2, "space": {"hidden__units": [4, 8]}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def only_run(results):
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    return run, json.loads((run / "run.json").read_text())


@pytest.mark.parametrize("command", COMMANDS)
def test_success_records_finished_exit_0(tmp_path, config, command):
    result = invoke(command, config, "--results-dir", tmp_path / "r", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    _run, info = only_run(tmp_path / "r")
    assert info["status"] == "finished" and info["pid"] == os.getpid() and info["host"]
    assert info["wall_time_s"] >= 0 and info["ended"] >= info["started"]


@pytest.mark.parametrize("command", COMMANDS)
def test_config_error_exit_2_and_no_run_folder(tmp_path, config, command):
    result = invoke(command, config, "--results-dir", tmp_path / "r", "--set", "conv1.kernal=3")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --set: conv1.kernal: no such setting (did you mean kernel?); conv1 (conv) takes "
        "filters, kernel, strides, padding, activation, use_bias, init"
    ]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_exception_in_training_records_failed_exit_1(tmp_path, config, command, monkeypatch):
    def boom(self, X, y, callbacks=None):
        raise RuntimeError("boom in\ntraining")

    monkeypatch.setattr(estimator.CNNClassifier, "fit", boom)
    result = invoke(command, config, "--results-dir", tmp_path / "r", "--set", "train.epochs=1")
    assert result.exit_code == 1
    run, info = only_run(tmp_path / "r")
    assert info["status"] == "failed"
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and str(run / "log.txt") in last
    if command == "search":  # a fit that raises is recorded; every candidate failed
        assert info["error"].startswith("RuntimeError: every candidate failed")
        assert "RuntimeError: boom in training" in (run / "cv_results.csv").read_text()
    else:
        assert info["error"] == "RuntimeError: boom in training"
        assert "Traceback" in (run / "log.txt").read_text()


def process(command, config, results, env) -> CliProcess:
    """`cnn-cifar COMMAND CONFIG` training long enough to be signalled mid-fit."""
    return CliProcess(command, config, "--results-dir", results, *LONG, env=env)


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "CNN_CIFAR_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("sig, name", [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")])
def test_ctrl_c_and_sigterm_record_interrupted_exit_130(tmp_path, config, env, command, sig, name):
    results = tmp_path / "r"
    p = process(command, config, results, env).wait_training()
    p.proc.send_signal(sig)
    err = p.finish()
    assert p.proc.returncode == 130, err
    run, info = only_run(results)
    assert info["status"] == "interrupted" and info["signal"] == name
    assert err.strip().splitlines()[-1] == "Error: interrupted"
    assert "Traceback" not in err
    if command == "search":
        assert f"cnn-cifar search --resume {run}" in err


def test_sigkill_then_report_shows_stale(tmp_path, config, env):
    results = tmp_path / "r"
    p = process("cv", config, results, env).wait_training()
    p.proc.kill()
    p.finish()
    run, info = only_run(results)
    assert info["status"] == "running" and info["pid"] == p.proc.pid
    result = invoke("report", "--results-dir", results)
    assert result.exit_code == 0
    (row,) = [line for line in result.output.splitlines() if run.name in line]
    assert row.split()[-1] == "stale"
    assert json.loads((run / "run.json").read_text())["status"] == "stale"  # and so it is recorded


def test_a_sigterm_reaches_the_hosts_own_handler_once_the_run_is_recorded(tmp_path):
    """A test runner or a user's script that runs a command in its own process keeps its
    SIGTERM handler: called after run.json says interrupted, so the host can stop too."""
    from cnn_cifar.results.runs import Run

    heard = []

    def host(signum, frame):
        heard.append((signum, only_run(tmp_path)[1]["status"]))

    previous = signal.signal(signal.SIGTERM, host)
    try:
        with pytest.raises(KeyboardInterrupt), Run(tmp_path, "cv", "t"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives within it
        assert heard == [(signal.SIGTERM, "interrupted")]
        assert signal.getsignal(signal.SIGTERM) is host
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_wall_time_of_a_resumed_run_counts_every_leg(tmp_path):
    from cnn_cifar.results.runs import Run

    with Run(tmp_path, "search", "t") as run:
        time.sleep(0.3)
    with Run(tmp_path, "search", "t", resume=run.dir):
        time.sleep(0.3)
    info = json.loads((run.dir / "run.json").read_text())
    assert info["status"] == "finished" and info["wall_time_s"] >= 0.6 and "resumed" in info

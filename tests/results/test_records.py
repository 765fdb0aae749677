"""run.json tells the truth on every way a run can end, with real processes and real files:
a leg killed with SIGKILL is written down as stale (its start, its last-known time, that
time counted into wall_time_s) by the next resume or report, which also remove what it
left; a folder made unwritable during a run still ends with its outcome recorded, or, where
the disk refuses every write, with one line saying so; a results folder that cannot hold
run folders is refused before any data is read."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import (
    CliProcess as Cli,
    cli_command,
    invoke,
    search_before_move,
    wait_for_first_fit,
    write_config,
    write_npz,
)

from cnn_cifar.commands.report import gather
from cnn_cifar.results import run_record

LONG = ["--set", "train.epochs=100000", "--set", "train.early_stopping=null"]
SEARCH = {"strategy": "random", "n_iter": 2, "random_state": 1, "space": {"hidden__units": [4, 8]}}
PR_CAPBSET_DROP = 24  # prctl(2)


def record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def only_run(results: Path) -> Path:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    return run


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "CNN_CIFAR_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}


# --------------------------------------------------------------------------- SIGKILL


def test_a_killed_leg_is_recorded_stale_with_its_time_when_the_search_resumes(tmp_path, env):
    config = write_config(tmp_path / "c.yaml", write_npz(tmp_path / "tiny.npz"), search=SEARCH)
    results = tmp_path / "r"
    p = Cli("search", config, "--results-dir", results, "--set", "train.epochs=30", env=env)
    wait_for_first_fit(p.proc, results)
    time.sleep(1)
    p.proc.kill()
    p.finish()
    run = only_run(results)
    killed = record(run)
    assert killed["status"] == "running" and (run / ".reserve").exists()

    done = subprocess.run([*cli_command(), "search", "--resume", str(run)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr[-3000:]
    info = record(run)
    assert info["status"] == "finished"
    (leg,) = info["earlier_outcomes"]
    assert list(leg) == ["status", "started", "last_seen", "pid"]
    assert leg["status"] == "stale" and leg["started"] == killed["started"] and leg["pid"] == p.proc.pid
    known = seconds(leg["last_seen"]) - seconds(leg["started"])
    assert known >= 1  # a fit was saved after the start, and the process ran on for a second
    resumed = seconds(info["ended"]) - seconds(info["resumed"])
    assert info["wall_time_s"] >= known + resumed - 2  # both legs, to the second
    assert not (run / ".reserve").exists() and not list(run.rglob(".*.tmp*"))


def test_a_killed_run_is_recorded_stale_by_report_without_figures_and_its_leftovers_go(tmp_path, env):
    config = write_config(tmp_path / "c.yaml", write_npz(tmp_path / "tiny.npz"))
    results = tmp_path / "r"
    p = Cli("evaluate", config, "--results-dir", results, *LONG, env=env).wait_training()
    time.sleep(1)
    p.proc.kill()
    p.finish()
    run = only_run(results)
    # what a kill while the model and metrics are saved leaves: a half-written model and a
    # metrics file of a run that never finished
    (run / f".model.{p.proc.pid}.0a1b2c3d.tmp.keras").write_bytes(b"half a model")
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "macro_f1": 0.9, "epochs": 3}))
    assert record(run)["status"] == "running"

    report = subprocess.run(
        [*cli_command(), "report", "--results-dir", str(results)], env=env, capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    info = record(run)
    assert info["status"] == "stale" and info["last_seen"] >= info["started"]
    assert info["wall_time_s"] == pytest.approx(seconds(info["last_seen"]) - seconds(info["started"]), abs=1)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".lock"]
    assert not list(run.rglob(".*.tmp*"))  # TensorBoard's half-written fit folder too
    (said,) = [line for line in report.stderr.splitlines() if run.name in line]
    assert said.startswith(
        f"{run.name}: its process is gone: recorded stale, last seen {info['last_seen']}; "
        f"removed what it left: .reserve, .model.{p.proc.pid}.0a1b2c3d.tmp.keras"
    )
    (row,) = gather(results)
    assert row["status"] == "stale" and row["test_accuracy"] == "" and row["macro_f1"] == ""
    again = invoke("report", "--results-dir", results)
    assert again.exit_code == 0 and record(run) == info  # once settled, left alone


def test_a_search_killed_before_this_record_existed_resumes_and_reports(tmp_path):
    """A run folder of an older version killed with SIGKILL: run.json still says running
    (pid of a process gone, another host); a resume writes its leg down as stale."""
    data = write_npz(tmp_path / "tiny.npz")
    run = search_before_move(tmp_path / "results", data)
    info = record(run)
    for key in ("ended", "wall_time_s", "signal"):
        info.pop(key)
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    last = seconds("2026-12-04T08:53:07")  # its newest file: 10 s after its start
    for path in run.rglob("*"):
        os.utime(path, (last - 5, last - 5))
    os.utime(run / "fits" / "c000_f1.json", (last, last))

    (row,) = gather(tmp_path / "results")
    assert row["status"] == "running"  # recorded on another host: report cannot tell
    blocker = tmp_path / "file"
    blocker.write_text("")  # a results folder it cannot use: a resume makes no run folder there
    result = invoke(
        "search", "--resume", run, "--no-tensorboard", env={"CNN_CIFAR_RESULTS": str(blocker / "r")}
    )
    assert result.exit_code == 0, result.output
    info = record(run)
    assert info["status"] == "finished"
    assert info["earlier_outcomes"] == [
        {"status": "stale", "started": "2026-12-04T08:52:57", "last_seen": "2026-12-04T08:53:07", "pid": 3403}
    ]
    assert info["wall_time_s"] >= 10
    (row,) = gather(tmp_path / "results")
    assert row["status"] == "finished" and row["cv_mean"] != ""


# --------------------------------------------------------------------------- permissions


def _without_root_file_powers() -> None:
    """In a root child before it runs the CLI: drop the capabilities that let root ignore
    file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from its bounding set,
    so the program it executes obeys chmod as any user does."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def modes_obeyed():
    """How to start a CLI process that file modes bind: as it is for a user, with root's
    file powers dropped for root (skipped where this machine refuses that)."""
    if os.geteuid() != 0:
        return None
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_without_root_file_powers, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"root cannot drop its file capabilities here, and ignores chmod: {e}")
    return _without_root_file_powers


def test_a_run_folder_made_read_only_mid_run_still_records_its_outcome(tmp_path, env, modes_obeyed):
    config = write_config(tmp_path / "c.yaml", write_npz(tmp_path / "tiny.npz"))
    results = tmp_path / "r"
    p = Cli(
        "cv",
        config,
        "--results-dir",
        results,
        "--no-tensorboard",
        "--set",
        "train.epochs=40",
        env=env,
        then=modes_obeyed,
    )
    p.wait_training()
    run = only_run(results)
    os.chmod(run, 0o555)  # as its owner would: the cv.json at its end cannot be made
    err = p.finish()
    assert p.proc.returncode == 1, err
    info = record(run)
    assert info["status"] == "failed" and "Permission denied" in info["error"]
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: ") and last.endswith("Permission denied"), err
    assert ".reserve" not in err and "Traceback" not in err
    assert (run / ".reserve").exists()  # the folder keeps it; the next report removes it
    os.chmod(run, 0o755)
    report = subprocess.run(
        [*cli_command(), "report", "--results-dir", str(results)], env=env, capture_output=True, text=True
    )
    assert report.returncode == 0 and not (run / ".reserve").exists()
    assert f"{run.name}: removed what it left: .reserve" in report.stderr


def test_a_record_the_os_refuses_is_one_line_and_reads_stale(tmp_path, env, modes_obeyed):
    config = write_config(tmp_path / "c.yaml", write_npz(tmp_path / "tiny.npz"))
    results = tmp_path / "r"
    p = Cli("cv", config, "--results-dir", results, "--no-tensorboard", *LONG, env=env, then=modes_obeyed)
    p.wait_training()
    run = only_run(results)
    os.chmod(run / "run.json", 0o444)  # neither a new run.json nor this one can be written
    os.chmod(run, 0o555)
    p.proc.send_signal(signal.SIGTERM)
    err = p.finish()
    assert p.proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        f"Error: interrupted; the outcome (interrupted) could not be recorded in {run / 'run.json'}: "
        "Permission denied; report reads the run as stale once this process is gone"
    )
    assert record(run)["status"] == "running"  # nothing could be written
    assert run_record.status(run_record.read_record(run)) == "stale"
    os.chmod(run, 0o755)
    os.chmod(run / "run.json", 0o644)
    assert invoke("report", "--results-dir", results).exit_code == 0
    assert record(run)["status"] == "stale" and not (run / ".reserve").exists()


# --------------------------------------------------------------------------- results folder


@pytest.mark.parametrize("command", ["cv", "evaluate", "search"])
def test_an_unwritable_results_folder_is_refused_before_the_data_is_read(
    tmp_path, env, modes_obeyed, command
):
    config = write_config(tmp_path / "c.yaml", write_npz(tmp_path / "tiny.npz"))
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    args = [command, config, "--results-dir", locked / "results"]
    done = subprocess.run(
        [*cli_command(), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=modes_obeyed,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: --results-dir {locked / 'results'}: cannot write in {locked}: Permission denied"
    ]
    assert not (tmp_path / "cache").exists()  # nothing decoded


def test_a_results_folder_from_the_environment_is_named_by_its_variable(tmp_path, tiny_config):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("cv", tiny_config, env={"CNN_CIFAR_RESULTS": str(blocker / "sub")})
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"Error: CNN_CIFAR_RESULTS={blocker / 'sub'}: {blocker} is a file, not a folder"
    )


def test_a_dry_run_writes_nothing_so_its_results_folder_is_not_checked(tmp_path):
    config = write_config(tmp_path / "c.yaml", write_npz(tmp_path / "tiny.npz"), search=SEARCH)
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("search", config, "--dry-run", "--results-dir", blocker / "sub")
    assert result.exit_code == 0, result.output

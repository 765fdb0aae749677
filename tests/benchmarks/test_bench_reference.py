"""The speedrun's reference, airbench94 itself (benchmarks/reference.py): its timer of
airbench's own brackets, its one-line refusals and skip, and (with the reference extra) one
training on the project's arrays."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, write_npz

from benchmarks import reference
from benchmarks.cli import options
from benchmarks.speedrun import run_speedrun
from cnn_cifar.core.vocabulary import DATA_ENV

ROOT = REPO


def test_speedrun_without_the_extra_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(reference, "available", lambda: False)
    monkeypatch.setenv(DATA_ENV, "cifar10.npz")  # the data is not read: skipped first
    errors: list = []
    args = options(["--smoke", "--only", "speedrun"])
    assert run_speedrun(args, args.budget, errors) is None and errors == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'speedrun: skipped: the reference extra is not installed (pip install -e ".[reference]": '
        "torch and airbench)"
    ]


def test_timed_event_times_the_brackets_airbench_records(monkeypatch):
    Event = reference.TimedEvent
    monkeypatch.setattr(Event, "cuda_event", None)  # on the CPU: the wall clock
    Event.INTERVALS.clear()
    start, end = Event(enable_timing=True), Event(enable_timing=True)
    start.record()
    sum(i * i for i in range(200000))  # CPU work between the marks
    end.record()
    ms = start.elapsed_time(end)
    ((wall, cpu),) = Event.INTERVALS
    assert ms == pytest.approx(1e3 * wall) and wall > 0 and cpu > 0


def test_on_cuda_the_timed_event_reports_the_real_events_time(monkeypatch):
    class FakeCudaEvent:  # torch.cuda.Event's interface: GPU milliseconds between records
        def __init__(self, enable_timing=False):
            self.recorded = False

        def record(self, stream=None):
            self.recorded = True

        def elapsed_time(self, end):
            return 250.0

    Event = reference.TimedEvent
    monkeypatch.setattr(Event, "cuda_event", FakeCudaEvent)
    Event.INTERVALS.clear()
    start, end = Event(), Event()
    start.record()
    end.record()
    assert start.event.recorded and end.event.recorded
    assert start.elapsed_time(end) == pytest.approx(250.0)
    assert Event.INTERVALS[0][0] == pytest.approx(0.25)


def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(reference, "available", lambda: True)
    monkeypatch.setattr(reference, "cuda_available", lambda: False)
    assert reference.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchmarks.reference: --device cuda:") and "\n" not in err


def test_bench_device_cuda_without_a_gpu_stops_before_any_training(monkeypatch, capsys):
    monkeypatch.setattr(reference, "available", lambda: True)
    monkeypatch.setattr(reference, "cuda_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        options(["--only", "speedrun", "--device", "cuda"])
    assert stop.value.code == 2
    assert "--device cuda: torch sees no CUDA GPU" in capsys.readouterr().err


def test_reference_trains_on_the_cpu_from_the_projects_arrays(tmp_path):
    # a process of its own, as the bench runs it (airbench imports only with its stand-ins)
    if not reference.available():
        pytest.skip(reference.EXTRA)
    data = write_npz(tmp_path / "c.npz", n_train=1100, n_test=200, size=32, n_classes=10)
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.reference", "--data", str(data), "--epochs", "2"],
        cwd=ROOT,  # `-m` from the checkout's root, as the README runs it
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


def test_reference_script_skips_in_one_line_without_the_extra(monkeypatch, capsys):
    monkeypatch.setattr(reference, "available", lambda: False)
    assert reference.main(["--smoke"]) == 0
    assert capsys.readouterr().out.strip() == f"benchmarks.reference: skipped: {reference.EXTRA}"

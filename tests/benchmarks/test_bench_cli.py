"""The benchmark's command line: variants, the parts and budgets it resolves (--smoke),
where the JSON goes, its mistakes in one line, and how a failed part fails the run."""

import json

import pytest
from conftest import REPO

from benchmarks import memory, search, speedrun, throughput
from benchmarks.cli import main, options, output_folder, parse_variant, result_path
from benchmarks.settings import BUDGETS, DEFAULT_PARTS, PARTS
from cnn_cifar.core.vocabulary import DATA_ENV

ROOT = REPO


@pytest.fixture(autouse=True)
def _data_from_the_environment(monkeypatch):
    """--data's default: these tests read options only (or stub the parts), never the data."""
    monkeypatch.setenv(DATA_ENV, "cifar10.npz")


def test_parse_variant():
    assert parse_variant("f32:train.precision=float32,train.steps_per_execution=1") == (
        "f32",
        {"train.precision": "float32", "train.steps_per_execution": 1},
    )
    assert parse_variant("t1:threads=1") == ("t1", {"threads": 1})
    with pytest.raises(Exception, match="expected"):
        parse_variant("bad:train.precision")


def test_unknown_part_is_an_error(capsys):
    with pytest.raises(SystemExit):
        main(["--only", "speed"])
    assert "unknown part" in capsys.readouterr().err


def test_smoke_options():
    args = options(["--smoke"])
    assert args.parts == list(PARTS)  # every part
    assert args.budget == BUDGETS["smoke"]
    assert args.budget["rounds"] == 1 and args.budget["epochs"] == 2
    assert args.budget["search"]["n_iter"] == 3 and args.budget["search"]["cv"] == 2
    assert max(args.budget["slice"].values()) <= 500
    out = output_folder(args)
    assert out != ROOT / "results" and "bench-smoke-" in out.name  # a temporary folder
    out.rmdir()
    assert options([]).budget == BUDGETS["default"]
    assert options([]).parts == list(DEFAULT_PARTS) == ["throughput", "memory", "search"]
    assert options(["--only", "speedrun", "--seeds", "3,4"]).seeds == [3, 4]
    assert output_folder(options([])) == ROOT / "results"
    assert options(["--smoke", "--rounds", "2"]).budget["rounds"] == 2


def test_smoke_result_file_cannot_pass_for_a_benchmark(tmp_path):
    from datetime import datetime

    when = datetime(2025, 1, 2, 3, 4, 5)
    assert result_path(tmp_path, when, smoke=True).name == "bench-smoke-2025-01-02_03-04-05.json"
    assert result_path(tmp_path, when, smoke=False).name == "bench-2025-01-02_03-04-05.json"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--smoke", "--quick"], "not allowed with"),
        (["--search-strategies", "racing,fastest"], "unknown fastest"),
        (["--models", "nonesuch"], "no configs/nonesuch.yaml"),
        (["--variant", "bad:train.precision"], "expected name:key=value"),
    ],
)
def test_bad_options_are_errors(capsys, argv, message):
    with pytest.raises(SystemExit):
        options(argv)
    assert message in capsys.readouterr().err


def _stub_parts(monkeypatch, run_throughput):
    monkeypatch.setattr(throughput, "run_throughput", run_throughput)
    monkeypatch.setattr(memory, "run_memory", lambda args, budget, errors: None)
    monkeypatch.setattr(search, "run_search", lambda args, budget, errors: None)
    monkeypatch.setattr(speedrun, "run_speedrun", lambda args, budget, errors: None)


@pytest.mark.parametrize("failure", ["reported", "raised"])
def test_a_failed_part_fails_the_run(monkeypatch, tmp_path, tiny_npz, capsys, failure):
    def failing_throughput(args, budget, errors):
        if failure == "raised":
            raise NameError("name 'args' is not defined")
        errors.append("throughput final baseline: the worker died (exit code 1)")

    _stub_parts(monkeypatch, failing_throughput)
    assert main(["--smoke", "--data", str(tiny_npz), "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ERRORS (1)" in out
    written = list(tmp_path.glob("bench-smoke-*.json"))
    assert len(written) == 1 and len(json.loads(written[0].read_text())["errors"]) == 1


def test_a_run_without_errors_exits_0(monkeypatch, tmp_path, tiny_npz):
    _stub_parts(monkeypatch, lambda args, budget, errors: None)
    assert main(["--smoke", "--data", str(tiny_npz), "--out", str(tmp_path)]) == 0


def test_data_is_required_without_the_environment_variable(monkeypatch, capsys):
    monkeypatch.delenv(DATA_ENV)
    with pytest.raises(SystemExit) as stop:
        options(["--smoke"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("--data: required unless CNN_CIFAR_DATA is set")
    assert str(options(["--smoke", "--data", "x.npz"]).data) == "x.npz"


def test_data_defaults_to_the_environment_variable():
    assert str(options([]).data) == "cifar10.npz"

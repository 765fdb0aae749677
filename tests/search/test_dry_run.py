"""How many candidates a search may plan: search.n_iter is bounded (one line, exit 2, before
the data is looked at, in --dry-run and in a real search alike), a long --dry-run sums its
candidates up instead of printing a layer table for each, and planning reads what is the
same for every candidate once. No test here times anything: each counts."""

from __future__ import annotations

import re

import pytest
from conftest import invoke, write_config

from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.loader import load_config
from cnn_cifar.config.schema import MAX_N_ITER
from cnn_cifar.search import candidates as cands, space as sp

SPACE = {
    "conv1__filters": [2, 4],
    "pool1__size": [2, 16],  # 16 cannot fit the 8x8 map conv1 leaves of an 8x8 image
    "hidden__units": {"randint": [4, 16]},
}
INVALID = "pool1: pool size 16 is larger than the 8x8 feature map"


def search_config(tmp_path, tiny_npz, n_iter: int, name: str = "tiny.yaml"):
    block = {"strategy": "random", "n_iter": n_iter, "random_state": 1, "space": SPACE}
    return write_config(tmp_path / name, tiny_npz, search=block)


@pytest.fixture
def nothing_drawn(monkeypatch):
    """Fails the test if candidates are drawn or the data is probed or decoded."""

    def refuse(*args, **kwargs):
        raise AssertionError("a refused search must not draw candidates or read its data")

    monkeypatch.setattr(sp, "sample", refuse)
    monkeypatch.setattr(cands, "sample", refuse)
    monkeypatch.setattr("cnn_cifar.commands.search.probe", refuse)
    monkeypatch.setattr("cnn_cifar.search.runner.load_checked", refuse)


def one_line_refusal(result, where: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith(f"Error: {where}")
    assert "search.n_iter" in line and f"at most {MAX_N_ITER:,}" in line and "fold" in line
    return line


@pytest.mark.parametrize("extra", [["--dry-run"], []])
def test_a_million_candidates_from_set_is_refused_in_one_line(tmp_path, tiny_npz, nothing_drawn, extra):
    cfg = search_config(tmp_path, tiny_npz, 3)
    result = invoke(
        "search", cfg, "--set", "search.n_iter=1000000", "--results-dir", tmp_path / "results", *extra
    )
    line = one_line_refusal(result, "--set search.n_iter=1000000: ")
    assert "1,000,000 candidates" in line
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("extra", [["--dry-run"], []])
def test_a_million_candidates_in_the_file_is_refused_in_one_line(tmp_path, tiny_npz, nothing_drawn, extra):
    cfg = search_config(tmp_path, tiny_npz, 1_000_000, name="huge.yaml")
    result = invoke("search", cfg, "--results-dir", tmp_path / "results", *extra)
    one_line_refusal(result, f"{cfg}: search.n_iter: ")
    assert not (tmp_path / "results").exists()


def test_the_bound_is_inclusive(tmp_path, tiny_npz):
    cfg = search_config(tmp_path, tiny_npz, 3)
    assert load_config(cfg, [f"search.n_iter={MAX_N_ITER}"]).search_block().n_iter == MAX_N_ITER
    with pytest.raises(ConfigError, match=f"at most {MAX_N_ITER:,}"):
        load_config(cfg, [f"search.n_iter={MAX_N_ITER + 1}"])


@pytest.mark.filterwarnings("ignore:The total space of parameters")
def test_a_grid_smaller_than_the_largest_n_iter_is_still_parameter_samplers():
    """Only lists: ParameterSampler draws without replacement, so the whole grid at most,
    in RandomizedSearchCV's order, for any allowed n_iter."""
    from sklearn.model_selection import ParameterSampler

    grid = {"a": [1, 2, 3], "b": [4, 5], "c": [6, 7, 8, 9]}
    expected = [dict(p) for p in ParameterSampler(grid, MAX_N_ITER, random_state=15)]
    assert sp.sample(grid, MAX_N_ITER, 15) == expected
    assert len(expected) == 24


@pytest.mark.parametrize("n_iter", [cands.LISTED_IN_FULL + 40, 10 * (cands.LISTED_IN_FULL + 40)])
def test_a_long_dry_run_lists_the_first_candidates_and_sums_up_the_rest(tmp_path, tiny_npz, n_iter):
    cfg = search_config(tmp_path, tiny_npz, n_iter)
    result = invoke("search", cfg, "--dry-run", "--results-dir", tmp_path / "results")
    assert result.exit_code == 0, result.output
    out = result.output
    full = cands.LISTED_IN_FULL
    assert len(re.findall(r"^candidate \d+ ", out, re.MULTILINE)) == full  # the first ones in full
    assert f"candidate {full} {{" in out and f"candidate {full + 1} {{" not in out
    assert len(re.findall(r"^total ", out, re.MULTILINE)) == out.count("  parameters ") - 1  # a table each
    summary = re.search(
        rf"^all {n_iter:,} candidates \(the first {full} are listed above\): (\d+) can run, (\d+) cannot$",
        out,
        re.MULTILINE,
    )
    assert summary is not None, out
    ok, bad = int(summary[1]), int(summary[2])
    assert ok + bad == n_iter and ok > 0 and bad > 0
    assert re.search(
        r"^  parameters [\d,]+ \(candidate \d+\) to [\d,]+ \(candidate \d+\)$", out, re.MULTILINE
    )
    assert re.search(r"^  multiply-accumulates per image [\d,]+ \(candidate \d+\) to ", out, re.MULTILINE)
    grouped = re.search(rf"^    ([\d,]+) \(candidates [\d, .]+\): {INVALID}", out, re.MULTILINE)
    assert grouped is not None and int(grouped[1].replace(",", "")) == bad  # one reason here
    assert not (tmp_path / "results").exists()


def test_the_summary_does_not_grow_with_the_count(tmp_path, tiny_npz):
    sizes = []
    for n_iter in (cands.LISTED_IN_FULL + 40, 10 * (cands.LISTED_IN_FULL + 40)):
        result = invoke("search", search_config(tmp_path, tiny_npz, n_iter), "--dry-run")
        assert result.exit_code == 0, result.output
        sizes.append(len(result.output.splitlines()))
    assert sizes[0] == sizes[1]


def test_a_short_dry_run_has_no_summary(tmp_path, tiny_npz):
    result = invoke("search", search_config(tmp_path, tiny_npz, cands.LISTED_IN_FULL), "--dry-run")
    assert result.exit_code == 0, result.output
    assert len(re.findall(r"^candidate \d+ ", result.output, re.MULTILINE)) == cands.LISTED_IN_FULL
    assert "are listed above" not in result.output


def test_planning_reads_the_machine_once_not_per_candidate(tmp_path, tiny_npz, monkeypatch):
    calls = []
    monkeypatch.setattr(cands, "available_memory", lambda: calls.append(1) or 2**40)
    cfg = load_config(search_config(tmp_path, tiny_npz, 50))
    space = sp.parse_space(cfg, "tiny.yaml")
    made = cands.make_candidates(cfg, space, (8, 8, 3), 3, "tiny.yaml")
    assert len(made) == 50 and len(calls) == 1
    assert any(not c.ok and c.reason and INVALID in c.reason for c in made)


def test_candidate_configs_do_not_share_their_data():
    """The per-candidate copy (space._copied) replaced copy.deepcopy: each candidate's raw
    config must still be its own, down to the layer dicts."""
    base = {"model": {"layers": [{"name": "a", "units": [1, 2]}]}, "train": {"epochs": 1}, "name": "x"}
    one = sp._copied(base)
    assert one == base
    one["model"]["layers"][0]["units"].append(3)
    one["train"]["epochs"] = 2
    assert base == {
        "model": {"layers": [{"name": "a", "units": [1, 2]}]},
        "train": {"epochs": 1},
        "name": "x",
    }

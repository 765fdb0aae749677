"""cnn-cifar search: the space parser, candidates and scores against scikit-learn's
RandomizedSearchCV, resume after SIGKILL, failed candidates and fits, Ctrl-C, --jobs 2,
a local dask cluster, --dry-run, racing and successive halving.

Everything trains on a generated 12x12x3, 3-class npz (90 training images) with 2-4 filter
models for 2 epochs; tests that only exercise the search machinery use a fake fit."""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import FIT_RECORDS, REPO, cli_command, invoke, local_dask_cluster, wait_for_first_fit

from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.loader import load_config, validate
from cnn_cifar.core.files import read_json
from cnn_cifar.core.vocabulary import CandidateStatus
from cnn_cifar.data.dataset import dataset, resolve_data
from cnn_cifar.results.runs import list_runs
from cnn_cifar.search import executors, oracles, space as sp
from cnn_cifar.search.candidates import make_candidates
from cnn_cifar.search.journal import FitJournal, load_fits, load_spec
from cnn_cifar.search.oracles import Fit, RacingOracle
from cnn_cifar.training.folds import cv_splits

SPACE = {
    "conv1__filters": [2, 4],
    "pool2__size": [2, 8],  # 8 cannot fit a 6x6 map
    "hidden__units": {"randint": [4, 16]},
    "train__optimizer__learning_rate": {"loguniform": [0.1, 1.0]},
}
TINY = {
    "name": "tiny",
    "model": {
        "layers": [
            {
                "name": "conv1",
                "type": "conv",
                "filters": 2,
                "kernel": 3,
                "padding": "same",
                "activation": "relu",
            },
            {"name": "pool1", "type": "pool", "size": 2},
            {
                "name": "conv2",
                "type": "conv",
                "filters": 2,
                "kernel": 3,
                "padding": "same",
                "activation": "relu",
            },
            {"name": "pool2", "type": "pool", "size": 2},
            {"name": "hidden", "type": "dense", "units": 8, "activation": "relu"},
        ]
    },
    "train": {
        "optimizer": {"name": "adadelta", "learning_rate": 1.0},
        "epochs": 2,
        "batch_size": 4,
        "validation_split": 0.0,
        "seed": 15,
    },
    "cv": {"n_splits": 2, "test_size": 0.25, "random_state": 15},
    # random_state 1 draws 3 candidates of which c002 has pool2 size 8: 2 run, 1 fails
    "search": {"strategy": "random", "n_iter": 3, "random_state": 1, "space": SPACE},
}


def make_npz(path: Path, n_train=90, n_test=30, size=12, seed=0) -> None:
    rng = np.random.default_rng(seed)

    def part(n):
        y = np.arange(n) % 3
        rng.shuffle(y)
        colour = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])[y][:, None, None, :]
        x = np.clip(colour + rng.normal(0, 50, (n, size, size, 3)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)

    (xtr, ytr), (xte, yte) = part(n_train), part(n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    make_npz(root / "tiny.npz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNN_CIFAR_CACHE", str(root / "cache"))
        for var in ("CNN_CIFAR_DATA", "CNN_CIFAR_RESULTS"):
            mp.delenv(var, raising=False)
        yield root


def write_config(folder: Path, name="tiny.yaml", cv_block=None, **search) -> Path:
    raw = copy.deepcopy(TINY)
    raw["data"] = {"source": "npz", "path": str(folder / "tiny.npz")}
    raw["cv"].update(cv_block or {})
    raw["search"].update(search)
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def search_run(config: Path, results: Path, *extra) -> Path:
    result = invoke("search", config, "--results-dir", results, *extra)
    assert result.exit_code == 0, result.output
    return list_runs(results, "search")[-1]


def read_cv(run_dir: Path) -> list[dict]:
    with open(run_dir / "cv_results.csv") as f:
        return list(csv.DictReader(f))


def assert_same_search(a: Path, b: Path, atol=1e-6) -> None:
    """Same candidates, statuses, scores (within float noise) and best parameters."""
    rows_a, rows_b = read_cv(a), read_cv(b)
    assert [r["candidate"] for r in rows_a] == [r["candidate"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert {k: v for k, v in ra.items() if k.startswith("param_")} == {
            k: v for k, v in rb.items() if k.startswith("param_")
        }
        assert (ra["status"], ra["rank_test_score"]) == (rb["status"], rb["rank_test_score"])
        if ra["status"] == "completed":
            for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
                assert float(ra[key]) == pytest.approx(float(rb[key]), abs=atol)
    assert read_json(a / "best.json")["best_params"] == read_json(b / "best.json")["best_params"]


@pytest.fixture(scope="module")
def reference(env):
    """An uninterrupted random search, in this process: what the other runs must reproduce."""
    return search_run(write_config(env), env / "reference")


def fake_fit_one(
    params, data, train_idx, test_idx, scoring="accuracy", threads=None, callbacks=None, train_size=None
):
    """A fit without training: the score grows with hidden units and with images."""
    n = len(train_idx[:train_size]) if train_size else len(train_idx)
    units = params.model["layers"][4]["units"]
    return {
        "score": units / 100 + n / 10_000,
        "fit_time": 0.01,
        "score_time": 0.0,
        "epochs": 1,
        "n_train": n,
        "history": {},
    }


# --------------------------------------------------------------------------- the space


def tiny_config(space: dict):
    raw = copy.deepcopy(TINY)
    raw["data"] = {"source": "npz", "path": "tiny.npz"}
    raw["search"]["space"] = space
    return validate(raw, "tiny.yaml")


def test_space_distributions_follow_scipy_bounds():
    space = sp.parse_space(
        tiny_config(
            {
                "conv1__filters": [2, 4],
                "hidden__units": {"randint": [4, 16]},
                "train__optimizer__learning_rate": {"uniform": [0.1, 0.5]},
                "train__optimizer__weight_decay": {"loguniform": ["1e-4", 0.1]},  # YAML reads 1e-4 as text
            }
        ),
        "tiny.yaml",
    )
    assert space["conv1__filters"] == [2, 4]
    assert space["hidden__units"].support() == (4, 15)  # randint: high excluded
    assert space["train__optimizer__learning_rate"].support() == pytest.approx((0.1, 0.5))
    assert space["train__optimizer__weight_decay"].support() == pytest.approx((1e-4, 0.1))
    draws = space["hidden__units"].rvs(2000, random_state=0)
    assert draws.min() == 4 and draws.max() == 15


@pytest.mark.parametrize(
    "name, value, message",
    [
        (
            "hidden__units",
            {"normal": [0, 1]},
            "unknown distribution 'normal'; allowed: randint, uniform, loguniform",
        ),
        ("hidden__units", {"randint": [16, 4]}, "needs low < high"),
        ("hidden__units", {"randint": [4, 4]}, "high is excluded"),
        ("hidden__units", {"randint": [4.5, 16]}, "randint bounds must be integers"),
        ("hidden__units", {"randint": [4]}, "needs [low, high]"),
        ("hidden__units", {"randint": [4, 16], "uniform": [0, 1]}, "a distribution is one key"),
        ("train__optimizer__learning_rate", {"loguniform": [0, 1]}, "low must be > 0"),
        ("train__optimizer__learning_rate", {"uniform": ["a", 1]}, "bounds must be finite numbers"),
        ("hidden__units", {"uniform": [4, 16]}, "not allowed"),  # floats for an integer
        ("conv1__filters", [0, 2], "value 0 is not allowed"),
        ("conv1__filters", [], "empty list"),
        ("conv1__filters", 4, "is not a search space"),
        ("conv1__filters", "4", "is not a search space"),
        ("conv9__filters", [2], "a layer name (conv1, pool1, conv2, pool2, hidden), model or train"),
        ("conv2__kernal", [3], "conv2 (conv) takes filters, kernel"),
        ("conv2_kernel", [3], "no such setting"),
        ("train__batchsize", [4], "train takes optimizer, epochs, batch_size"),
        ("cv__n_splits", [2, 3], "no such setting"),
    ],
)
def test_space_rejects_bad_input(name, value, message):
    with pytest.raises(ConfigError) as err:
        sp.parse_space(tiny_config({name: value}), "tiny.yaml")
    text = str(err.value)
    assert text.startswith(f"tiny.yaml: search.space.{name}") and message in text
    assert "\n" not in text


def test_any_estimator_parameter_can_be_searched():
    space = {
        "train__batch_size": [4, 8],
        "train__epochs": {"randint": [1, 3]},
        "train__early_stopping__patience": [1, 2],
        "model__augment__flip": [True, False],
        "pool1__kind": ["max", "average"],
        "train__optimizer__name": ["adam", "sgd"],
        "train__validation_split": [0.2],
    }  # early stopping needs it; the base has 0
    cfg = tiny_config(space)
    cands = make_candidates(cfg, sp.parse_space(cfg, "tiny.yaml"), (12, 12, 3), 3, "tiny.yaml")
    assert all(c.ok for c in cands), [c.reason for c in cands]
    c = cands[0]
    assert c.config.train.batch_size == c.params["train__batch_size"]
    assert c.config.train.early_stopping.patience == c.params["train__early_stopping__patience"]
    assert c.config.model.augment.flip == c.params["model__augment__flip"]


def test_unknown_name_fails_before_anything_runs(env, tmp_path):
    cfg = write_config(env, "typo.yaml", space={"conv2__kernal": [3, 5]})
    result = invoke("search", cfg, "--results-dir", tmp_path / "results")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: {cfg}: search.space.conv2__kernal: no such setting (did you mean kernel?); "
        "conv2 (conv) takes filters, kernel, strides, padding, activation, use_bias, init"
    ]
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- candidates


@pytest.mark.parametrize("seed", [0, 15, 123])
def test_candidates_are_parameter_samplers(seed):
    from sklearn.model_selection import ParameterSampler

    cfg = load_config(REPO / "configs" / "search.yaml")
    space = sp.parse_space(cfg, "configs/search.yaml")
    expected = [
        {k: sp.native(v) for k, v in p.items()} for p in ParameterSampler(space, 10, random_state=seed)
    ]
    assert sp.sample(space, 10, seed) == expected
    assert all(50 <= p["hidden__units"] < 1000 for p in expected)


def test_rung_resources():
    assert oracles.rung_resources(9, 900, 3) == [100, 300, 900]  # exhaust: last rung = fold
    assert oracles.rung_resources(10, 900, 3) == [100, 300, 900]
    assert oracles.rung_resources(4, 900, 3) == [300, 900]
    assert oracles.rung_resources(9, 900, 3, min_resources=50) == [50, 150, 900]
    assert oracles.rung_resources(27, 900, 3, min_resources=300) == [300, 900]  # capped by images
    assert oracles.rung_resources(1, 900, 3) == [900]
    with pytest.raises(ValueError, match="more than the 900 training images"):
        oracles.rung_resources(9, 900, 3, min_resources=1000)


# --------------------------------------------------------------------------- CLI, no training


def test_dry_run_lists_candidates_and_trains_nothing(env, tmp_path):
    result = invoke("search", write_config(env), "--dry-run", "--results-dir", tmp_path / "results")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 candidates (1 cannot run), 2 folds" in out
    for i in range(3):
        assert f"candidate {i + 1} {{'conv1__filters'" in out
    assert out.count("multiply-accumulates per image") == 2
    assert re.search(r"^conv1 +conv +\(12, 12, 4\) +112 +", out, re.MULTILINE)  # c000: 4 filters
    assert "INVALID (cannot run): pool2: pool size 8 is larger than the 6x6 feature map" in out
    assert not (tmp_path / "results").exists()


def test_failed_fit_is_recorded_with_its_message(env, tmp_path, monkeypatch):
    def fit_one(params, *args, **kwargs):
        if params.model["layers"][0]["filters"] == 2:
            raise RuntimeError("boom: out of\nmemory")
        return fake_fit_one(params, *args, **kwargs)

    monkeypatch.setattr(executors, "fit_one", fit_one)
    run = search_run(write_config(env), tmp_path)
    rows = {r["candidate"]: r for r in read_cv(run)}
    assert rows["1"]["status"] == "completed" and rows["1"]["rank_test_score"] == "1"
    assert rows["2"]["status"] == "invalid" and rows["2"]["reason"].startswith("pool2: pool size 8")
    assert rows["3"]["status"] == "failed" and rows["3"]["mean_test_score"] == ""
    assert rows["3"]["reason"] == "fold 0: RuntimeError: boom: out of memory"
    assert read_json(run / "fits" / "c003_f1.json")["status"] == "failed"
    assert read_json(run / "best.json")["best_candidate"] == 1
    assert read_json(run / "run.json")["status"] == "finished"


def test_ctrl_c_stops_cleanly_and_resumes(env, tmp_path, monkeypatch):
    calls = []

    def fit_one(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fake_fit_one(*args, **kwargs)

    monkeypatch.setattr(executors, "fit_one", fit_one)
    result = invoke("search", write_config(env), "--results-dir", tmp_path)
    run = list_runs(tmp_path, "search")[-1]
    assert result.exit_code == 130
    assert f"Resume with:\n  cnn-cifar search --resume {run}" in result.stderr
    assert read_json(run / "run.json")["status"] == "interrupted"
    first = run / "fits" / "c001_f0.json"
    before = first.stat()
    assert [p.name for p in (run / "fits").iterdir()] == ["c001_f0.json"]
    stray = run / "fits" / "c001_f1.json"  # valid JSON, not a fit record: it runs again
    stray.write_text('{"key": "c001_f1", "status": "ok"}')

    result = invoke("search", "--resume", run)
    assert result.exit_code == 0, result.output
    assert len(calls) == 2 + 3
    assert read_json(stray)["candidate"] == 1
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert read_json(run / "run.json")["status"] == "finished"


def test_resume_refuses_what_is_not_a_search_run(env, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"command": "cv", "status": "ok"}))
    result = invoke("search", "--resume", tmp_path)
    assert result.exit_code == 2 and "not a search run" in result.stderr
    result = invoke("search", write_config(env), "--resume", tmp_path)
    assert result.exit_code == 2 and "drop CONFIG" in result.stderr


def test_dask_backend_missing_is_a_clear_error(env, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = invoke(
        "search",
        write_config(env),
        "--results-dir",
        tmp_path / "r",
        "--backend",
        "dask",
        "--scheduler",
        "tcp://127.0.0.1:1",
    )
    assert result.exit_code == 2
    assert "pip install 'cnn-cifar[dask]'" in result.stderr
    assert not (tmp_path / "r").exists()


def test_halving_keeps_the_best_and_spends_less(env, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "fit_one", fake_fit_one)
    space = {"hidden__units": {"randint": [4, 100]}, "conv1__filters": [2, 4]}
    cfg = write_config(env, "halving9.yaml", strategy="halving", n_iter=9, factor=3, space=space)
    run = search_run(cfg, tmp_path)
    rows = read_cv(run)
    units = [json.loads(r["param_hidden__units"]) for r in rows]
    best = read_json(run / "best.json")
    winner = rows[int(np.argmax(units))]  # the fake score grows with units
    assert best["best_candidate"] == int(winner["candidate"])
    fits = [read_json(p) for p in (run / "fits").glob("*.json")]
    fold = 67  # 90 - ceil(0.25 * 90)
    assert sorted({(f["rung"], f["n_train"]) for f in fits}) == [(0, 7), (1, 21), (2, fold)]
    assert len(fits) == (9 + 3 + 1) * 2
    random_images = 9 * 2 * fold
    assert sum(f["n_train"] for f in fits) < random_images / 2
    assert sum(f["n_train"] == fold for f in fits) == 2  # random: 18 full-fold fits
    assert [r["rung"] for r in rows if r["rank_test_score"] == "1"] == ["2"]
    assert {r["n_resources"] for r in rows} == {"7", "21", str(fold)}


def fit_record(candidate, fold, score, status="ok"):
    """A fits/ record as `executors.run_fit` writes it (the fields the oracles read)."""
    return {
        "key": Fit(candidate, fold).key,
        "candidate": candidate,
        "fold": fold,
        "rung": None,
        "status": status,
        "score": score,
        "fit_time": 0.1,
        "epochs": 1,
        "n_train": 10,
        "error": "RuntimeError: boom",
    }


def test_racing_oracle_stages_and_plan():
    oracle = RacingOracle([0, 1, 2, 3], folds=3, margin=0.05)

    def dropped(done):
        return {
            c: reason
            for c in range(4)
            for status, reason in [oracle.status(c, done)]
            if status is CandidateStatus.DROPPED
        }

    assert oracle.planned({}) == 12
    assert [f.key for f in oracle.next_fits({})] == ["c000_f0", "c001_f0", "c002_f0", "c003_f0"]
    done = {f"c00{c}_f0": fit_record(c, 0, s) for c, s in enumerate([0.5, 0.68, 0.7, 0.2])}
    done["c003_f0"]["status"] = "failed"
    # the leader runs all its folds first, then the others the next fold
    assert [f.key for f in oracle.next_fits(done)] == ["c002_f1", "c002_f2", "c001_f1"]
    assert oracle.planned(done) == 4 + 2 + 2
    assert set(dropped(done)) == {0}  # c003 failed
    assert dropped(done)[0] == (
        "dropped after 1 of 3 folds: mean 0.5000 is more than 0.05 below the leader's 0.7000; "
        "one fold: too few for a test"
    )
    assert oracle.status(3, done) == (CandidateStatus.FAILED, "fold 0: RuntimeError: boom")
    done.update(
        {"c002_f1": fit_record(2, 1, 0.5), "c002_f2": fit_record(2, 2, 0.5), "c001_f1": fit_record(1, 1, 0.7)}
    )
    # after fold 1, c002 (mean 0.60) is out of the race, but it has run every fold already
    assert [f.key for f in oracle.next_fits(done)] == ["c001_f2"]
    done["c001_f2"] = fit_record(1, 2, 0.7)
    assert oracle.next_fits(done) == [] and oracle.planned(done) == 8
    assert set(dropped(done)) == {0}
    assert [oracle.status(c, done)[0] for c in (1, 2)] == [CandidateStatus.COMPLETED] * 2


def test_journal_skips_files_that_are_not_fit_records(tmp_path, caplog):
    journal = FitJournal(tmp_path)
    journal.create()
    journal.append(Fit(0, 0), fit_record(0, 0, 0.5))
    journal.append(Fit(1, 0), fit_record(1, 0, None, status="failed"))
    (journal.folder / "c002_f0.json").write_text('{"key": "c002_f0", "status": "ok"}')  # no candidate
    (journal.folder / "c003_f0.json").write_text(
        '{"key": "c003_f0", "candidate": 3, "fold": 0, "status": "ok"}'
    )  # no score
    (journal.folder / "c004_f0.json").write_text('{"key": "c00')  # torn
    (journal.folder / "c005_f0.json").write_text("[1, 2]")
    assert sorted(load_fits(tmp_path)) == ["c000_f0", "c001_f0"]
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "c002_f0.json: no candidate, fold, score" in warned
    assert "c003_f0.json: no score, fit_time, epochs, n_train" in warned
    assert "unreadable fit file" in warned and "c005_f0.json: not a JSON object" in warned


def fold_fake(params, data, train_idx, test_idx, **kwargs):
    """The fake fit with a per-fold wobble, so racing compares means over folds."""
    out = fake_fit_one(params, data, train_idx, test_idx, **kwargs)
    out["score"] += 0.01 * (int(test_idx[0]) % 3)
    return out


def test_racing_drops_the_clearly_worse_and_keeps_the_random_search_best(env, tmp_path, monkeypatch):
    order = []

    def fit_one(params, data, train_idx, test_idx, **kwargs):
        order.append((params.model["layers"][4]["units"], int(test_idx[0])))
        return fold_fake(params, data, train_idx, test_idx, **kwargs)

    monkeypatch.setattr(executors, "fit_one", fit_one)
    space = {"hidden__units": {"randint": [4, 100]}, "conv1__filters": [2, 4]}
    # racing alone (asha's probe would run first even without a validation split)
    common = {"n_iter": 9, "space": space, "cv": 3, "prune": {"rule": "none"}}
    random_run = search_run(write_config(env, "r9.yaml", strategy="random", **common), tmp_path / "r")
    order.clear()
    race = search_run(
        write_config(env, "race9.yaml", strategy="racing", margin=0.1, **common), tmp_path / "race"
    )

    rand = {r["candidate"]: r for r in read_cv(random_run)}
    rows = read_cv(race)
    units = {r["candidate"]: json.loads(r["param_hidden__units"]) for r in rows}
    leader = max(units.values())
    near = {c for c, u in units.items() if u / 100 >= leader / 100 - 0.1 - 1e-9}
    assert 1 < len(near) < 9  # the test means something
    assert len(order) == 9 + 2 * len(near)
    # after fold 0, the leader runs its other folds, then the others fold by fold, best first
    ranked = sorted((units[c] for c in near), reverse=True)
    assert [u for u, _ in order[9:]] == ranked[:1] * 2 + ranked[1:] * 2
    for r in rows:
        if r["candidate"] in {str(c) for c in near}:
            assert (
                r["status"] == "completed" and r["mean_test_score"] == rand[r["candidate"]]["mean_test_score"]
            )
        else:
            assert r["status"] == "dropped" and r["split1_test_score"] == ""
            assert r["reason"].startswith("dropped after 1 of 3 folds: mean ")
            assert int(r["rank_test_score"]) > len(near)
            assert r["split0_test_score"] == rand[r["candidate"]]["split0_test_score"]
    assert read_json(race / "best.json")["best_params"] == read_json(random_run / "best.json")["best_params"]
    ranking = (race / "ranking.txt").read_text()
    assert ranking.count("[dropped after 1 of 3 folds") == 9 - len(near)
    dry = invoke(
        "search",
        write_config(env, "race9.yaml", strategy="racing", margin=0.1, **common),
        "--dry-run",
        "--results-dir",
        tmp_path / "dry",
    ).output
    assert "racing: every candidate on fold 0, then fold by fold only those within 0.1" in dry
    assert "9 to 27 fits" in dry


def test_racing_resumes_mid_race(env, tmp_path, monkeypatch):
    calls = []

    def fit_one(*args, **kwargs):
        calls.append(1)
        if len(calls) == 11:  # fold 0 is 9 fits: stop inside fold 1
            raise KeyboardInterrupt
        return fold_fake(*args, **kwargs)

    monkeypatch.setattr(executors, "fit_one", fit_one)
    space = {"hidden__units": {"randint": [4, 100]}, "conv1__filters": [2, 4]}
    cfg = write_config(env, "race_resume.yaml", strategy="racing", margin=0.2, n_iter=9, cv=3, space=space)
    assert invoke("search", cfg, "--results-dir", tmp_path / "a").exit_code == 130
    run = list_runs(tmp_path / "a", "search")[-1]
    assert invoke("search", "--resume", run).exit_code == 0
    monkeypatch.setattr(executors, "fit_one", fold_fake)
    assert_same_search(run, search_run(cfg, tmp_path / "b"))
    assert len(list((run / "fits").glob("*.json"))) == len(calls) - 1


def test_racing_with_a_wide_margin_is_the_random_search(env, reference, tmp_path):
    run = search_run(write_config(env, "race_all.yaml", strategy="racing", margin=1.0), tmp_path)
    assert_same_search(run, reference)


def test_repeats_give_more_folds_and_ties_are_marked(env, tmp_path, monkeypatch):
    """cv.n_repeats=2: each candidate runs on 2 x 2 folds, repeat r drawn with seed
    random_state + r; vs_best and p_vs_best are the Holm-corrected corrected resampled
    t-test of each candidate against the best, on the paired folds."""
    from cnn_cifar.results.stats import corrected_ttest, holm

    seen = {}

    def fit_one(params, data, train_idx, test_idx, **kwargs):
        units = params.model["layers"][4]["units"]
        seen.setdefault(units, []).append(np.sort(test_idx))
        noise = np.random.default_rng([units, int(np.sum(test_idx))]).normal(0, 0.02)
        return {
            "score": units / 1000 + noise,
            "fit_time": 0.01,
            "score_time": 0.0,
            "epochs": 1,
            "n_train": len(train_idx),
            "n_test": len(test_idx),
            "history": {},
        }

    monkeypatch.setattr(executors, "fit_one", fit_one)
    run = search_run(
        write_config(
            env,
            "rep.yaml",
            cv_block={"n_repeats": 2},
            strategy="random",
            n_iter=3,
            space={"hidden__units": [10, 190, 200]},
        ),
        tmp_path / "rep",
    )
    y = dataset(load_spec(run)[1]).y_train
    expected = cv_splits(y, 2, 0.25, 15) + cv_splits(y, 2, 0.25, 16)
    assert [
        np.array_equal(a[1], b[1])
        for a, b in zip(cv_splits(y, 2, 0.25, 15, n_repeats=2), expected, strict=True)
    ] == [True] * 4
    for tests in seen.values():  # in-process: fold order
        assert [t.tolist() for t in tests] == [np.sort(e[1]).tolist() for e in expected]
    rows = {json.loads(r["param_hidden__units"]): r for r in read_cv(run)}
    scores = {u: [float(r[f"split{f}_test_score"]) for f in range(4)] for u, r in rows.items()}
    best = max(scores, key=lambda u: np.mean(scores[u]))
    others = [u for u in scores if u != best]
    n_test = math.ceil(0.25 * len(y))
    p = holm(
        [corrected_ttest(np.subtract(scores[best], scores[u]), n_test / (len(y) - n_test))[1] for u in others]
    )
    assert rows[best]["vs_best"] == "best" and rows[best]["p_vs_best"] == ""
    for u, p_u in zip(others, p, strict=True):
        assert float(rows[u]["p_vs_best"]) == pytest.approx(p_u)
        assert rows[u]["vs_best"] == ("tied" if p_u >= 0.05 else "worse")
    assert {rows[u]["vs_best"] for u in others} == {"tied", "worse"}  # the test means something
    ranking = (run / "ranking.txt").read_text()
    assert "over 4 folds" in ranking and "  [not distinguishable from the best: p = " in ranking
    assert "1 of 2 candidates that scored the same folds are not distinguishable" in ranking


def test_halving_budget_is_checked_before_the_run_starts(env, tmp_path):
    cfg = write_config(env, "too_many.yaml", strategy="halving", min_resources=500)
    result = invoke("search", cfg, "--results-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {cfg}: search.min_resources: 500 is more than the 67 training images of a fold"
    )
    assert not (tmp_path / "r").exists()


def test_halving_resumes_mid_rung_with_drawn_seeds(env, tmp_path, monkeypatch):
    calls = []

    def fit_one(*args, **kwargs):
        calls.append(1)
        if len(calls) == 21:  # rung 0 is 9 x 2 fits: stop inside rung 1
            raise KeyboardInterrupt
        return fake_fit_one(*args, **kwargs)

    monkeypatch.setattr(executors, "fit_one", fit_one)
    space = {"hidden__units": {"randint": [4, 100]}, "conv1__filters": [2, 4]}
    cfg = write_config(
        env,
        "unseeded.yaml",
        cv_block={"random_state": None},
        strategy="halving",
        n_iter=9,
        random_state=None,
        space=space,
    )
    assert invoke("search", cfg, "--results-dir", tmp_path / "a").exit_code == 130
    run = list_runs(tmp_path / "a", "search")[-1]
    saved = read_json(run / "search.json")["config"]
    seeds = saved["search"]["random_state"], saved["cv"]["random_state"]
    assert None not in seeds  # drawn once and saved, so a resume redraws them
    assert invoke("search", "--resume", run).exit_code == 0
    assert len(calls) == 21 + 6 and len(list((run / "fits").glob("*.json"))) == 26

    monkeypatch.setattr(executors, "fit_one", fake_fit_one)
    pinned = write_config(
        env,
        "pinned.yaml",
        cv_block={"random_state": seeds[1]},
        strategy="halving",
        n_iter=9,
        random_state=seeds[0],
        space=space,
    )
    assert_same_search(run, search_run(pinned, tmp_path / "b"))


# --------------------------------------------------------------------------- real training


def test_outputs_of_a_search(reference):
    rows = read_cv(reference)
    assert list(rows[0]) == [
        "candidate",
        "param_conv1__filters",
        "param_hidden__units",
        "param_pool2__size",
        "param_train__optimizer__learning_rate",
        "split0_test_score",
        "split1_test_score",
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "mean_fit_time",
        "std_fit_time",
        "mean_epochs",
        "status",
        "reason",
        "vs_best",
        "p_vs_best",
    ]
    assert [r["status"] for r in rows] == ["completed", "invalid", "completed"]
    assert "pool size 8 is larger than the 6x6 feature map" in rows[1]["reason"]
    best = read_json(reference / "best.json")
    assert set(best) == {
        "best_params",
        "best_score",
        "best_std",
        "best_ci",
        "best_candidate",
        "scoring",
        "strategy",
        "config",
        "data",
    }
    assert best["best_ci"][0] <= best["best_score"] <= best["best_ci"][1]
    by_id = {int(r["candidate"]): r for r in rows}
    assert [int(r["candidate"]) for r in rows] == [1, 2, 3]  # ids from 1, as everywhere
    assert by_id[best["best_candidate"]]["vs_best"] == "best" and by_id[2]["vs_best"] == ""
    assert best["config"]["name"] == "tiny_best" and "search" not in best["config"]
    cfg = validate(best["config"], "best.json")
    assert cfg.model.layers[4].units == best["best_params"]["hidden__units"]
    ranking = (reference / "ranking.txt").read_text().splitlines()
    assert ranking[0].startswith(
        "accuracy per candidate, best first: mean +/- one standard deviation over 2 folds"
    )
    winner = by_id[best["best_candidate"]]
    assert ranking[1] == (
        f"candidate {best['best_candidate']}: {float(winner['mean_test_score']):0.4f} +/- "
        f"{float(winner['std_test_score']):0.4f} for {best['best_params']!r}"
    )
    assert ranking[3] == "without a score:"
    assert ranking[4].startswith("candidate 2: invalid for {'conv1__filters': 4")
    # the same id names the candidate in fits/, TensorBoard and compare RUN:ID
    assert sorted(p.stem for p in (reference / "fits").glob("*.json")) == [
        "c001_f0",
        "c001_f1",
        "c003_f0",
        "c003_f1",
    ]
    for png in ("scores.png", "score_vs_params.png"):
        assert (reference / png).read_bytes()[:4] == b"\x89PNG"
    assert read_json(reference / "run.json")["status"] == "finished"


def test_scores_match_randomized_search_cv(env, reference):
    from sklearn.model_selection import RandomizedSearchCV

    from cnn_cifar.training.estimator import from_config

    cfg = load_config(write_config(env))
    data = resolve_data(cfg)
    ds = dataset(data)
    splits = cv_splits(ds.y_train, 2, 0.25, 15)
    sk = RandomizedSearchCV(
        from_config(cfg),
        sp.parse_space(cfg, "tiny.yaml"),
        n_iter=3,
        cv=splits,
        random_state=1,
        scoring="accuracy",
        refit=False,
        error_score=np.nan,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failing candidate's FitFailedWarning
        sk.fit(ds.x_train, ds.y_train)
    saved = read_json(reference / "candidates.json")
    assert [c["params"] for c in saved] == [
        {k: sp.native(v) for k, v in p.items()} for p in sk.cv_results_["params"]
    ]
    for row, mean in zip(read_cv(reference), sk.cv_results_["mean_test_score"], strict=True):
        if row["status"] == "completed":
            assert float(row["mean_test_score"]) == pytest.approx(mean, abs=1e-6)
        else:
            assert np.isnan(mean)


def test_resume_after_sigkill_matches_an_uninterrupted_search(env, reference, tmp_path):
    cmd = cli_command()
    results = tmp_path / "results"
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(
            [*cmd, "search", str(write_config(env)), "--results-dir", str(results)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_first_fit(proc, results)
        os.kill(proc.pid, signal.SIGSTOP)  # alive, holding its run folder
        run = list_runs(results, "search")[-1]
        second = subprocess.run([*cmd, "search", "--resume", str(run)], capture_output=True, text=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip().splitlines()[-1] == (
        f"Error: {run}: in use by pid {proc.pid} on {platform.node()}; a run folder has one writer "
        "at a time (wait for that process to end, or stop it, then resume)"
    )
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (run / "fits").glob(FIT_RECORDS)}
    assert 1 <= len(before) < 4, (run / "log.txt").read_text()
    assert read_json(run / "run.json")["status"] == "running"

    done = subprocess.run([*cmd, "search", "--resume", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (run / "fits").glob(FIT_RECORDS)}
    assert len(after) == 4
    assert {k: after[k] for k in before} == before  # finished fits were not run again
    assert_same_search(run, reference)
    assert read_json(run / "run.json")["status"] == "finished"


def test_jobs_2_gives_the_same_search(env, reference, tmp_path):
    run = search_run(write_config(env), tmp_path, "--jobs", "2")
    assert_same_search(run, reference)


def test_search_on_a_local_dask_cluster(env, reference, tmp_path):
    with local_dask_cluster() as scheduler:
        run = search_run(write_config(env), tmp_path, "--backend", "dask", "--scheduler", scheduler)
    assert_same_search(run, reference)


def test_halving_on_real_fits(env, reference, tmp_path):
    space = {k: v for k, v in SPACE.items() if k != "pool2__size"}
    cfg = write_config(env, "halving.yaml", strategy="halving", factor=3, cv=1, space=space)
    run = search_run(cfg, tmp_path)
    fits = [read_json(p) for p in (run / "fits").glob("*.json")]
    assert sorted((f["rung"], f["n_train"]) for f in fits) == [(0, 22)] * 3 + [(1, 67)]
    assert all(f["status"] == "ok" for f in fits)
    best = read_json(run / "best.json")
    winner = next(r for r in read_cv(run) if int(r["candidate"]) == best["best_candidate"])
    assert (winner["rung"], winner["n_resources"], winner["rank_test_score"]) == ("1", "67", "1")
    # random search, same n_iter: 3 candidates x 1 fold on the full 67 images each
    assert sum(f["n_train"] for f in fits) < 3 * 67
    assert sum(f["n_train"] == 67 for f in fits) < 3


def test_search_help_names_every_way_a_candidate_ends():
    text = " ".join(invoke("search", "--help").output.split())
    assert all(str(status) in text for status in CandidateStatus)

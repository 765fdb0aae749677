"""The peers part (benchmarks/peers.py): its pure parts on given events (best-so-far
curves, time to within a point, quality at a budget, picks from a search's journal), the
names the peers draw in, the yardstick's cache, the plain Keras network against the
project's, and its one-line skip. No search runs here: `.ci/run` runs
`python -m benchmarks.peers --smoke` on the real data."""

from datetime import datetime, timedelta

import numpy as np
import pytest
from conftest import REPO

from benchmarks import peers
from benchmarks.peers import (
    Pick,
    SideRun,
    Yardstick,
    best_so_far,
    dimensions,
    journal_picks,
    over_seeds,
    peer_name,
    project_params,
    quality_at,
    side_order,
    summarise,
    time_to_within,
)
from cnn_cifar import nn
from cnn_cifar.config.loader import load_config

SEARCH = REPO / "configs" / "search.yaml"
A = {"conv1__filters": 16, "hidden__units": 100}
B = {"conv1__filters": 32, "hidden__units": 200}
C = {"conv1__filters": 64, "hidden__units": 300}


def _picks(*events):
    return [Pick(wall, cpu, params, cv=cv) for wall, cpu, params, cv in events]


def test_best_so_far_keeps_the_best_pick_yet_in_time_order():
    picks = _picks((30, 50, C, 0.58), (10, 18, A, 0.50), (20, 35, B, 0.48))  # given out of order
    assert best_so_far(picks) == [(10, 18, 0.50), (20, 35, 0.50), (30, 50, 0.58)]
    assert best_so_far([Pick(5, 5, A)]) == []  # not scored yet


def test_time_to_within_a_point_of_the_best():
    picks = _picks((10, 18, A, 0.50), (20, 35, B, 0.575), (30, 50, C, 0.58))
    assert time_to_within(picks, 0.58) == (20, 35)  # 0.575 is within 1 point of 0.58
    assert time_to_within(picks, 0.59) == (30, 50)  # exactly 1 point below counts
    assert time_to_within(picks, 0.60) is None
    assert time_to_within(picks, 0.51, points=0.5) == (20, 35)


def test_quality_at_a_budget_on_either_clock():
    picks = _picks((10, 18, A, 0.50), (20, 35, B, 0.48), (30, 50, C, 0.58))
    assert quality_at(picks, 5) is None  # before the first pick
    assert quality_at(picks, 25) == 0.50  # best so far, though the pick then was B
    assert quality_at(picks, 30) == 0.58
    assert quality_at(picks, 40, "cpu") == 0.50
    assert quality_at(picks, 50, "cpu") == 0.58


def _fit(candidate, fold, score, seconds, **extra):
    finished = (datetime(2026, 12, 8, 0, 0, 0) + timedelta(seconds=seconds)).isoformat()
    return {
        "key": f"c{candidate}_f{fold}",
        "candidate": candidate,
        "fold": fold,
        "status": "ok",
        "score": score,
        "finished": finished,
        **extra,
    }


def test_the_projects_picks_are_read_from_its_journal():
    epoch0 = datetime(2026, 12, 8, 0, 0, 0).timestamp()
    fits = [
        _fit(1, 0, 0.9, 5, probe=1),  # racing's probe: not a fold's score
        _fit(2, 0, 0.9, 5, probe=1),
        _fit(1, 0, 0.50, 20),
        _fit(1, 1, 0.52, 30),  # candidate 1 complete: mean 0.51, the first pick
        _fit(2, 0, 0.60, 40),  # candidate 2: two folds of two only at 60 s
        _fit(3, 0, 0.40, 45),
        _fit(3, 1, 0.42, 50),  # complete but worse: no new pick
        {"key": "c4_f0", "candidate": 4, "fold": 0, "status": "pruned", "pruned": "probe"},
        _fit(2, 1, 0.58, 60),  # candidate 2 complete: mean 0.59, the second pick
    ]
    candidates = {1: A, 2: B, 3: C, 4: {"conv1__filters": 16, "hidden__units": 1}}
    picks = journal_picks(fits, candidates, folds=2, epoch0=epoch0)
    assert [(p.wall_s, p.params, p.own) for p in picks] == [(30, A, 0.51), (60, B, pytest.approx(0.59))]


def test_the_peers_names_map_to_the_projects():
    names = ["conv1__filters", "conv2__kernel", "hidden__units"]
    assert peer_name("conv2__kernel") == "conv2_kernel"
    drawn = {
        "conv1_filters": np.int64(32),
        "conv2_kernel": 9,
        "hidden_units": np.int64(512),
        "tuner/epochs": 4,  # Keras Tuner's own entries
        "tuner/trial_id": "0003",
    }
    params = project_params(drawn, names)
    assert params == {"conv1__filters": 32, "conv2__kernel": 9, "hidden__units": 512}
    assert all(type(v) is int for v in params.values())  # plain numbers, for JSON and set_params


def test_the_space_is_search_yamls():
    cfg = load_config(SEARCH)
    assert cfg.search is not None
    dims = dimensions(cfg.search.space)
    assert dims["hidden__units"] == range(50, 1000)  # randint: high excluded
    assert dims["conv2__kernel"] == [3, 6, 9] and dims["pool2__size"] == [2, 4]
    with pytest.raises(ValueError, match=r"search.space.lr"):
        dimensions({"lr": {"loguniform": [1e-3, 1]}})


def test_the_yardstick_trains_each_candidate_once_across_sides():
    calls = []

    def fit_scores(params):
        calls.append(params)
        return [0.5, 0.7]

    yardstick = Yardstick(fit_scores)
    assert yardstick.score({"hidden__units": 100, "conv1__filters": 16}) == pytest.approx(0.6)
    # the same candidate from another side: keys in another order, numpy numbers
    assert yardstick.score({"conv1__filters": np.int64(16), "hidden__units": 100}) == pytest.approx(0.6)
    yardstick.score(B)
    assert len(calls) == 2
    assert [r["mean"] for r in yardstick.records()] == [pytest.approx(0.6), pytest.approx(0.6)]


def test_the_order_of_the_sides_rotates_per_seed():
    sides = ["project", "optuna", "kerastuner"]
    assert [side_order(sides, k) for k in range(4)] == [
        ["project", "optuna", "kerastuner"],
        ["optuna", "kerastuner", "project"],
        ["kerastuner", "project", "optuna"],
        ["project", "optuna", "kerastuner"],
    ]


def test_a_seeds_summary_and_the_means_over_seeds():
    fast = SideRun("kerastuner", 0, wall_s=40, cpu_s=70, picks=_picks((10, 18, A, 0.50), (30, 50, B, 0.55)))
    slow = SideRun("project", 0, wall_s=100, cpu_s=190, picks=_picks((35, 60, C, 0.58), (90, 170, A, 0.50)))
    broken = SideRun("optuna", 0, wall_s=3, cpu_s=2, error="WorkerError: it died")
    run = summarise([fast, slow, broken])
    assert run["best_cv"] == 0.58 and run["smallest_wall_s"] == 40 and run["smallest_cpu_s"] == 70
    k, p = run["sides"]["kerastuner"], run["sides"]["project"]
    assert k["to_within_wall_s"] is None and k["final_cv"] == 0.55 and k["at_smallest_wall"] == 0.55
    assert p["to_within_wall_s"] == 35 and p["at_smallest_wall"] == 0.58 and p["at_smallest_cpu"] == 0.58
    assert p["final_cv"] == 0.50  # its last pick, not its best
    assert run["sides"]["optuna"]["final_cv"] is None
    means = over_seeds([{"sides": run["sides"]}, {"sides": {"project": {**p, "to_within_wall_s": 45}}}])
    assert means["project"]["to_within_wall_s"] == 40 and means["project"]["reached"] == 2
    assert means["kerastuner"]["reached"] == 0 and means["kerastuner"]["seeds"] == 1


def test_optuna_draws_the_space_in_the_projects_names():
    optuna = pytest.importorskip("optuna")
    cfg = load_config(SEARCH)
    assert cfg.search is not None
    dims = dimensions(cfg.search.space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        params = peers.optuna_draw(trial, dims)
        assert set(params) == set(dims)
        assert all(params[n] in dims[n] for n in dims)
        assert set(trial.params) == {peer_name(n) for n in dims}
        study.tell(trial, 0.5)


def test_keras_tuner_draws_the_space_in_the_projects_names():
    kt = pytest.importorskip("keras_tuner")
    cfg = load_config(SEARCH)
    assert cfg.search is not None
    dims = dimensions(cfg.search.space)
    hp = kt.HyperParameters()
    params = peers.kerastuner_draw(hp, dims)
    assert set(params) == set(dims) and all(params[n] in dims[n] for n in dims)
    units = hp.space[[p.name for p in hp.space].index("hidden_units")]
    assert (units.min_value, units.max_value) == (50, 999)  # both ends included in Keras Tuner


def test_the_peers_network_is_the_projects():
    params = {
        "conv1__filters": 16,
        "conv1__kernel": 3,
        "pool1__size": 2,
        "conv2__filters": 64,
        "conv2__kernel": 9,
        "pool2__size": 4,
        "hidden__units": 77,
    }
    cfg = load_config(SEARCH, [f"{k.replace('__', '.')}={v}" for k, v in params.items()])
    project = nn.model.build_model(cfg.model, (32, 32, 3), 10, seed=0)
    plain = peers.build_network(params, (32, 32, 3), 10, peers.Recipe.of(cfg))
    assert plain.count_params() == project.count_params()
    assert [w.shape for w in plain.weights] == [w.shape for w in project.weights]
    assert plain.optimizer.learning_rate.numpy() == pytest.approx(1.0)
    assert plain.optimizer.epsilon == pytest.approx(1e-8)


def test_without_the_extra_it_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(peers, "available", lambda sides: False)
    assert peers.main(["--smoke"]) == 0
    assert capsys.readouterr().out.strip() == f"benchmarks.peers: skipped: {peers.EXTRA}"


def test_options(capsys):
    args = peers.options(["--smoke"])
    assert args.budget == {
        "subset": 400,
        "epochs": 2,
        "n_iter": 3,
        "folds": 2,
        "seeds": [0],
        "sides": ["project", "optuna", "kerastuner"],
    }
    args = peers.options(["--seeds", "3,4", "--n-iter", "5", "--sides", "project,sklearn"])
    assert args.budget["seeds"] == [3, 4] and args.budget["n_iter"] == 5 and args.budget["folds"] == 3
    assert args.budget["subset"] == 10000 and args.budget["epochs"] == 10
    with pytest.raises(SystemExit):
        peers.options(["--sides", "project,hyperopt"])
    assert "--sides: unknown hyperopt" in capsys.readouterr().err

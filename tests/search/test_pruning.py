"""Pruning within epochs (search.prune): the rules on given curves, the curves folder
shared by processes, and real searches where fits that cannot learn are stopped early."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from conftest import invoke, make_images, write_config, write_npz

from cnn_cifar.config.loader import load_config
from cnn_cifar.core.files import read_json
from cnn_cifar.core.vocabulary import CandidateStatus
from cnn_cifar.search.candidates import make_candidates
from cnn_cifar.search.journal import load_fits, load_spec
from cnn_cifar.search.oracles import Fit, RacingOracle, last_rung
from cnn_cifar.search.pruning import Curves, Pruning, config_problem, from_config, judge
from cnn_cifar.search.runner import pin, plan_search
from cnn_cifar.search.space import parse_space

ASHA = Pruning(run_dir="unused", rule="asha", min_epochs=1, factor=3.0, min_fits=3, max_epochs=20)


def test_asha_rungs_are_geometric_and_stop_before_the_last_epoch():
    assert ASHA.rungs() == [1, 3, 9]
    assert Pruning("x", "asha", min_epochs=2, factor=2, max_epochs=16).rungs() == [2, 4, 8]
    assert Pruning("x", "asha", min_epochs=5, max_epochs=5).rungs() == []


def test_probes_are_never_pruned_within_their_epochs():
    assert ASHA.applies_to(Fit(0, 0)) and not ASHA.applies_to(Fit(0, 1))
    assert not ASHA.applies_to(Fit(0, 0, probe=1))


def _record(fit: Fit, score: float, status: str = "ok") -> dict:
    """A fits/ record as executors.run_fit writes it (the fields the oracles read)."""
    extra = {"probe": fit.probe} if fit.probe is not None else {}
    where = {"key": fit.key, "candidate": fit.candidate, "fold": fit.fold, "rung": None}
    out = {**where, "status": status, **extra}
    return {**out, "score": score} if status == "ok" else {**out, "error": "RuntimeError: boom"}


def test_racing_probes_every_candidate_then_races_the_best_third_best_first():
    oracle = RacingOracle(list(range(6)), folds=2, margin=1.0, probe=1, factor=3.0, min_fits=3)
    probes = oracle.next_fits({})
    assert [f.key for f in probes] == [f"p1_c00{c}_f0" for c in range(6)]
    assert oracle.planned({}) == 6 + 2 * 2
    done = {f.key: _record(f, s) for f, s in zip(probes, [0.3, 0.9, 0.5, 0.8, 0.1, 0.2], strict=True)}
    done["p1_c002_f0"] = _record(probes[2], 0.0, "failed")
    assert oracle.next_fits(done) == [Fit(1, 0), Fit(3, 0)]  # the best probe first
    assert oracle.planned(done) == 6 + 2 * 2
    status, reason = oracle.status(0, done)
    assert status is CandidateStatus.PRUNED
    assert reason == (
        "pruned at epoch 1 of fold 1: score 0.3000 not in the best 2 of the 6 candidates' probes "
        "(cutoff 0.8000)"
    )
    assert oracle.status(2, done) == (CandidateStatus.FAILED, "fold 1 (probe): RuntimeError: boom")
    for c, scores in {1: (0.7, 0.6), 3: (0.65, 0.62)}.items():
        done.update({Fit(c, f).key: _record(Fit(c, f), s) for f, s in enumerate(scores)})
    assert oracle.next_fits(done) == []
    assert oracle.status(1, done) == (CandidateStatus.COMPLETED, "")
    assert oracle.status(3, done) == (CandidateStatus.COMPLETED, "")
    # a probe is not a fold's score
    rung, fits = last_rung(done, 1, 2)
    assert rung == 0 and [r["key"] for r in fits] == ["c001_f0", "c001_f1"]


def test_racing_without_enough_candidates_to_compare_has_no_probe():
    oracle = RacingOracle([0, 1], folds=2, margin=0.03, probe=1, factor=3.0, min_fits=3)
    assert oracle.next_fits({}) == [Fit(0, 0), Fit(1, 0)]
    assert oracle.planned({}) == 4


def test_asha_keeps_the_top_third_at_a_rung():
    others = {"a": 0.30, "b": 0.50, "c": 0.60, "me": 0.40}
    assert "not in the top 1/3 of the 4 fits" in judge(ASHA, 3, 0.40, 0.40, others)
    assert judge(ASHA, 3, 0.60, 0.60, {**others, "me": 0.60}) is None  # the best goes on
    assert judge(ASHA, 2, 0.40, 0.40, others) is None  # not a rung
    assert judge(ASHA, 20, 0.40, 0.40, others) is None  # the last epoch: nothing to save
    assert judge(ASHA, 3, 0.40, 0.40, {"a": 0.9, "me": 0.40}) is None  # fewer than min_fits


def test_median_rule_on_a_loss_compares_lower_as_better():
    rule = Pruning("x", "median", monitor="val_loss", min_epochs=2, min_fits=3)
    others = {"a": 1.0, "b": 1.2, "me": 1.4}
    assert "worse than the median 1.2000" in judge(rule, 2, 1.4, 1.4, others)
    assert judge(rule, 2, 1.4, 1.1, others) is None  # its best so far beats the median
    assert judge(rule, 1, 9.0, 9.0, others) is None  # before min_epochs


def test_curves_are_shared_by_rung_and_restart_with_their_fit(tmp_path):
    curves = Curves(tmp_path)
    for key, value in [("c000_f0", 0.5), ("c001_f1", 0.6), ("r1_c000_f0", 0.9)]:
        curves.start(key)
        curves.record(key, 1, value)
    with open(tmp_path / "curves" / "c002_f0.jsonl", "w") as f:
        f.write('{"epoch": 1, "val')  # a line another process is still writing
    assert curves.at_epoch(1, "") == {"c000_f0": 0.5, "c001_f1": 0.6}
    assert curves.at_epoch(1, "r1") == {"r1_c000_f0": 0.9}
    curves.start("c000_f0")  # the fit runs again after an interruption
    assert curves.at_epoch(1, "") == {"c001_f1": 0.6}


# --------------------------------------------------------------------------- real searches

GOOD, STUCK = 0.01, 1.0e-9  # learning rates: one that learns the bands, one that cannot move

# the tiny config, 5 epochs with a validation split, and a search that only pruning narrows
TRAIN = {
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 5,
    "batch_size": 16,
    "validation_split": 0.2,
    "seed": 3,
}
SEARCH = {
    "strategy": "racing",
    "margin": 1.0,  # racing keeps everyone: only pruning stops fits here
    "n_iter": 4,
    "random_state": 0,
    "prune": {"rule": "asha", "monitor": "val_loss", "min_epochs": 3, "min_fits": 3},
    "space": {"conv1__filters": [2, 4], "train__optimizer__learning_rate": [GOOD, STUCK]},
}


@pytest.fixture
def prunable(tmp_path):
    data = write_npz(tmp_path / "bands.npz", n_train=300, n_test=60)
    path = write_config(tmp_path / "prunable.yaml", data, name="prunable", train=TRAIN, search=SEARCH)
    return path


def _search(config: Path, results: Path, *extra: str) -> Path:
    result = invoke("search", config, "--results-dir", results, *extra)
    assert result.exit_code == 0, result.output
    (run,) = results.glob("*_search_*")
    return run


def _params(run: Path) -> dict:
    return {c["candidate"]: c["params"] for c in read_json(run / "candidates.json")}


def _learns(params: dict) -> bool:
    return params["train__optimizer__learning_rate"] == GOOD


def test_a_search_prunes_the_first_fold_of_fits_that_cannot_learn(prunable, tmp_path):
    # in process, so the order is fixed: a learner, a stuck fit, a learner, a stuck fit;
    # no probe, so that the fits themselves are judged at their rung
    run = _search(prunable, tmp_path / "results", "--set", "search.prune.probe=false")
    params, fits = _params(run), load_fits(run)
    pruned = [f for f in fits.values() if f["status"] == "pruned"]
    assert pruned, "no fit was pruned"
    for f in pruned:  # only stuck fits, only on their first fold, at the rung
        assert not _learns(params[f["candidate"]]) and f["fold"] == 0
        assert f["epochs"] == 3 and "pruned at epoch 3" in f["pruned"] and "score" not in f, f
        assert len(f["history"]["val_loss"]) == 3
    for f in fits.values():  # the learners ran every epoch of every fold (no early stopping)
        if _learns(params[f["candidate"]]):
            assert f["status"] == "ok" and f["epochs"] == 5
    assert {f["fold"] for f in fits.values() if _learns(params[f["candidate"]])} == {0, 1}
    with open(run / "cv_results.csv") as fh:
        rows = {int(r["candidate"]): r for r in csv.DictReader(fh)}
    for f in pruned:
        assert rows[f["candidate"]]["status"] == "pruned"
        assert "fold 1 of 2: pruned at epoch 3" in rows[f["candidate"]]["reason"]
    assert _learns(read_json(run / "best.json")["best_params"])
    lines = (run / "curves" / f"{pruned[0]['key']}.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    # a resume has nothing left to run: pruned fits stay pruned
    cfg, data, source = load_spec(run)
    plan = plan_search(
        cfg, data, make_candidates(cfg, parse_space(cfg, source), (8, 8, 3), 3, source), source
    )
    assert plan.oracle.next_fits(fits) == []


@pytest.mark.parametrize("validation_split", ["0.2", "0"])  # the probe scores on the fold's test rows
def test_racings_probe_keeps_the_candidates_that_learn(prunable, tmp_path, validation_split):
    run = _search(prunable, tmp_path / "results", "--set", f"train.validation_split={validation_split}")
    params, fits = _params(run), load_fits(run)
    probes = [f for f in fits.values() if f.get("probe")]
    assert sorted(f["key"] for f in probes) == [f"p3_c00{c}_f0" for c in range(1, 5)]  # ids from 1
    for f in probes:  # the first 3 epochs of the full fit, scored on the fold's test rows
        assert f["status"] == "ok" and f["epochs"] == 3 and f["probe"] == 3 and 0 <= f["score"] <= 1
    entered = {f["candidate"] for f in fits.values() if not f.get("probe")}
    assert len(entered) == 2 and all(_learns(params[c]) for c in entered)
    for f in fits.values():  # the entrants ran every epoch of both folds, unpruned
        if not f.get("probe"):
            assert f["status"] == "ok" and f["epochs"] == 5 and f["fold"] in (0, 1)
    assert len(fits) == 4 + 2 * 2
    dry = invoke("search", prunable, "--dry-run", "--set", f"train.validation_split={validation_split}")
    assert "(4 fits), then the best 2 race on fold 0" in dry.output and "; 6 to 8 fits" in dry.output
    with open(run / "cv_results.csv") as fh:
        rows = {int(r["candidate"]): r for r in csv.DictReader(fh)}
    for c, row in rows.items():
        if c in entered:
            assert row["status"] == "completed"
        else:
            assert row["status"] == "pruned" and row["reason"].startswith("pruned at epoch 3 of fold 1")
    assert _learns(read_json(run / "best.json")["best_params"])
    # compare says why a pruned candidate has no fold to compare, and how to get one
    pruned, winner = min(set(params) - entered), min(entered)
    result = invoke("compare", f"{run}:{pruned}", f"{run}:{winner}")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"candidate {pruned} has 0 of 2 folds scored (pruned: pruned at epoch 3 of fold 1" in result.output
    assert (
        "compare needs every fold: a search scores every candidate on every fold with --set" in result.output
    )
    assert invoke("compare", run, "--top", "4").exit_code == 0  # the two entrants
    cfg, data, source = load_spec(run)  # a resume has nothing left to run
    plan = plan_search(
        cfg, data, make_candidates(cfg, parse_space(cfg, source), (8, 8, 3), 3, source), source
    )
    assert plan.oracle.next_fits(fits) == []


def test_racings_probe_takes_the_place_of_pruning_within_epochs(prunable):
    assert from_config(load_config(prunable), "run") is None
    assert from_config(load_config(prunable, ["search.prune.probe=false"]), "run").rungs() == [3]


def test_fits_in_worker_processes_share_their_curves(prunable, tmp_path):
    # which fit waits for which is up to the workers, so this checks what holds in any order
    run = _search(prunable, tmp_path / "results", "--jobs", "2", "--set", "search.prune.rule=median")
    params, fits = _params(run), load_fits(run)
    first = [f for f in fits.values() if f["fold"] == 0]
    assert len(first) == 4
    for f in first:  # each worker wrote its curve, one line an epoch it ran
        lines = (run / "curves" / f"{f['key']}.jsonl").read_text().splitlines()
        assert len(lines) == f["epochs"]
        if f["status"] == "pruned":
            assert not _learns(params[f["candidate"]])
    assert not list((run / "curves").glob("*_f1.jsonl"))  # later folds are raced, not pruned
    assert _learns(read_json(run / "best.json")["best_params"])


def test_pruning_within_epochs_needs_a_validation_split(prunable, tmp_path):
    no_split = ["--set", "train.validation_split=0", "--set", "search.prune.probe=false"]
    result = invoke("search", prunable, *no_split, "--results-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert "search.prune.rule" in result.stderr and "train.validation_split is 0" in result.stderr
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())


def test_default_rule_steps_aside_without_a_validation_split_unless_it_probes(prunable, tmp_path):
    raw = yaml.safe_load(prunable.read_text())
    del raw["search"]["prune"]  # the default rule
    prunable.write_text(yaml.safe_dump(raw))
    cfg = load_config(prunable, ["train.validation_split=0", "search.prune.probe=false"])
    assert cfg.search_block().prune.rule == "asha"
    assert pin(cfg).search_block().prune.rule == "none"
    probing = load_config(prunable, ["train.validation_split=0"])  # racing's probe needs none
    assert pin(probing).search_block().prune.rule == "asha" and config_problem(probing) is None


def test_a_fit_whose_curve_cannot_be_written_trains_unpruned(tmp_path, caplog):
    import keras

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # curves/ cannot be made under a file
    pruner = Pruning(str(blocker), "median", min_fits=1).callback("c000_f0")
    x, y = make_images(40)
    layers = [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x / 255, y, epochs=2, validation_split=0.25, verbose=0, callbacks=[pruner])
    assert pruner.reason is None and "is not pruned: cannot write its curve" in caplog.text

"""Racing by evidence (search.race_rule: ttest): the oracle on given fold scores, the dry
run's line, and one search whose ranking gives every candidate a verdict."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import invoke, tiny_raw, write_config

from cnn_cifar.config.loader import validate
from cnn_cifar.core.vocabulary import CandidateStatus
from cnn_cifar.results.runs import list_runs
from cnn_cifar.results.stats import corrected_ttest, fmt_p
from cnn_cifar.search import executors
from cnn_cifar.search.oracles import Fit, RacingOracle

# fold scores by candidate: 1 leads, 3 is within noise of it, 2 is ten points behind on
# both of its first folds, 4 forty points; 2 and 4 differ from 1 by a steady amount, so
# the paired test finds them worse after two folds, where one fold could not
SCORES = {1: [0.70, 0.72, 0.71], 2: [0.60, 0.61, 0.60], 3: [0.69, 0.72, 0.70], 4: [0.30, 0.35, 0.31]}


def record(candidate: int, fold: int, score: float | None, status: str = "ok") -> dict:
    """A fits/ record as `executors.run_fit` writes it (the fields the oracle reads)."""
    return {
        "key": Fit(candidate, fold).key,
        "candidate": candidate,
        "fold": fold,
        "rung": None,
        "status": status,
        "score": score,
        "n_train": 80,
        "n_test": 20,
        "error": "RuntimeError: boom",
    }


def run_race(oracle: RacingOracle, scores: dict) -> tuple[dict, list[list[str]]]:
    """Every batch of fits the oracle asks for, scored from `scores`, until it is done."""
    done: dict = {}
    batches = []
    while todo := oracle.next_fits(done):
        batches.append([f.key for f in todo])
        done.update({f.key: record(f.candidate, f.fold, scores[f.candidate][f.fold]) for f in todo})
    return done, batches


def test_a_clearly_worse_candidate_leaves_after_two_folds_a_close_one_stays():
    oracle = RacingOracle([1, 2, 3, 4], folds=3, margin=0.03, rule="ttest", alpha=0.05)
    done, batches = run_race(oracle, SCORES)
    # fold 0 for all; one fold has no spread, so even candidate 4, 40 points behind, goes on;
    # the leader runs its other folds first
    assert batches == [
        ["c001_f0", "c002_f0", "c003_f0", "c004_f0"],
        ["c001_f1", "c001_f2", "c003_f1", "c002_f1", "c004_f1"],
        ["c003_f2"],
    ]
    status = {c: oracle.status(c, done) for c in SCORES}
    assert [status[c][0] for c in (1, 3)] == [CandidateStatus.COMPLETED] * 2
    assert status[2][0] is status[4][0] is CandidateStatus.DROPPED
    p = float(corrected_ttest(np.subtract(SCORES[1][:2], SCORES[2][:2]), 20 / 80)[1])
    assert 0.01 < p < 0.05  # the same two-sided p that compare prints
    assert status[2][1] == (
        f"worse than the leader, candidate 1, at {fmt_p(p)} after 2 of 3 folds: mean 0.6050 against "
        "0.7100 (corrected resampled t-test on those 2 folds, level 0.05)"
    )
    assert oracle.fewest() == 4 * 2 and oracle.planned({}) == 12


def test_the_margin_rule_is_unchanged_and_says_its_test_where_it_has_one():
    oracle = RacingOracle([1, 2, 3, 4], folds=3, margin=0.03)
    done, batches = run_race(oracle, SCORES)
    # after fold 0, 2 (10 points behind) and 4 leave; the leader's folds come first
    assert batches == [
        ["c001_f0", "c002_f0", "c003_f0", "c004_f0"],
        ["c001_f1", "c001_f2", "c003_f1"],
        ["c003_f2"],
    ]
    assert oracle.status(2, done) == (
        CandidateStatus.DROPPED,
        "dropped after 1 of 3 folds: mean 0.6000 is more than 0.03 below the leader's 0.7000; "
        "one fold: too few for a test",
    )
    # a candidate that falls behind after two folds carries the test on those folds
    scores = {**SCORES, 3: [0.69, 0.66, 0.70]}
    done, _ = run_race(oracle, scores)
    status, reason = oracle.status(3, done)
    assert status is CandidateStatus.DROPPED
    p = float(corrected_ttest(np.subtract(scores[1][:2], scores[3][:2]), 0.25)[1])
    assert reason.endswith(
        f"below the leader's 0.7100; against it on those 2 folds, {fmt_p(p)} (corrected resampled t-test)"
    )
    assert oracle.fewest() == 4


def test_more_looks_need_more_evidence_and_a_steady_gap_is_no_evidence():
    # 5 folds: a candidate may be tested after 2, 3 and 4 folds, so each look's p is
    # multiplied by 3 (Bonferroni): candidate 2's p of about 0.04 after two folds no longer drops it
    five = {c: s + s[:2] for c, s in SCORES.items()}
    oracle = RacingOracle([1, 2, 3, 4], folds=5, margin=0.03, rule="ttest", alpha=0.05)
    assert oracle.looks == 3
    assert not oracle.worse(
        1, 2, 1, {Fit(c, f).key: record(c, f, five[c][f]) for c in five for f in range(2)}
    )
    # differences equal on every fold leave the test no noise to measure: nobody leaves on that
    steady = {1: [0.7, 0.7, 0.7], 2: [0.6, 0.6, 0.6]}
    oracle = RacingOracle([1, 2], folds=3, margin=0.03, rule="ttest")
    done, _ = run_race(oracle, steady)
    assert oracle.status(2, done) == (CandidateStatus.COMPLETED, "")


def test_a_failed_fold_leaves_the_race_as_failed_under_the_ttest_rule():
    oracle = RacingOracle([1, 2, 3], folds=3, margin=0.03, rule="ttest")
    done = {Fit(c, 0).key: record(c, 0, SCORES[c][0]) for c in (1, 2, 3)}
    done[Fit(3, 0).key] = record(3, 0, None, "failed")
    assert [f.key for f in oracle.next_fits(done)] == ["c001_f1", "c001_f2", "c002_f1"]
    assert oracle.status(3, done) == (CandidateStatus.FAILED, "fold 0: RuntimeError: boom")


def test_the_schema_keeps_margin_as_the_default_and_refuses_a_bad_level():
    space = {"hidden.units": [4, 8]}
    cfg = validate({**tiny_raw(), "search": {"space": space}}, "tiny.yaml")
    assert (cfg.search_block().race_rule, cfg.search_block().race_alpha, cfg.search_block().margin) == (
        "margin",
        0.05,
        0.03,
    )
    with pytest.raises(Exception, match="race_alpha"):
        validate(
            {**tiny_raw(), "search": {"space": space, "race_rule": "ttest", "race_alpha": 1.5}}, "tiny.yaml"
        )


def fake_fit(params, data, train_idx, test_idx, **kwargs):
    """No training: the score grows with the hidden units, with a small wobble per fold
    and candidate (so the paired test has a spread to measure)."""
    units = next(layer["units"] for layer in params.model["layers"] if layer.get("name") == "hidden")
    wobble = np.random.default_rng([units, int(np.sum(test_idx))]).normal(0, 0.002)
    return {
        "score": units / 100 + wobble,
        "fit_time": 0.01,
        "score_time": 0.0,
        "epochs": 1,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "history": {},
    }


def test_every_candidate_of_a_racing_search_ends_with_a_verdict(tmp_path, tiny_npz, monkeypatch):
    monkeypatch.setattr(executors, "fit_one", fake_fit)
    search = {
        "strategy": "racing",
        "race_rule": "ttest",
        "race_alpha": 0.05,
        "n_iter": 9,
        "cv": 3,
        "random_state": 1,
        "space": {"hidden.units": {"randint": [4, 60]}},
    }  # asha's probe (the default) lets the best 3 of 9 race
    config = write_config(tmp_path / "race.yaml", tiny_npz, search=search)
    dry = invoke("search", config, "--dry-run").output
    assert (
        "then fold by fold only those that a corrected resampled t-test on the folds so far (two or more) "
        "does not find worse than the leader at level 0.05 (two-sided); 15 to 18 fits" in dry
    )
    assert invoke("search", config, "--results-dir", tmp_path / "results").exit_code == 0
    run = list_runs(tmp_path / "results", "search")[-1]
    rows = {int(r["candidate"]): r for r in csv.DictReader((run / "cv_results.csv").open())}
    ranking = (run / "ranking.txt").read_text().splitlines()
    lines = {int(line.split(":")[0].split()[1]): line for line in ranking if line.startswith("candidate ")}
    assert sorted(lines) == sorted(rows) == list(range(1, 10))
    statuses = [r["status"] for r in rows.values()]
    assert statuses.count("pruned") == 6 and "dropped" in statuses  # the test means something
    best = min(rows, key=lambda c: int(rows[c]["rank_test_score"]))
    for c, row in rows.items():
        line = lines[c]
        if c == best:
            assert ranking[1] == line and rows[c]["vs_best"] == "best"
        elif row["status"] == "completed":
            assert "[not distinguishable from the best: p = " in line or "[worse than the best: p" in line
        elif row["status"] == "dropped":
            assert row["reason"].startswith(f"worse than the leader, candidate {best}, at p ")
            assert "after 2 of 3 folds" in row["reason"] and f"[{row['reason']}]" in line
            why = invoke("compare", f"{run}:{c}", f"{run}:{best}").output
            assert f"has 2 of 3 folds scored (dropped: worse than the leader, candidate {best}, at p" in why
        else:
            assert row["status"] == "pruned"
            assert "pruned, no fold scored, so no test against the best, for " in line
            assert ": pruned at epoch 1 of fold 1: score " in line
    assert ranking[-1].startswith("a candidate that left the race early says why")

"""cnn-cifar compare: the corrected resampled t-test (Nadeau & Bengio 2003) against a direct
computation, its false-positive rate on simulated fold scores (the naive test's too),
Holm's correction, refusal of runs on other splits, and the --json document. Run folders
are written by hand (cv.json, a search journal): nothing trains here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import invoke
from scipy import stats

from cnn_cifar.results import stats as C

# 40,000 / 10,000 images per fold, as the tutorial's folds of CIFAR-10: n_test/n_train = 0.25
N_TRAIN, N_TEST = 40_000, 10_000
DATA = {"source": "image_folder", "path": "/data/cifar10-jpeg.tar.xz", "subset": None}
CV = {"n_splits": 3, "test_size": 0.2, "random_state": 15, "n_repeats": 1}


def cv_run(root, name, scores, data=None, cv=None, folder=None, n_train=N_TRAIN, n_test=N_TEST):
    """A finished cv run folder as `cnn-cifar cv` writes it (the fields compare reads)."""
    path = root / (folder or f"2026-01-01_10-00-00_cv_{name}")
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"command": "cv", "name": name, "status": "finished"}))
    folds = [
        {"fold": i, "accuracy": s, "n_train": n_train, "n_test": n_test} for i, s in enumerate(scores, 1)
    ]
    (path / "cv.json").write_text(
        json.dumps(
            {
                "name": name,
                "fold_accuracies": list(scores),
                "folds": folds,
                "data": data or DATA,
                "cv": dict(CV, **(cv or {})),
            }
        )
    )
    return path


def search_run(root, fold_scores: dict[int, list], cv=None):
    """A search run folder: spec, candidates and a fits journal; None: a fold never ran."""
    path = root / "2026-01-01_12-00-00_search_search"
    (path / "fits").mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"command": "search", "name": "search", "status": "finished"}))
    config = {
        "name": "search",
        "model": {"layers": [{"name": "conv1", "type": "conv", "filters": 2, "kernel": 3}]},
        "cv": dict(CV, **(cv or {})),
        "search": {"strategy": "racing", "n_iter": len(fold_scores), "space": {"conv1__filters": [2]}},
    }
    (path / "search.json").write_text(json.dumps({"source": "s.yaml", "config": config, "data": DATA}))
    (path / "candidates.json").write_text(
        json.dumps([{"candidate": c, "params": {"conv1__filters": 1 + c}} for c in fold_scores])
    )
    for c, scores in fold_scores.items():
        for f, s in enumerate(scores):
            if s is not None:
                key = f"c{c:03d}_f{f}"
                (path / "fits" / f"{key}.json").write_text(
                    json.dumps(
                        {
                            "key": key,
                            "candidate": c,
                            "fold": f,
                            "rung": None,
                            "status": "ok",
                            "score": s,
                            "fit_time": 1.0,
                            "epochs": 3,
                            "n_train": N_TRAIN,
                            "n_test": N_TEST,
                        }
                    )
                )
    return path


# --------------------------------------------------------------------------- the statistic

A = [0.6521, 0.6562, 0.6504]  # fixed fold scores (two_conv-like)
B = [0.6598, 0.6745, 0.6613]  # two_conv_hidden-like


def test_statistic_and_p_value_equal_the_formula():
    d = np.subtract(B, A)
    k, r = len(d), N_TEST / N_TRAIN
    t_direct = d.mean() / math.sqrt((1 / k + r) * d.var(ddof=1))
    p_direct = 2 * stats.t.sf(abs(t_direct), k - 1)
    t, p, df = C.corrected_ttest(d, r)
    assert df == k - 1 and t == pytest.approx(t_direct, rel=1e-12) and p == pytest.approx(p_direct, rel=1e-12)
    # ratio 0 is the naive paired t-test: scipy's own
    naive = stats.ttest_rel(B, A)
    t0, p0, _ = C.naive_ttest(d)
    assert t0 == pytest.approx(naive.statistic, rel=1e-12) and p0 == pytest.approx(naive.pvalue, rel=1e-12)
    # the interval is mean +/- t_{0.975, k-1} * corrected standard error, and excludes 0 iff p < 0.05
    half = stats.t.ppf(0.975, k - 1) * math.sqrt((1 / k + r) * d.var(ddof=1))
    low, high = C.corrected_interval(d, r)
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-12)
    assert (low > 0) == (p < 0.05)


def test_folds_needed_is_the_first_k_that_reaches_p_below_alpha():
    mean, var, r = 0.0123, 0.006**2, 0.25
    k = C.folds_needed(mean, var, r)

    def p_at(n):
        return 2 * stats.t.sf(mean / math.sqrt((1 / n + r) * var), n - 1)

    assert p_at(k) < 0.05 <= p_at(k - 1)
    # the corrected variance never falls below r * var: a small enough difference never passes
    assert C.folds_needed(0.9 * 1.96 * math.sqrt(r * var), var, r) is None
    assert C.folds_needed(0.0, var, r) is None


def test_false_positive_rate_on_correlated_folds():
    """Equal true means; each model's fold scores share a component, as folds whose training
    sets overlap do (Nadeau & Bengio's model: correlation n_test / (n_train + n_test)
    between the per-split differences). The corrected test keeps its 5%, the naive one
    does not."""
    rng = np.random.default_rng(2003)
    r, trials = N_TEST / N_TRAIN, 4000
    rho = r / (1 + r)
    for k, naive_at_least in ((3, 0.07), (10, 0.15)):

        def scores(k=k):
            shared = rng.normal(size=(trials, 1))  # the model's luck on shared rows
            own = rng.normal(size=(trials, k))  # each split's own
            return 0.66 + 0.01 * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * own)

        d = scores() - scores()
        corrected = (C.corrected_ttest(d, r)[1] < 0.05).mean()
        naive = (C.naive_ttest(d)[1] < 0.05).mean()
        assert 0.02 <= corrected <= 0.08, (k, corrected)
        assert naive > naive_at_least and naive > corrected + 0.02, (k, naive)


def test_holm_correction():
    # the textbook example: sorted p 0.01, 0.04, 0.03 -> 3 * 0.01, max(2 * 0.03, .03), max(0.04, .06)
    assert C.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert C.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert C.holm([0.9, 0.8, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    assert C.holm([0.2, 0.01, 0.3]) == pytest.approx([0.4, 0.03, 0.4])


# --------------------------------------------------------------------------- the command


def test_two_runs_text_verdict(tmp_path):
    a, b = cv_run(tmp_path, "two_conv", A), cv_run(tmp_path, "two_conv_hidden", B)
    result = invoke("compare", a, b)
    assert result.exit_code == 0, result.output
    d = np.subtract(B, A)
    t, p, _ = C.corrected_ttest(d, 0.25)
    assert f"t = {t:.2f} (2 df), p = {p:.2f}" in result.output
    needed = C.folds_needed(d.mean(), d.var(ddof=1), 0.25)
    assert (
        f"two_conv_hidden is {d.mean() * 100:.1f} points better than two_conv; with 3 folds this "
        f"is not distinguishable from noise (p = {p:.2f}); about {needed} folds would be needed"
        in " ".join(result.output.split())
    )
    assert f"cv.n_repeats={math.ceil(needed / 3)}" in result.output


def test_equal_means_with_unequal_folds_name_no_winner(tmp_path):
    # the case: fold differences +3.25, +0.5 and -3.75 points, equal means; the
    # scores' float sums differ in the last bit, which once named one of them "better"
    first = [0.6, 0.6, 0.6025]
    second = [0.5675, 0.595, 0.64]
    assert np.mean(first) != np.mean(second) and abs(np.mean(first) - np.mean(second)) < 1e-12
    a, b = cv_run(tmp_path, "first", first), cv_run(tmp_path, "second", second, folder="second_run")
    result = invoke("compare", a, b, "--json")
    (pair,) = json.loads(result.output)["pairs"]
    assert pair["mean_difference"] == 0.0 and not pair["identical"] and not pair["significant"]
    assert (pair["better"], pair["worse"]) == ("first", "second")  # a tie keeps the order given
    assert pair["verdict"].startswith(
        "first and second have the same mean accuracy, with fold differences from -3.75 points to "
        "+3.25 points: neither is better on 3 folds"
    )
    assert "better than" not in pair["verdict"] and "every fold" not in pair["verdict"]


def test_identical_runs_score_the_same_on_every_fold(tmp_path):
    a, b = cv_run(tmp_path, "first", A), cv_run(tmp_path, "second", A, folder="second_run")
    (pair,) = json.loads(invoke("compare", a, b, "--json").output)["pairs"]
    assert pair["identical"] and pair["mean_difference"] == 0.0 and pair["fold_differences"] == [0, 0, 0]
    assert pair["verdict"] == (
        "first and second score the same on every fold (3 folds): there is no difference to test."
    )


def test_a_clear_winner_on_every_fold_is_better_whatever_the_order_given(tmp_path):
    worse = [0.50, 0.51, 0.52]
    better = [0.60, 0.615, 0.62]  # ahead by 9.5 to 10.5 points on every fold
    a, b = cv_run(tmp_path, "weak", worse), cv_run(tmp_path, "strong", better, folder="strong_run")
    for args in ((a, b), (b, a)):
        (pair,) = json.loads(invoke("compare", *args, "--json").output)["pairs"]
        assert (pair["better"], pair["worse"]) == ("strong", "weak")
        assert pair["mean_difference"] > 0 and pair["significant"]
        assert pair["verdict"].startswith("strong is 10.2 points better than weak; with 3 folds this")
        assert "difference is real at p < 0.05" in pair["verdict"]


def test_json_is_valid_and_complete(tmp_path):
    runs = [cv_run(tmp_path, n, s) for n, s in (("one", A), ("two", B), ("three", [0.70, 0.72, 0.71]))]
    result = invoke("compare", *runs, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) == {
        "scoring",
        "alpha",
        "confidence_level",
        "method",
        "correction",
        "n_comparisons",
        "splits",
        "runs",
        "pairs",
    }
    assert doc["correction"] == "holm" and doc["n_comparisons"] == 3 and len(doc["pairs"]) == 3
    assert doc["splits"]["n_folds"] == 3 and doc["splits"]["test_train_ratio"] == 0.25
    assert doc["splits"]["random_state"] == 15 and doc["splits"]["data"] == DATA
    for run, scores in zip(doc["runs"], (A, B, [0.70, 0.72, 0.71]), strict=True):
        assert run["fold_scores"] == scores and run["mean"] == pytest.approx(np.mean(scores))
        assert run["ci"][0] < run["mean"] < run["ci"][1]
    pair_keys = {
        "better",
        "worse",
        "better_source",
        "worse_source",
        "fold_differences",
        "mean_difference",
        "identical",
        "std_difference",
        "ci",
        "t",
        "df",
        "p",
        "p_holm",
        "p_naive",
        "t_naive",
        "significant",
        "folds_needed",
        "repeats_needed",
        "verdict",
    }
    ps = []
    for pair in doc["pairs"]:
        assert set(pair) == pair_keys
        assert pair["mean_difference"] > 0 and len(pair["fold_differences"]) == 3
        assert pair["significant"] == (pair["p_holm"] < 0.05)
        ps.append(pair["p"])
    assert [p["p_holm"] for p in doc["pairs"]] == pytest.approx(C.holm(ps))
    assert "Holm-corrected for 3 comparisons" in doc["pairs"][0]["verdict"]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"data": dict(DATA, path="/other/cifar.npz")}, "other data (data.path"),
        ({"data": dict(DATA, subset=5000)}, "other data (data.subset None vs 5000)"),
        ({"cv": {"random_state": 16}}, "other splits (cv.random_state 15 vs 16)"),
        ({"cv": {"n_repeats": 2}, "scores": B * 2}, "other splits (cv.n_repeats 1 vs 2)"),
        ({"cv": {"test_size": 0.25}}, "other splits (cv.test_size 0.2 vs 0.25)"),
        ({"n_train": 8000}, "other training sets per fold (40,000 vs 8,000 images"),
    ],
)
def test_runs_on_other_splits_are_refused(tmp_path, change, words):
    a = cv_run(tmp_path, "a", A)
    b = cv_run(tmp_path, "b", change.pop("scores", B), **change)
    result = invoke("compare", a, b)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot pair {a} with {b}: ") and words in lines[0]


def test_random_splits_without_a_seed_are_refused(tmp_path):
    a = cv_run(tmp_path, "a", A, cv={"random_state": None})
    b = cv_run(tmp_path, "b", B, cv={"random_state": None})
    result = invoke("compare", a, b)
    assert result.exit_code == 2 and "cv.random_state is null" in result.output


def test_search_candidates_and_top(tmp_path):
    run = search_run(tmp_path, {1: [0.60, 0.62, 0.61], 2: [0.55, None, None], 3: B, 4: A})
    result = invoke("compare", f"{run}:3", f"{run}:4", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [r["name"] for r in doc["runs"]] == ["candidate 3", "candidate 4"]
    assert doc["runs"][0]["params"] == {"conv1__filters": 4}
    # a candidate pairs with a cv run on the same splits
    cv = cv_run(tmp_path, "two_conv", A)
    result = invoke("compare", cv, f"{run}:3")
    assert result.exit_code == 0 and "candidate 3 is" in result.output
    # --top: the best that scored every fold, best first (candidate 2 was dropped)
    doc = json.loads(invoke("compare", run, "--top", 3, "--json").output)
    assert [r["name"] for r in doc["runs"]] == ["candidate 3", "candidate 4", "candidate 1"]
    result = invoke("compare", f"{run}:2", f"{run}:3")
    assert result.exit_code == 2 and "candidate 2 has 1 of 3 folds scored (dropped: dropped after 1 of 3" in (
        result.output
    )
    assert "--set search.strategy=random" in result.output


def test_top_says_how_the_candidates_without_every_fold_ended(tmp_path):
    run = search_run(tmp_path, {1: A, 2: [0.50, None, None], 3: [0.51, None, None]})
    result = invoke("compare", run, "--top", 2)
    assert result.exit_code == 2, result.output
    assert "1 candidate scored every fold (2 dropped); compare needs two or more: a search scores" in (
        result.output
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["{cv}"], "compare needs two runs or more"),
        (["{cv}", "{cv}"], "named twice"),
        (["{cv}", "{search}"], "a search run; name its candidates as"),
        (["{cv}", "{search}:9"], "the search has candidates 1 to 2"),
        (["{cv}", "{cv}:1"], "RUN:N names a candidate of a search run"),
        (["{cv}", "{search}:0"], "the search has candidates 1 to 2"),
        (["{cv}", "{root}/nothing"], "no such run folder"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, args, words):
    cv = cv_run(tmp_path, "a", A)
    search = search_run(tmp_path, {1: A, 2: B})
    result = invoke("compare", *[a.format(cv=cv, search=search, root=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], result.output


def test_a_difference_no_number_of_folds_would_settle(tmp_path):
    a = cv_run(tmp_path, "a", [0.65, 0.66, 0.64])
    b = cv_run(tmp_path, "b", [0.66, 0.65, 0.645])
    doc = json.loads(invoke("compare", a, b, "--json").output)
    (pair,) = doc["pairs"]
    assert pair["folds_needed"] is None and pair["repeats_needed"] is None and not pair["significant"]
    assert "no number of folds would tell a difference of this size at p < 0.05" in pair["verdict"]
    assert "0.25 x var(d)" in pair["verdict"]


def test_one_run_named_two_ways_is_refused(tmp_path, monkeypatch):
    run = cv_run(tmp_path, "two_conv", A)
    monkeypatch.chdir(tmp_path)
    for other in (f"{run.name}/", f"./{run.name}"):  # the same folder name once normalised
        result = invoke("compare", run.name, other)
        assert result.exit_code == 2 and result.output.strip().endswith(f"{run.name}: named twice")
    result = invoke("compare", run.name, run.resolve())
    assert result.exit_code == 2
    assert result.output.strip().endswith(f"{run.resolve()} and {run.name}: one run named twice")
    result = invoke("compare", run, run)
    assert result.exit_code == 2 and f"{run}: named twice" in result.output
    search = search_run(tmp_path, {1: [0.6, 0.61, 0.62], 2: [0.5, 0.52, 0.51]})
    result = invoke("compare", f"{search}:1", f"{search.relative_to(tmp_path)}/:1")
    assert result.exit_code == 2 and "one run named twice" in result.output


def test_an_evaluate_run_is_named_with_its_article(tmp_path):
    run = tmp_path / "2026-01-01_10-00-00_evaluate_final"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"command": "evaluate", "name": "final", "status": "finished"}))
    other = cv_run(tmp_path, "two_conv", A)
    result = invoke("compare", run, other)
    assert result.exit_code == 2
    assert (
        result.output.strip() == f"Error: {run}: an evaluate run; compare takes cv runs and search candidates"
    )
    result = invoke("compare", f"{other}:1", run)
    assert f"{other} is a cv run; RUN:N names a candidate" in result.output

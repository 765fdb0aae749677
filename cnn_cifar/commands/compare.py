"""`cnn-cifar compare`: is one cross-validated score really better than another? This
module pairs runs split by split and words the verdict; `fold_scores` finds the runs'
scores and refuses runs on other splits, `results.stats` holds the corrected resampled t-test."""

from __future__ import annotations

import math

import numpy as np

from ..core.console import table
from ..core.vocabulary import ALPHA, fold_spread
from ..results.stats import (
    METHOD,
    corrected_interval,
    corrected_ttest,
    fmt_p,
    folds_needed,
    holm,
    mean_interval,
    naive_ttest,
    split_ratio,
)
from .fold_scores import Scored, check_same_splits

# Scores are fractions of the same test rows: a difference this small is float rounding
# (a mean difference of -9e-18 between two equal means), never a real one.
TIE = 1e-12


def compare(items: list[Scored], alpha: float = ALPHA) -> dict:
    """Every pair, tested split by split; with more than two runs, Holm's correction over
    all pairs. Returns the --json document (the text output is rendered from it)."""
    for other in items[1:]:
        check_same_splits(items[0], other)
    first = items[0]
    k, ratio = len(first.scores), split_ratio(first.n_train, first.n_test)
    level = 1 - alpha
    runs = [
        {
            "source": i.source,
            "name": i.label,
            "kind": i.kind,
            "params": i.params or None,
            "fold_scores": i.scores,
            "mean": i.mean,
            "std": fold_spread(i.scores),
            "ci": mean_interval(i.scores, i.n_train, i.n_test, level),
        }
        for i in items
    ]
    pairs = []
    for x in range(len(items)):
        for y in range(x + 1, len(items)):
            a, b = items[x], items[y]
            better, worse = (b, a) if b.mean - a.mean > TIE else (a, b)  # a tie keeps their order
            pairs.append(_pair(better, worse, ratio, alpha, level))
    adjusted = holm([p["p"] for p in pairs]) if len(pairs) > 1 else [p["p"] for p in pairs]
    for pair, p_adj in zip(pairs, adjusted, strict=True):
        pair["p_holm"] = p_adj if len(pairs) > 1 else None
        pair["significant"] = bool(p_adj < alpha)
        if pair["significant"]:  # nothing more to settle
            pair["folds_needed"] = pair["repeats_needed"] = None
        pair["verdict"] = verdict(pair, k, first.splits["n_splits"], alpha, first.scoring, len(pairs), ratio)
    splits = dict(first.splits, n_folds=k, n_train=first.n_train, n_test=first.n_test, test_train_ratio=ratio)
    doc: dict = _finite(
        {
            "scoring": first.scoring,
            "alpha": alpha,
            "confidence_level": level,
            "method": METHOD,
            "correction": "holm" if len(pairs) > 1 else None,
            "n_comparisons": len(pairs),
            "splits": splits,
            "runs": runs,
            "pairs": pairs,
        }
    )
    return doc


def _pair(better: Scored, worse: Scored, ratio: float, alpha: float, level: float) -> dict:
    d = np.asarray(better.scores) - np.asarray(worse.scores)
    d[np.abs(d) <= TIE] = 0.0
    t, p, df = corrected_ttest(d, ratio)
    t_naive, p_naive, _ = naive_ttest(d)
    ci = corrected_interval(d, ratio, level)
    assert ci is not None  # pairs have 2 folds or more (_check_pair)
    needed = folds_needed(float(d.mean()), float(d.var(ddof=1)), ratio, alpha)
    return {
        "better": better.label,
        "worse": worse.label,
        "better_source": better.source,
        "worse_source": worse.source,
        "fold_differences": d.tolist(),
        "mean_difference": 0.0 if abs(d.mean()) <= TIE else float(d.mean()),
        "identical": bool(np.all(d == 0)),  # the same score on every fold
        "std_difference": float(d.std()),
        "ci": [float(ci[0]), float(ci[1])],
        "t": float(t),
        "df": df,
        "p": float(p),
        "p_naive": float(p_naive),
        "t_naive": float(t_naive),
        "folds_needed": needed,
        "repeats_needed": None if needed is None else math.ceil(needed / better.splits["n_splits"]),
    }


def _finite(obj):
    """The document with every non-finite number (an infinite t) as None: valid JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _percent(scoring: str) -> bool:
    return scoring != "neg_log_loss"  # the others are fractions: shown in points


def amount(diff: float, scoring: str) -> str:
    return f"{diff * 100:.1f} points" if _percent(scoring) else f"{diff:.4f}"


def _signed(diff: float, scoring: str) -> str:
    return f"{diff * 100:+.2f} points" if _percent(scoring) else f"{diff:+.4f}"


def _folds(k: int, n_splits: int) -> str:
    if k == n_splits:
        return f"{k} folds"
    return f"{k} folds ({k // n_splits} repeats of {n_splits} splits)" if k % n_splits == 0 else f"{k} folds"


def verdict(pair: dict, k: int, n_splits: int, alpha: float, scoring: str, m: int, ratio: float) -> str:
    """The plain-English sentence for one pair, read from its fold differences: "better" only
    for a positive mean difference, "the same on every fold" only when every fold's is 0."""
    diff = pair["mean_difference"]
    a, b = pair["better"], pair["worse"]
    if pair["identical"]:
        folds = _folds(k, n_splits)
        return f"{a} and {b} score the same on every fold ({folds}): there is no difference to test."
    p_used = pair["p_holm"] if m > 1 else pair["p"]
    p_text = fmt_p(p_used) + (f", Holm-corrected for {m} comparisons" if m > 1 else "")
    if diff == 0:
        folds = pair["fold_differences"]
        return (
            f"{a} and {b} have the same mean {scoring}, with fold differences from "
            f"{_signed(min(folds), scoring)} to {_signed(max(folds), scoring)}: neither is better "
            f"on {_folds(k, n_splits)} ({p_text})."
        )
    head = f"{a} is {amount(diff, scoring)} better than {b}"
    if pair["significant"]:
        return f"{head}; with {_folds(k, n_splits)} this difference is real at p < {alpha:g} ({p_text})."
    text = f"{head}; with {_folds(k, n_splits)} this is not distinguishable from noise ({p_text})"
    needed = pair["folds_needed"]
    if needed is None:
        return (
            text + f"; at the spread measured, no number of folds would tell a difference of this "
            f"size at p < {alpha:g} (the corrected variance never falls below "
            f"n_test/n_train x var(d) = {ratio:.3g} x var(d), however many folds are run)."
        )
    if needed <= k:  # p < alpha alone, but not after Holm's correction
        return text + f"; alone it would pass ({fmt_p(pair['p'])}), not once {m} comparisons are counted."
    repeats = math.ceil(needed / n_splits)
    return (
        text + f"; about {needed} folds would be needed to tell a difference of this size at "
        f"p < {alpha:g} (cv.n_repeats={repeats} with {n_splits} splits"
        + (", for this one comparison)." if m > 1 else ").")
    )


def format_text(doc: dict) -> list:
    """What `compare` prints (`console.show`): a header line, the runs' table, then per
    pair its difference, interval, t and p and the verdict."""
    pct, sp = _percent(doc["scoring"]), doc["splits"]
    k, level = sp["n_folds"], doc["confidence_level"]
    head = (
        f"{doc['scoring']} on {_folds(k, sp['n_splits'])}, paired split by split "
        f"(StratifiedShuffleSplit test_size {sp['test_size']:g}, random_state {sp['random_state']}, "
        f"n_test/n_train = {sp['test_train_ratio']:.3g}); {level:.0%} intervals and p-values by the "
        f"{doc['method']}"
    )
    lines: list = [head, "", _runs_table(doc["runs"], pct, level), ""]
    for pair in doc["pairs"]:
        ci, unit = pair["ci"], " points" if pct else ""
        t = "inf" if pair["t"] is None else f"{pair['t']:.2f}"
        lines.append(
            f"{pair['better']} - {pair['worse']}: {_diff(pair['mean_difference'], pct)}{unit}, "
            f"{level:.0%} CI [{_diff(ci[0], pct)}, {_diff(ci[1], pct)}]{unit}, "
            f"t = {t} ({pair['df']} df), {fmt_p(pair['p'])}"
            + (f" (Holm-corrected {fmt_p(pair['p_holm'])})" if pair["p_holm"] is not None else "")
        )
        lines.append(f"  {pair['verdict']}")
    return lines


def _runs_table(runs: list[dict], pct: bool, level: float):
    headers: tuple[str, ...] = ("run", "mean", "± one std", f"{level:.0%} CI", "source", "parameters")
    rows = [
        [
            r["name"],
            _score(r["mean"], pct),
            _spread(r["std"], pct),
            f"[{_score(r['ci'][0], pct)}, {_score(r['ci'][1], pct)}]",
            r["source"],
            repr(r["params"]) if r["params"] else "",
        ]
        for r in runs
    ]
    if not any(r[-1] for r in rows):
        headers, rows = headers[:-1], [r[:-1] for r in rows]
    return table(headers, rows, right=headers[1:4])


def _score(x: float, pct: bool) -> str:
    return f"{x * 100:.2f}%" if pct else f"{x:.4f}"


def _spread(x: float, pct: bool) -> str:
    return f"{x * 100:.2f}" if pct else f"{x:.4f}"


def _diff(x: float, pct: bool) -> str:
    return f"{x * 100:+.2f}" if pct else f"{x:+.4f}"

"""The statistics of `cnn-cifar compare`: is one cross-validated score really better than another?

Folds of StratifiedShuffleSplit share most of their training images, so the scores of
one model over the folds are correlated, and the plain paired t-test on them is far too
confident. Nadeau & Bengio (2003, "Inference for the Generalization Error") correct the
variance for that overlap: with k splits, n_test / n_train = r and per-split differences
d_i (or per-split scores, for one model's interval),

    t = mean(d) / sqrt((1/k + r) * var(d)),    k - 1 degrees of freedom,

var with ddof=1. Bouckaert & Frank (2004) find this corrected test the one to use on
repeated random splits. scipy.stats gives the t distribution; Holm's step-down
correction covers more than one pair. Nothing here imports Keras.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.vocabulary import ALPHA, CONFIDENCE

METHOD = "corrected resampled t-test (Nadeau & Bengio 2003)"
MAX_FOLDS = 100_000  # folds_needed looks no further


def corrected_ttest(d, ratio: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(t, two-sided p, degrees of freedom) of the corrected resampled t-test on the
    per-split differences `d` (last axis: the k splits); `ratio` = n_test / n_train.
    ratio 0 is the naive paired t-test (scipy.stats.ttest_rel). A zero variance gives
    t = +/-inf and p = 0 for a nonzero mean, t = 0 and p = 1 for a zero one."""
    from scipy import stats

    d = np.asarray(d, dtype=float)
    k = d.shape[-1]
    if k < 2:
        raise ValueError("the corrected t-test needs 2 splits or more")
    mean, var = d.mean(axis=-1), d.var(axis=-1, ddof=1)
    se = np.sqrt((1.0 / k + ratio) * var)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, mean / np.where(se > 0, se, 1.0), np.sign(mean) * np.inf)
    t = np.where((se == 0) & (mean == 0), 0.0, t)
    p = 2 * stats.t.sf(np.abs(t), k - 1)
    return t, p, k - 1


def naive_ttest(d) -> tuple[np.ndarray, np.ndarray, int]:
    """The paired t-test that ignores the overlap of training sets (for contrast only)."""
    return corrected_ttest(d, 0.0)


def corrected_interval(values, ratio: float, level: float = CONFIDENCE) -> tuple[float, float] | None:
    """Confidence interval of the mean of per-split values (one model's scores, or the
    differences of two) with the corrected variance; None with fewer than 2 splits."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    k = len(values)
    if k < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, k - 1) * math.sqrt((1.0 / k + ratio) * values.var(ddof=1))
    mean = float(values.mean())
    return mean - half, mean + half


def folds_needed(mean: float, var: float, ratio: float, alpha: float = ALPHA) -> int | None:
    """The fewest splits at which a mean difference `mean` with per-split variance `var`
    (both as measured) would give p < alpha; None if no number would: the corrected
    variance never falls below ratio * var, so |mean| must exceed z * sqrt(ratio * var)."""
    from scipy import stats

    if mean == 0 or not np.isfinite(mean) or not np.isfinite(var):
        return None
    if var == 0:
        return 2
    if mean**2 <= stats.norm.ppf(1 - alpha / 2) ** 2 * ratio * var:
        return None
    k = np.arange(2, MAX_FOLDS + 1)
    ok = abs(mean) >= stats.t.ppf(1 - alpha / 2, k - 1) * np.sqrt((1.0 / k + ratio) * var)
    return int(k[ok.argmax()]) if ok.any() else None


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    values: list[float] = out.tolist()
    return values


def split_ratio(n_train, n_test) -> float:
    """n_test / n_train, averaged over the splits (StratifiedShuffleSplit keeps it fixed)."""
    return float(np.mean(np.asarray(n_test, dtype=float) / np.asarray(n_train, dtype=float)))


def mean_interval(scores, n_train, n_test, level: float = CONFIDENCE) -> list[float] | None:
    """cv.json's and best.json's interval of the mean score: [low, high], or None (one fold)."""
    ci = corrected_interval(scores, split_ratio(n_train, n_test), level)
    return None if ci is None else [float(ci[0]), float(ci[1])]


# --------------------------------------------------------------------------- what is compared


def fmt_p(p: float | None) -> str:
    """A p-value as the verdicts print it."""
    if p is None:
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"

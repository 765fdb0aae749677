"""`cnn-cifar compare`: is one cross-validated score really better than another?

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ALPHA = 0.05
METHOD = "corrected resampled t-test (Nadeau & Bengio 2003)"
MAX_FOLDS = 100_000  # folds_needed looks no further


class CompareError(ValueError):
    """A user's mistake (a folder that is not a finished cv run or search, runs on other
    splits): one line, exit status 2."""


# --------------------------------------------------------------------------- statistics


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


def corrected_interval(values, ratio: float, level: float = 0.95) -> tuple[float, float] | None:
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


def mean_interval(scores, n_train, n_test, level: float = 0.95) -> list[float] | None:
    """cv.json's and best.json's interval of the mean score: [low, high], or None (one fold)."""
    ci = corrected_interval(scores, split_ratio(n_train, n_test), level)
    return None if ci is None else [float(ci[0]), float(ci[1])]


# --------------------------------------------------------------------------- what is compared


@dataclass
class Scored:
    """One side of a comparison: a cv run, or a search candidate, with its fold scores and
    everything that fixes its splits."""

    source: str  # the run folder, or RUN:N for candidate N (from 1)
    name: str  # the config's name, or "candidate N"
    kind: str  # "cv" or "search candidate"
    scores: list[float]
    n_train: list[int]
    n_test: list[int]
    scoring: str
    splits: dict  # data, n_splits, n_repeats, test_size, random_state
    label: str = ""  # what verdicts call it (name, made unique)
    params: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def load(specs: list[str], top: int | None = None) -> list[Scored]:
    """The runs named on the command line: cv run folders, RUN:N for candidate N of a
    search run (numbered from 1, as the search prints them), or with `top` the `top` best
    candidates of the one search run given."""
    if top is not None:
        if len(specs) != 1:
            raise CompareError(f"--top {top} takes one search run folder, not {len(specs)} arguments")
        items = top_candidates(Path(specs[0]), top)
    else:
        items = [_load_one(spec) for spec in specs]
    seen = set()
    for item in items:
        if item.source in seen:
            raise CompareError(f"{item.source}: named twice")
        seen.add(item.source)
    if len(items) < 2:
        raise CompareError("compare needs two runs or more (cv run folders, or RUN:N for search candidate N)")
    names = [i.name for i in items]
    for item in items:
        item.label = item.name if names.count(item.name) == 1 else item.source
    return items


def _load_one(spec: str) -> Scored:
    folder, candidate = Path(spec), None
    if not folder.exists() and ":" in spec:
        head, _, tail = spec.rpartition(":")
        if not tail.isdigit() or int(tail) < 1:
            raise CompareError(
                f"{spec}: a candidate is RUN:N with N a number from 1 (as the search prints it)"
            )
        folder, candidate = Path(head), int(tail)
    command = _command(folder)
    if candidate is not None:
        if command != "search":
            raise CompareError(
                f"{spec}: {folder} is a {command} run; RUN:N names a candidate of a search run"
            )
        return search_candidate(folder, candidate)
    if command == "cv":
        return cv_run(folder)
    if command == "search":
        raise CompareError(
            f"{folder}: a search run; name its candidates as {folder}:N (numbered from 1, "
            "as the search prints them), or give --top N"
        )
    raise CompareError(f"{folder}: a {command} run; compare takes cv runs and search candidates")


def _command(folder: Path) -> str:
    from .files import RUN_FILE, read_json

    if not folder.is_dir():
        raise CompareError(f"{folder}: no such run folder")
    try:
        info = read_json(folder / RUN_FILE)
    except (OSError, ValueError):
        raise CompareError(f"{folder}: not a run folder (no readable {RUN_FILE})") from None
    return str(info.get("command")) if isinstance(info, dict) else "unknown"


def cv_run(folder: Path) -> Scored:
    """A finished cv run, from its cv.json."""
    from .files import CV_FILE, read_json

    try:
        cv = read_json(folder / CV_FILE)
        folds = sorted(cv["folds"], key=lambda f: f["fold"])
        block = cv["cv"]
        return Scored(
            source=str(folder),
            name=cv["name"],
            kind="cv",
            scores=[float(f["accuracy"]) for f in folds],
            n_train=[int(f["n_train"]) for f in folds],
            n_test=[int(f["n_test"]) for f in folds],
            scoring="accuracy",
            splits=_splits(
                cv["data"],
                block["n_splits"],
                block.get("n_repeats", 1),
                block["test_size"],
                block["random_state"],
            ),
        )
    except FileNotFoundError:
        raise CompareError(f"{folder}: no {CV_FILE} (the cv run did not finish)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"{folder / CV_FILE}: not a readable cv result ({e!r})") from None


def _splits(data: dict, n_splits: int, n_repeats: int, test_size: float, random_state) -> dict:
    data = {k: data.get(k) for k in ("source", "path", "subset")}
    return {
        "data": data,
        "n_splits": n_splits,
        "n_repeats": n_repeats,
        "test_size": test_size,
        "random_state": random_state,
    }


def _search_state(folder: Path):
    """(config, data, {candidate id: (rung, fold records)}, params by id) of a search run."""
    from .files import CANDIDATES_FILE, read_json
    from .search import SearchError
    from .search.journal import FitJournal, load_spec
    from .search.oracles import last_rung, n_folds

    try:
        cfg, data, _ = load_spec(folder)
        params = {c["candidate"]: c["params"] for c in read_json(folder / CANDIDATES_FILE)}
    except SearchError as e:
        raise CompareError(str(e)) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"{folder}: not a readable search run ({e!r})") from None
    done = FitJournal(folder).load()
    folds = n_folds(cfg)
    return cfg, data, {c: last_rung(done, c, folds) for c in params}, params


def _candidate(folder: Path, cfg, data, cid: int, rung_fits, params: dict) -> Scored:
    from .search.oracles import FIT_OK, n_splits

    _rung, fits = rung_fits
    ok = [r for r in fits if r is not None and r["status"] == FIT_OK]
    if len(ok) < len(fits):
        raise CompareError(
            f"{folder}:{cid + 1}: candidate {cid + 1} has {len(ok)} of {len(fits)} folds "
            "scored (dropped, failed or not run); compare needs every fold"
        )
    # fits journaled before records carried n_test: the fold's ratio from test_size (a
    # halving rung below the last one then looks less test-heavy than it was)
    test_share = cfg.cv.test_size
    n_test = [int(r.get("n_test") or round(r["n_train"] * test_share / (1 - test_share))) for r in ok]
    return Scored(
        source=f"{folder}:{cid + 1}",
        name=f"candidate {cid + 1}",
        kind="search candidate",
        scores=[float(r["score"]) for r in ok],
        n_train=[int(r["n_train"]) for r in ok],
        n_test=n_test,
        scoring=cfg.search.scoring,
        splits=_splits(
            data.model_dump(), n_splits(cfg), cfg.cv.n_repeats, cfg.cv.test_size, cfg.cv.random_state
        ),
        params=params,
    )


def search_candidate(folder: Path, number: int) -> Scored:
    """Candidate `number` (from 1) of a search run, from its fits journal."""
    cfg, data, fits, params = _search_state(folder)
    if number - 1 not in fits:
        raise CompareError(f"{folder}:{number}: the search has candidates 1 to {len(fits)}")
    return _candidate(folder, cfg, data, number - 1, fits[number - 1], params[number - 1])


def top_candidates(folder: Path, n: int) -> list[Scored]:
    """The n best candidates by mean score among those that scored every fold at the
    highest rung any candidate finished (halving: the last rung; otherwise rung 0)."""
    from .search.oracles import FIT_OK

    if _command(folder) != "search":
        raise CompareError(f"{folder}: --top takes a search run folder")
    cfg, data, fits, params = _search_state(folder)
    whole = {
        c: rf
        for c, rf in fits.items()
        if rf[0] is not None and all(r is not None and r["status"] == FIT_OK for r in rf[1])
    }
    if whole:
        rung = max(rf[0] for rf in whole.values())
        whole = {c: rf for c, rf in whole.items() if rf[0] == rung}
    ranked = sorted(whole, key=lambda c: (-np.mean([r["score"] for r in whole[c][1]]), c))
    if len(ranked) < 2:
        raise CompareError(
            f"{folder}: {len(ranked)} candidate(s) scored every fold; compare needs two or more"
        )
    return [_candidate(folder, cfg, data, c, whole[c], params[c]) for c in ranked[:n]]


def check_same_splits(a: Scored, b: Scored) -> None:
    """Refuse (one line) to pair runs whose splits are not the same rows."""

    def refuse(why: str):
        raise CompareError(
            f"cannot pair {a.source} with {b.source}: {why}; compare runs of the same data, "
            "subset and cv block (cv.n_splits, cv.n_repeats, cv.test_size, cv.random_state)"
        )

    if a.scoring != b.scoring:
        refuse(f"one is scored by {a.scoring}, the other by {b.scoring}")
    for key in ("source", "path", "subset"):
        if a.splits["data"].get(key) != b.splits["data"].get(key):
            refuse(f"other data (data.{key} {a.splits['data'].get(key)!r} vs {b.splits['data'].get(key)!r})")
    for key in ("n_splits", "n_repeats", "test_size", "random_state"):
        if a.splits[key] != b.splits[key]:
            refuse(f"other splits (cv.{key} {a.splits[key]!r} vs {b.splits[key]!r})")
    if a.splits["random_state"] is None:
        refuse("cv.random_state is null, so each run drew its own random splits")
    if a.n_train != b.n_train or a.n_test != b.n_test:
        refuse(
            f"other training sets per fold ({_sizes(a.n_train)} vs {_sizes(b.n_train)} images: "
            "a different halving rung?)"
        )
    if len(a.scores) < 2:
        raise CompareError(
            f"{a.source} and {b.source} have 1 fold each: a difference needs 2 folds "
            "or more to be tested (--set cv.n_splits=3, or cv.n_repeats)"
        )


def _sizes(counts: list[int]) -> str:
    return ", ".join(f"{c:,}" for c in sorted(set(counts)))


# --------------------------------------------------------------------------- the verdicts


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
            "std": float(np.std(i.scores)),
            "ci": mean_interval(i.scores, i.n_train, i.n_test, level),
        }
        for i in items
    ]
    pairs = []
    for x in range(len(items)):
        for y in range(x + 1, len(items)):
            better, worse = sorted((items[x], items[y]), key=lambda i: -i.mean)
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
        "mean_difference": float(d.mean()),
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


def fmt_p(p: float | None) -> str:
    if p is None:
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"


def _folds(k: int, n_splits: int) -> str:
    if k == n_splits:
        return f"{k} folds"
    return f"{k} folds ({k // n_splits} repeats of {n_splits} splits)" if k % n_splits == 0 else f"{k} folds"


def verdict(pair: dict, k: int, n_splits: int, alpha: float, scoring: str, m: int, ratio: float) -> str:
    """The plain-English sentence for one pair."""
    diff = pair["mean_difference"]
    p_used = pair["p_holm"] if m > 1 else pair["p"]
    p_text = fmt_p(p_used) + (f", Holm-corrected for {m} comparisons" if m > 1 else "")
    head = (
        f"{pair['better']} is {amount(diff, scoring)} better than {pair['worse']}"
        if diff > 0
        else f"{pair['better']} and {pair['worse']} score the same on every fold"
    )
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


def format_text(doc: dict) -> str:
    """The report `compare` prints."""
    pct, sp = _percent(doc["scoring"]), doc["splits"]
    k, level = sp["n_folds"], doc["confidence_level"]
    lines = [
        f"{doc['scoring']} on {_folds(k, sp['n_splits'])}, paired split by split "
        f"(StratifiedShuffleSplit test_size {sp['test_size']:g}, random_state {sp['random_state']}, "
        f"n_test/n_train = {sp['test_train_ratio']:.3g}); {level:.0%} intervals and p-values by the "
        f"{doc['method']}",
        "",
    ]
    width = max(len(r["name"]) for r in doc["runs"])
    for r in doc["runs"]:
        ci = r["ci"]
        lines.append(
            f"  {r['name']:<{width}}  {_score(r['mean'], pct)} +/- {_spread(r['std'], pct)} "
            f"(one std), {level:.0%} CI [{_score(ci[0], pct)}, {_score(ci[1], pct)}]  {r['source']}"
            + (f"  {r['params']!r}" if r["params"] else "")
        )
    lines.append("")
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
    return "\n".join(lines)


def _score(x: float, pct: bool) -> str:
    return f"{x * 100:.2f}%" if pct else f"{x:.4f}"


def _spread(x: float, pct: bool) -> str:
    return f"{x * 100:.2f}" if pct else f"{x:.4f}"


def _diff(x: float, pct: bool) -> str:
    return f"{x * 100:+.2f}" if pct else f"{x:+.4f}"

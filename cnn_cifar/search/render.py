"""A finished search's results: one row per candidate (scores, rank, `CandidateStatus`), written as
cv_results.csv, ranking.txt, best.json and the two plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config.loader import to_dict
from ..config.names import is_layer_list
from ..config.schema import Config, Data
from ..core.console import table
from ..core.files import (
    BEST_FILE,
    CV_RESULTS_FILE,
    RANKING_FILE,
    SCORE_VS_PARAMS_PLOT,
    SCORES_PLOT,
    write_json,
    write_text,
)
from ..core.tables import csv_text
from ..core.vocabulary import ALPHA, CONFIDENCE, CandidateStatus, FitStatus, fold_spread
from ..results.stats import corrected_interval, corrected_ttest, fmt_p, holm
from . import plots
from .candidates import Candidate
from .oracles import Oracle, last_rung, n_folds
from .structures import shown_params, structure_key
from .summary import BestCandidate, SearchSummary

RANKED = (
    CandidateStatus.COMPLETED,
    CandidateStatus.DROPPED,
    CandidateStatus.PRUNED,
)  # rows that may have a score (some folds)
ROW_FIELDS = (
    "mean_score",
    "std_score",
    "rank",
    "mean_fit_time",
    "std_fit_time",
    "mean_epochs",
    "status",
    "reason",
    "vs_best",
    "p_vs_best",
)  # the csv's columns after the fold scores


def write_outputs(
    cfg: Config, data: Data, run_dir: Path, candidates: list[Candidate], done: dict, oracle: Oracle
) -> SearchSummary:
    """cv_results.csv, ranking.txt, best.json and the two plots; returns the summary."""
    search = cfg.search_block()
    folds, halving = n_folds(cfg), search.strategy == "halving"
    rows = summarize(candidates, done, folds, oracle)
    mark_ties(rows, cfg.cv.test_size)
    write_text(run_dir / CV_RESULTS_FILE, cv_results_csv(rows, sorted(search.space), folds, halving))
    ranking = ranking_text(rows, search.scoring, folds, halving)
    write_text(run_dir / RANKING_FILE, ranking + "\n")
    _plot(cfg, rows, run_dir)
    best_row, best = _best(rows), None
    if best_row is not None:
        winner = next(c for c in candidates if c.id == best_row["candidate"])
        best = best_record(cfg, data, winner, best_row)
        write_json(run_dir / BEST_FILE, best.to_json())
    return SearchSummary(
        run_dir=run_dir,
        rows=rows,
        ranking=ranking,
        ranking_screen=ranking_screen(rows, search.scoring, folds, halving),
        best=best,
        n_fits=len(done),
    )


def _plot(cfg: Config, rows: list[dict], run_dir: Path) -> None:
    search = cfg.search_block()
    space = search.space
    plots.plot_search_scores(
        rows, run_dir / SCORES_PLOT, title=f"{cfg.name}: {search.scoring} per candidate ({search.strategy})"
    )
    names = sorted(space)
    structure = structure_key(space)  # its value is the layer list, not a list of choices
    varied = [
        n
        for n in names
        if n == structure or not (isinstance(space[n], list) and len({repr(v) for v in space[n]}) == 1)
    ]
    plots.plot_score_vs_params(
        rows,
        varied or names,
        run_dir / SCORE_VS_PARAMS_PLOT,
        categorical={n for n in names if isinstance(space[n], list)},
    )


def summarize(candidates: list[Candidate], done: dict, folds: int, oracle: Oracle) -> list[dict]:
    """One row per candidate from its last rung: fold scores, mean/std, rank and status
    (completed, dropped: left a race early, failed: a fit raised, invalid: could not run)."""
    rows = [_row(c, done, folds, _outcome(c, oracle, done)) for c in candidates]
    ranked = [r for r in rows if _in_rank(r)]
    for r in rows:  # completed before dropped, then by rung, folds and score
        in_rank = _in_rank(r)
        r["rank"] = 1 + sum(_merit(o) > _merit(r) for o in ranked) if in_rank else len(ranked) + 1
    return rows


def _in_rank(row: dict) -> bool:
    """Ranked: completed, or left early with a score on some folds; the others share the last rank."""
    return row["status"] in RANKED and bool(np.isfinite(row["mean_score"]))


def _outcome(c: Candidate, oracle: Oracle, done: dict) -> tuple[CandidateStatus, str | None]:
    return (CandidateStatus.INVALID, c.reason) if not c.ok else oracle.status(c.id, done)


def _merit(row: dict) -> tuple:
    n_scores = sum(s is not None for s in row["fold_scores"])
    return (row["status"] == CandidateStatus.COMPLETED, row["rung"] or 0, n_scores, row["mean_score"])


def _row(c: Candidate, done: dict, folds: int, outcome: tuple[CandidateStatus, str | None]) -> dict:
    status, reason = outcome
    rung, fits = last_rung(done, c.id, folds)
    good = [r for r in fits if r is not None and r["status"] == FitStatus.OK]
    scores = [r["score"] if r is not None and r["status"] == FitStatus.OK else None for r in fits]
    scored = [s for s in scores if s is not None] if status in RANKED else []
    mean_score, std_score = _mean_std(scored)
    mean_fit_time, std_fit_time = _mean_std([r["fit_time"] for r in good])
    return {
        "candidate": c.id,
        "params": shown_params(c.params),
        "architecture": c.architecture,
        "fold_scores": scores,
        "mean_score": mean_score,
        "std_score": std_score,
        "mean_fit_time": mean_fit_time,
        "std_fit_time": std_fit_time,
        "mean_epochs": _mean_std([r["epochs"] for r in good])[0],
        "status": status,
        "reason": reason or "",
        "rung": rung,
        "n_resources": good[0]["n_train"] if good else None,
        "n_test": good[0].get("n_test") if good else None,
        "vs_best": "",
        "p_vs_best": float("nan"),
    }


def mark_ties(rows: list[dict], test_size: float, alpha: float = ALPHA) -> None:
    """Which candidates the best one cannot be told apart from: each completed candidate of
    the best's rung is paired with it fold by fold (corrected resampled t-test, Holm's
    correction over them); `vs_best` is best, tied (p >= alpha) or worse, and empty where no
    test exists (dropped, failed, invalid, a lower halving rung, a single fold)."""
    best = _best(rows)
    if best is None or len(best["fold_scores"]) < 2:
        return
    best["vs_best"] = "best"
    others = [
        r
        for r in rows
        if r is not best
        and r["status"] == CandidateStatus.COMPLETED
        and r["rung"] == best["rung"]
        and r["n_resources"] == best["n_resources"]
    ]
    ratio = (
        best["n_test"] / best["n_resources"]
        if best["n_test"] and best["n_resources"]
        else test_size / (1 - test_size)
    )  # fits journaled before n_test was
    best["ci"] = corrected_interval(best["fold_scores"], ratio)
    if not others:
        return
    p = [float(corrected_ttest(np.subtract(best["fold_scores"], r["fold_scores"]), ratio)[1]) for r in others]
    for r, p_adjusted in zip(others, holm(p), strict=True):
        r["p_vs_best"], r["vs_best"] = p_adjusted, "tied" if p_adjusted >= alpha else "worse"


def _best(rows: list[dict]) -> dict | None:
    return min(
        (r for r in rows if r["status"] == CandidateStatus.COMPLETED),
        key=lambda r: (r["rank"], r["candidate"]),
        default=None,
    )


def _mean_std(values: list) -> tuple[float, float]:
    """Mean and standard deviation; NaN where one does not exist (no values; one value
    has no spread, so a candidate dropped after one fold has no std)."""
    mean = float(np.mean(values)) if values else float("nan")
    return mean, fold_spread(values)


def best_record(cfg: Config, data: Data, cand: Candidate, row: dict) -> BestCandidate:
    """best.json: the winner's parameters, score and full config, for evaluate --best."""
    assert cand.config is not None  # the best candidate ran
    config = to_dict(cand.config)
    config["name"] = f"{cfg.name}_best"
    config.pop("search", None)
    ci = row.get("ci")
    return BestCandidate(
        candidate=cand.id,
        params=cand.params,
        score=row["mean_score"],
        std=row["std_score"],
        # 95% corrected resampled t interval of the mean (results.stats); None with one fold
        ci=None if ci is None else [float(ci[0]), float(ci[1])],
        scoring=cfg.search_block().scoring,
        strategy=cfg.search_block().strategy,
        config=config,
        data=data.model_dump(),
    )


def cv_results_csv(rows: list[dict], names: list[str], folds: int, halving: bool) -> str:
    """RandomizedSearchCV's cv_results_ columns, one line per candidate, plus status and reason."""
    cols = (
        ["candidate"]
        + [f"param_{n}" for n in names]
        + [f"split{i}_test_score" for i in range(folds)]
        + ["mean_test_score", "std_test_score", "rank_test_score"]
        + list(ROW_FIELDS[3:])
        + (["rung", "n_resources"] if halving else [])
    )
    return csv_text(
        cols,
        (
            [r["candidate"]]
            + [r["params"].get(n) for n in names]
            + r["fold_scores"]
            + [r[k] for k in ROW_FIELDS]
            + ([r["rung"], r["n_resources"]] if halving else [])
            for r in rows
        ),
    )


def ranking_text(rows: list[dict], scoring: str, folds: int, halving: bool) -> str:
    """The tutorial's printout, best first, with the project's one convention: mean +/- one
    standard deviation over the folds (the tutorial printed two). Each line starts with the
    candidate's id (what `compare RUN:ID` takes); the candidates that left early follow
    under their own heading, their scores resting on fewer folds than those above."""
    lines = [
        f"{scoring} per candidate, best first: mean +/- one standard deviation over "
        f"{folds} folds, for parameters"
    ]
    heading = {
        "early": f"left early, scored on fewer than {folds} folds (not comparable with the means above):",
        "unscored": "without a score:",
    }
    section = "full"
    for r in sorted(rows, key=lambda r: (r["rank"], r["candidate"])):
        part = _section(r)
        if part != section:
            section = part
            lines.append(heading[part])
        lines.append(f"candidate {r['candidate']}: " + _ranking_line(r, folds, halving) + _verdict_mark(r))
    return "\n".join(lines + _tie_note(rows) + _early_note(rows))


def _section(r: dict) -> str:
    if r["status"] == CandidateStatus.COMPLETED:
        return "full"
    return "early" if r["status"] in RANKED and np.isfinite(r["mean_score"]) else "unscored"


def _n_scored(r: dict) -> int:
    return sum(s is not None for s in r["fold_scores"])


def _verdict_mark(r: dict) -> str:
    verdict = {"tied": "not distinguishable from the best", "worse": "worse than the best"}.get(
        r.get("vs_best", "")
    )
    return f"  [{verdict}: {fmt_p(r['p_vs_best'])}]" if verdict else ""


def _tie_note(rows: list[dict]) -> list[str]:
    """The footnote that says what the marks mean (nothing when no test could run)."""
    best = next((r for r in rows if r.get("vs_best") == "best"), None)
    if best is None:
        return []
    tested = [r for r in rows if r.get("vs_best") in ("tied", "worse")]
    ci = best.get("ci")
    interval = f"; {CONFIDENCE:.0%} CI of the best's mean [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
    if not tested:
        return [f"no other candidate scored every fold of the best's{interval}"]
    tied = sum(r["vs_best"] == "tied" for r in tested)
    return [
        f"{tied} of {len(tested)} candidates that scored the same folds are not distinguishable from "
        f"the best: p >= {ALPHA:g} in a corrected resampled t-test (Nadeau & Bengio 2003) against it, "
        f"Holm-corrected over the {len(tested)}; `cnn-cifar compare RUN --top N` tests the best N in pairs"
        f"{interval}"
    ]


def _early_note(rows: list[dict]) -> list[str]:
    """What the brackets of the candidates that left a race say (nothing without one)."""
    if not any(r["status"] == CandidateStatus.DROPPED for r in rows):
        return []
    return [
        "a candidate that left the race early says why: the rule that dropped it and the corrected "
        "resampled t-test against the leader of that moment on the folds it ran (two or more), "
        "fewer folds than the best's and not corrected across the candidates"
    ]


def _ranking_line(r: dict, folds: int, halving: bool) -> str:
    what = _what(r)
    if r["status"] == CandidateStatus.COMPLETED:
        line = f"{r['mean_score']:0.4f} +/- {r['std_score']:0.4f} for {what}"
        return line + (f"  [rung {r['rung']}, {r['n_resources']} images]" if halving else "")
    if _section(r) == "early":
        n = _n_scored(r)
        return f"{r['mean_score']:0.4f} on {n} of {folds} folds for {what}  [{r['reason']}]"
    if r["status"] == CandidateStatus.PRUNED:  # stopped before any fold's end
        return f"pruned, no fold scored, so no test against the best, for {what}: {r['reason']}"
    return f"{r['status']} for {what}: {r['reason']}"


def _what(r: dict) -> str:
    """A candidate in one line: its parameters, after its architecture where the search
    drew its structure (the layer list's entry, which the architecture spells out, left out)."""
    if not r.get("architecture"):
        return repr(r["params"])
    rest = {k: v for k, v in r["params"].items() if not is_layer_list(k)}
    return str(r["architecture"]) + (f" | {rest!r}" if rest else "")


def ranking_screen(rows: list[dict], scoring: str, folds: int, halving: bool) -> list:
    """The ranking on a terminal (`console.show`): ranking.txt's facts as a table."""
    head = ranking_text([], scoring, folds, halving)
    headers = ["rank", "candidate", "mean", "± std", "folds", "vs best", "status", "parameters", "note"]
    cells = [
        _screen_cells(r, folds, halving) for r in sorted(rows, key=lambda r: (r["rank"], r["candidate"]))
    ]
    if not any(c[-1] for c in cells):
        headers, cells = headers[:-1], [c[:-1] for c in cells]
    return [head, table(headers, cells, right=headers[:5]), *_tie_note(rows), *_early_note(rows)]


def _screen_cells(r: dict, folds: int, halving: bool) -> list[str]:
    def num(x) -> str:
        return f"{x:.4f}" if x is not None and np.isfinite(x) else ""

    vs = r.get("vs_best", "")
    if vs in ("tied", "worse"):
        vs += f" ({fmt_p(r['p_vs_best'])})"
    note = r["reason"]
    if halving and r["status"] == CandidateStatus.COMPLETED:
        note = f"rung {r['rung']}, {r['n_resources']} images"
    scored = f"{_n_scored(r)}/{folds}" if _section(r) != "unscored" else ""
    cells = [str(r["rank"]), str(r["candidate"]), num(r["mean_score"]), num(r["std_score"]), scored]
    return [*cells, vs, str(r["status"]), _what(r), note]

"""The search's figures: every candidate's score (scores.png) and the mean score against
each hyperparameter's value (score_vs_params.png). Drawing helpers come from `plots`."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..core.vocabulary import CandidateStatus
from ..results import plots as base
from ..results.plots import HIGHLIGHT, TRAIN_COLOUR


def _is_ok(row) -> bool:
    mean = row.get("mean_score")
    return (
        row.get("status", CandidateStatus.COMPLETED) == CandidateStatus.COMPLETED
        and mean is not None
        and np.isfinite(mean)
    )


def plot_search_scores(cv_results: list[dict], path, title=None) -> None:
    """Mean CV score ± std per candidate (sorted, best on top), fold scores as dots."""
    title = title or "Hyperparameter search: cross-validated score per candidate"
    if not cv_results:
        base.save_message(path, "No search candidates", title)
        return
    ok = sorted((r for r in cv_results if _is_ok(r)), key=lambda r: r["mean_score"])
    dropped = sorted((r for r in cv_results if _is_dropped(r)), key=lambda r: r["mean_score"])
    unscored = sorted(
        (r for r in cv_results if not _is_ok(r) and not _is_dropped(r)), key=lambda r: r["candidate"]
    )
    order = unscored + dropped + ok
    kinds = (
        [None] * len(unscored)
        + [CandidateStatus.DROPPED] * len(dropped)
        + [CandidateStatus.COMPLETED] * len(ok)
    )
    rows = len(order)
    fig = base.new_figure(8.5, 0.38 * rows + 1.6)
    ax = fig.add_subplot()

    # Bottom to top: failed or invalid, dropped early (racing: fewer folds), completed;
    # the best at the very top.
    best_y = rows - 1 if ok else None
    for y, (r, kind) in enumerate(zip(order, kinds, strict=True)):
        folds = [s for s in (r.get("fold_scores") or []) if s is not None]
        if kind is None:  # failed, invalid or pruned: no score to draw
            ax.text(
                0.01,
                y,
                _unscored(r),
                transform=ax.get_yaxis_transform(),
                va="center",
                color="0.5",
                fontstyle="italic",
                fontsize=9,
            )
            ax.axhline(y, color="0.9", linewidth=6, zorder=0)
            continue
        ax.scatter(folds, np.full(len(folds), y), s=12, color="0.55", zorder=2, linewidths=0)
        if kind is CandidateStatus.DROPPED:
            ax.plot(
                r["mean_score"],
                y,
                "o",
                markersize=7,
                markerfacecolor="white",
                markeredgecolor="0.5",
                zorder=3,
            )
            continue
        colour = HIGHLIGHT if y == best_y else TRAIN_COLOUR
        ax.errorbar(
            r["mean_score"],
            y,
            xerr=r.get("std_score") or 0,
            fmt="o",
            color=colour,
            markersize=7,
            capsize=4,
            elinewidth=1.6,
            zorder=3,
        )

    # halving: candidates dropped early were scored on fewer images; racing: on fewer folds
    sizes = len({r.get("n_resources") for r in ok + dropped}) > 1
    labels = [
        f"c{r['candidate']}" + _fewer_note(r, kind is CandidateStatus.DROPPED, sizes)
        for r, kind in zip(order, kinds, strict=True)
    ]
    ax.set_yticks(np.arange(rows), labels)
    for tick, r in zip(ax.get_yticklabels(), order, strict=True):
        if not _is_ok(r):
            tick.set_color("0.5")
    if ok:
        best_tick = ax.get_yticklabels()[-1]
        best_tick.set_fontweight("bold")
        best_tick.set_color(HIGHLIGHT)
    _search_legend(ax, ok[-1] if ok else None, bool(dropped))
    ax.set_ylim(-0.7, rows - 0.3)
    ax.set_xlabel("Cross-validated score (mean ± std over folds)")
    ax.set_ylabel("Candidate")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.08)
    ax.set_title(title, fontsize=12, fontweight="bold")
    base.save(fig, path)


def _is_dropped(row) -> bool:
    """Left early with a score on some folds: dropped by racing, or pruned on a later fold."""
    mean = row.get("mean_score")
    early = row.get("status") in (CandidateStatus.DROPPED, CandidateStatus.PRUNED)
    return bool(early and mean is not None and np.isfinite(mean))


def _unscored(row) -> str:
    """What a candidate without a score is called: invalid (could not run), pruned (stopped
    within the epochs of its first fold) or failed."""
    status = row.get("status")
    return str(
        status if status in (CandidateStatus.INVALID, CandidateStatus.PRUNED) else CandidateStatus.FAILED
    )


def _fewer_note(row, dropped: bool, sizes: bool) -> str:
    """Racing: how many folds a dropped candidate ran; halving (`sizes`: the rows were
    trained on different numbers of images): how many images."""
    if dropped:
        n = sum(s is not None for s in row.get("fold_scores") or [])
        return f" ({n} fold{'s' if n != 1 else ''})"
    return f" ({row['n_resources']:,} img)" if sizes and row.get("n_resources") else ""


def _search_legend(ax, best, dropped: bool = False):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=TRAIN_COLOUR, marker="o", label="mean ± std"),
        Line2D([], [], color="0.55", marker="o", markersize=4, linestyle="", label="single fold"),
    ]
    if dropped:
        handles.append(
            Line2D(
                [],
                [],
                color="0.5",
                marker="o",
                markerfacecolor="white",
                linestyle="",
                label="dropped early (mean of its folds)",
            )
        )
    if best is not None:
        std = best.get("std_score") or 0.0
        handles.append(
            Line2D(
                [],
                [],
                color=HIGHLIGHT,
                marker="o",
                label=(f"best: c{best['candidate']} ({best['mean_score']:.3f} ± {std:.3f})"),
            )
        )
    # below the axes: inside, it covered rows (the best is the top one, wherever its score lies)
    ax.figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9, frameon=False)


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Real) and bool(np.isfinite(float(v)))


def _category_order(v) -> tuple:
    """Ticks in order: a parameter's absence first (a layer the candidate has not), then
    numbers by value, then words."""
    if v == NOT_SET:
        return (0, 0.0, "")
    return (1, float(v), "") if _is_number(v) else (2, 0.0, str(v))


def _param_panel(ax, values, means, stds, best_idx, rng, categorical=False):
    """A list of choices is categorical: one tick per value drawn (numbers in order);
    a distribution's numbers are an axis (integer ticks for integers, log for wide ranges)."""
    from matplotlib.ticker import MaxNLocator

    numbers = all(_is_number(v) for v in values)
    if numbers and not categorical:
        x = np.asarray(values, dtype=float)
        positive = x[x > 0]
        if positive.size == x.size and x.max() / x.min() >= 100:
            ax.set_xscale("log")
        elif all(float(v).is_integer() for v in values):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        distinct = {str(v): v for v in values}.values()  # values may be lists: compared as text
        cats = [str(v) for v in sorted(distinct, key=_category_order)]
        x = np.array([cats.index(str(v)) for v in values], dtype=float)
        x += rng.uniform(-0.12, 0.12, size=x.size)
        ax.set_xticks(
            range(len(cats)),
            cats,
            rotation=30 if len(cats) > 3 else 0,
            ha="right" if len(cats) > 3 else "center",
        )
        ax.set_xlim(-0.5, len(cats) - 0.5)
    ax.errorbar(
        x, means, yerr=stds, fmt="o", color=TRAIN_COLOUR, ecolor="0.6", markersize=5, capsize=3, alpha=0.85
    )
    ax.plot(
        x[best_idx],
        means[best_idx],
        "o",
        color=HIGHLIGHT,
        markersize=9,
        markeredgecolor="black",
        zorder=4,
        label="best",
    )
    ax.grid(alpha=0.3)


NOT_SET = "(not set)"  # a conditional parameter's value for a candidate without its layer


def plot_score_vs_params(
    cv_results: list[dict], param_names: list[str], path, categorical=frozenset()
) -> None:
    """One panel per hyperparameter: mean CV score (± one std) against the parameter's
    value; names in `categorical` (lists of choices) get one tick per value."""
    title = "Mean CV score by hyperparameter value"
    ok = [r for r in cv_results if _is_ok(r)]
    if not ok or not param_names:
        base.save_message(path, "No successful candidates to plot", title)
        return
    means = np.array([r["mean_score"] for r in ok], dtype=float)
    stds = np.array([r.get("std_score") or 0.0 for r in ok], dtype=float)
    best_idx = int(np.argmax(means))
    n = len(param_names)
    ncols = n if n <= 3 else math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig = base.new_figure(4.2 * ncols + 0.5, 3.4 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    rng = np.random.default_rng(0)  # fixed jitter: same figure on every run
    for k, (ax, name) in enumerate(zip(axes, param_names, strict=False)):
        values = [(r.get("params") or {}).get(name, NOT_SET) for r in ok]
        _param_panel(ax, values, means, stds, best_idx, rng, categorical=name in categorical)
        ax.set_title(name, fontsize=11)
        if k % ncols == 0:
            ax.set_ylabel("Mean CV score")
    for ax in axes[len(param_names) :]:
        ax.set_axis_off()
    axes[0].legend(loc="best", fontsize=8, frameon=False)
    hidden = ["dropped early" if _is_dropped(r) else _unscored(r) for r in cv_results if not _is_ok(r)]
    kinds = (
        *map(str, (CandidateStatus.FAILED, CandidateStatus.INVALID, CandidateStatus.PRUNED)),
        "dropped early",
    )
    parts = [f"{hidden.count(k)} {k}" for k in kinds if k in hidden]
    plural = "s" if len(hidden) != 1 else ""
    note = f" ({' and '.join(parts)} candidate{plural} not shown)" if parts else ""
    fig.suptitle(title + note, fontsize=12, fontweight="bold")
    base.save(fig, path)

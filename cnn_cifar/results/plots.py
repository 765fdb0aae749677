"""Report figures: confusion matrix, training curves, misclassified images (the search's
figures are in `search.plots`, with the drawing helpers from here).

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas rather than
pyplot, so nothing is registered in pyplot's global figure list (no leaked
figures, no GUI backend needed, safe to call from worker threads). Each PNG is
written to a temporary file in the target folder and moved into place with
``os.replace`` so a reader never sees a half-written image.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..core.files import atomic_path

DPI = 150
CMAP = "Blues"
TRAIN_COLOUR, VAL_COLOUR, BEST_COLOUR = "#1f77b4", "#d62728", "#2ca02c"
HIGHLIGHT = "#ff7f0e"


# ---------------------------------------------------------------- helpers


def new_figure(width, height, layout="constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path) -> None:
    """Write ``fig`` atomically to ``path`` (format taken from its extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=(path.suffix or ".png").lstrip("."), dpi=DPI, facecolor="white")


def save_message(path, message, title=None) -> None:
    """Placeholder figure for empty inputs, so a report never links a missing file."""
    fig = new_figure(8, 3)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="0.4")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=13)
    save(fig, path)


def _text_colour(rgba) -> str:
    """Black or white, whichever contrasts better with the cell colour (WCAG luminance)."""
    from matplotlib.colors import to_rgb

    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(rgba)]
    luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "black" if luminance > 0.179 else "white"


# ---------------------------------------------------------------- confusion matrix


def _cm_panel(fig, ax, values, labels, fmt, norm, cbar_label, fontsize, cbar_fraction):
    im = ax.imshow(values, cmap=CMAP, norm=norm, interpolation="nearest")
    cmap = im.get_cmap()
    n = len(labels)
    # Cell texts lie inside the axes; keeping them out of the layout computation
    # saves most of the time for 20 classes (800 texts).
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                fmt(values[i, j]),
                ha="center",
                va="center",
                in_layout=False,
                fontsize=fontsize,
                color=_text_colour(cmap(norm(values[i, j]))),
            )
    ticks = np.arange(n)
    tick_fs = fontsize + 1
    ax.set_xticks(ticks, labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=tick_fs)
    ax.set_yticks(ticks, labels, fontsize=tick_fs)
    ax.set_xlabel("Predicted class", fontsize=tick_fs + 1)
    ax.set_ylabel("True class", fontsize=tick_fs + 1)
    ax.tick_params(length=0)
    # Thin white grid between cells.
    ax.set_xticks(ticks[:-1] + 0.5, minor=True)
    ax.set_yticks(ticks[:-1] + 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    cbar = fig.colorbar(im, ax=ax, fraction=cbar_fraction, aspect=max(20.0, 1 / cbar_fraction), pad=0.03)
    cbar.set_label(cbar_label, fontsize=tick_fs)
    cbar.ax.tick_params(labelsize=tick_fs - 1)


def plot_confusion_matrix(cm, class_names, path, title="Confusion matrix (test set)") -> None:
    """Counts and row-normalised (recall per true class) confusion matrices side by side."""
    from matplotlib.colors import Normalize
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    cm = np.asarray(cm)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {n} class names")
    row_totals = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, row_totals, out=np.zeros(cm.shape, dtype=float), where=row_totals > 0)
    labels = [str(c) for c in class_names]

    # Many classes: smaller cells and font, sized so that "1000" / "0.87" still fit a cell.
    fontsize = 10 if n <= 10 else max(6.0, 10 - 0.3 * (n - 10))
    cell = 0.55 if n <= 10 else 0.42
    panel = max(4.5, cell * n + 1.5)
    fig = new_figure(2 * panel + 2.5, panel + 0.9)
    engine = fig.get_layout_engine()
    assert isinstance(engine, ConstrainedLayoutEngine)  # _new_figure's default layout
    engine.set(wspace=0.08)
    cbar_frac = min(0.046, 0.25 / (cell * n))  # colour bar ~0.25 in thick, as tall as the matrix
    axes = fig.subplots(1, 2)
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else 0.0
    _cm_panel(
        fig,
        axes[0],
        cm,
        labels,
        lambda v: f"{int(v)}",
        Normalize(0, max(int(cm.max()), 1)),
        "Number of test images",
        fontsize,
        cbar_frac,
    )
    axes[0].set_title(f"Counts (n = {total}, accuracy {acc:.1%})", fontsize=fontsize + 3)
    _cm_panel(
        fig,
        axes[1],
        rates,
        labels,
        lambda v: f"{v:.2f}",
        Normalize(0, 1),
        "Fraction of true class",
        fontsize,
        cbar_frac,
    )
    axes[1].set_title("Row-normalised (recall per true class)", fontsize=fontsize + 3)
    if title:
        fig.suptitle(title, fontsize=fontsize + 5, fontweight="bold")
    save(fig, path)


# ---------------------------------------------------------------- training curves


def _best_val_epoch(history):
    val = np.asarray(history.get("val_loss") or [], dtype=float)
    if val.size == 0 or np.all(np.isnan(val)):
        return None
    return int(np.nanargmin(val)) + 1


def _curve_panel(ax, history, metric, best_epoch):
    from matplotlib.ticker import MaxNLocator

    markers = len(history.get(metric) or []) <= 60
    for key, label, colour, marker in (
        (metric, "training", TRAIN_COLOUR, "o"),
        (f"val_{metric}", "validation", VAL_COLOUR, "s"),
    ):
        values = history.get(key)
        if values is not None and len(values):
            epochs = np.arange(1, len(values) + 1)
            ax.plot(
                epochs,
                values,
                color=colour,
                label=label,
                linewidth=1.8,
                marker=marker if markers else None,
                markersize=4,
            )
    if best_epoch is not None:
        ax.axvline(
            best_epoch,
            color=BEST_COLOUR,
            linestyle="--",
            linewidth=1.3,
            label=f"best val. loss (epoch {best_epoch})",
        )
    ax.set_xlabel("Epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)


def plot_training_curves(history: dict, path, title=None) -> None:
    """Loss and accuracy per epoch, training vs validation, best val-loss epoch marked."""
    from matplotlib.ticker import PercentFormatter

    history = {k: list(v) for k, v in dict(history).items() if v is not None}
    metrics = [m for m in ("loss", "accuracy") if history.get(m) or history.get(f"val_{m}")]
    if not metrics:
        raise ValueError(f"history has no loss/accuracy values (keys: {sorted(history)})")
    best = _best_val_epoch(history)
    fig = new_figure(5.5 * len(metrics) + 0.5, 4.3)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        _curve_panel(ax, history, metric, best)
        if metric == "accuracy":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_ylabel("Accuracy")
            ax.set_title("Accuracy")
        else:
            ax.set_ylabel("Loss")
            ax.set_title("Loss")
    if title:
        fig.suptitle(title, fontsize=13, fontweight="bold")
    save(fig, path)


LEGEND_RUNS = 10  # runs named in a legend; past that it outgrows the figure (300 runs in a report)
OTHERS_COLOUR = "#9e9e9e"


def plot_accuracy_vs_time(runs: list[dict], path, title="Test accuracy against training time") -> None:
    """One marker per evaluate run at (training minutes, test accuracy); a dashed line of its
    validation accuracy by epoch where it has one (epochs spread evenly over its minutes).
    A run with `reference` true (a training of the method a preset ports) is a star. The
    references and the most accurate runs, `LEGEND_RUNS` in all, are named in colour; the
    others are grey, one legend entry for them all."""
    from matplotlib.ticker import PercentFormatter

    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    named = _named_runs(runs)
    others = [run for run in runs if not any(run is n for n in named)]
    for run in others:
        _plot_run(ax, run, OTHERS_COLOUR, None, alpha=0.35)
    for i, run in enumerate(sorted(named, key=lambda r: r["minutes"])):
        label = f"{run.get('label', run['name'])}: {run['test_accuracy']:.2%} in {_duration(run['minutes'])}"
        _plot_run(ax, run, f"C{i % 10}", label, alpha=0.7)
    if others:  # one entry for the grey ones, placed last
        ax.plot([], [], "o", color=OTHERS_COLOUR, label=f"{len(others)} other runs")
    ax.set_xlabel("Training time (minutes)")
    ax.set_ylabel("Accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9, title="test accuracy (dashed: validation, by epoch)")
    ax.set_title(title, fontsize=12, fontweight="bold")
    save(fig, path)


def _named_runs(runs: list[dict]) -> list[dict]:
    """The references, then the most accurate of the rest, `LEGEND_RUNS` at most in all."""
    references = [run for run in runs if run.get("reference")][:LEGEND_RUNS]
    rest = sorted((run for run in runs if not run.get("reference")), key=lambda r: -r["test_accuracy"])
    return references + rest[: LEGEND_RUNS - len(references)]


def _plot_run(ax, run: dict, colour: str, label: str | None, alpha: float) -> None:
    val = run["val_accuracy"]
    if val:
        minutes = [run["minutes"] * (k + 1) / len(val) for k in range(len(val))]
        ax.plot(minutes, val, "--", color=colour, linewidth=1.2, alpha=alpha)
    # a reference is a hollow star, so a run at the same spot still shows through it
    style = (
        {"marker": "*", "markersize": 16, "markerfacecolor": "none", "markeredgewidth": 1.8}
        if run.get("reference")
        else {"marker": "o", "markersize": 8 if label else 5}
    )
    ax.plot(run["minutes"], run["test_accuracy"], linestyle="none", color=colour, label=label, **style)


# ---------------------------------------------------------------- misclassified images


def _show_image(ax, img):
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.dtype != np.uint8:
        # imshow clips float RGB to [0, 1]; accept 0..255 floats too.
        img = np.clip(img / (255.0 if img.max() > 1 else 1.0), 0.0, 1.0)
    vmax = 255 if img.dtype == np.uint8 else 1.0
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_misclassified(images, true_names, pred_names, confidences, path, ncols=5) -> None:
    """Grid of misclassified images, each captioned with true / predicted class and confidence."""
    images = np.asarray(images)
    n = len(images)
    if n == 0:
        save_message(path, "No misclassified images", "Misclassified test images")
        return
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    # Never narrower than the suptitle, even for one or two images. A regular grid
    # needs no constrained layout, which would be the slowest step with 25 axes.
    # Top margin (inches): suptitle plus the two-line caption of the first row.
    width, height = max(2.0 * ncols, 6.0), 2.35 * nrows + 0.85
    fig = new_figure(width, height, layout=None)
    fig.subplots_adjust(
        left=0.1 / width,
        right=1 - 0.1 / width,
        bottom=0.1 / height,
        top=1 - 0.85 / height,
        wspace=0.1,
        hspace=0.3,
    )
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, img, t, p, c in zip(axes, images, true_names, pred_names, confidences, strict=False):
        _show_image(ax, img)
        ax.set_title(f"true: {t}\npred: {p} ({100 * float(c):.2f}%)", fontsize=8, linespacing=1.3)
    for ax in axes[n:]:
        ax.set_axis_off()
    title = "Misclassified test images"
    if n > 1 and np.all(np.diff(np.asarray(confidences, dtype=float)[:n]) <= 0):
        title += " (most confident first)"
    fig.suptitle(title, fontsize=12, fontweight="bold", y=1 - 0.1 / height, va="top")
    save(fig, path)


# ---------------------------------------------------------------- search results


def _duration(minutes: float) -> str:
    """A training time as a label says it: seconds under two minutes, else minutes."""
    return f"{minutes * 60:.0f} s" if minutes < 2 else f"{minutes:.0f} min"

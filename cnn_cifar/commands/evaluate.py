"""`cnn-cifar evaluate`: train one model on the whole training set (the config's validation
split and early stopping, as the tutorial's final model), then score it ONCE on the test
set. The test set is touched here and nowhere else.

A run folder gets metrics.json, classification_report.txt, confusion_matrix.png/.csv,
training_curves.png, misclassified.png, model.keras and summary.md.

`--best` trains a search's best candidate as the search ran it: on its data and subset,
with its --set settings (best.json's config holds them). What it takes from the search
besides the candidate (`Inherited`: the subset, the overrides still in force) is printed
before it starts and recorded in run.json, metrics.json and summary.md; `--full-data`
drops the subset.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from .. import training
from ..config.errors import ConfigError
from ..config.loader import to_dict, validate
from ..config.names import set_param, split_name
from ..config.schema import Config, Data
from ..config.yaml_io import parse_override
from ..core.files import (
    BEST_FILE,
    CLASSIFICATION_REPORT_FILE,
    CONFUSION_CSV,
    CONFUSION_PLOT,
    CURVES_PLOT,
    METRICS_FILE,
    MISCLASSIFIED_PLOT,
    MODEL_FILE,
    OVERRIDES_FILE,
    SUMMARY_FILE,
    read_json,
    write_json,
    write_text,
)
from ..core.tables import csv_text, markdown_table
from ..data.formats import Dataset
from ..data.sources import CIFAR10_CLASSES
from ..results import metrics, plots
from ..results.runs import list_runs
from ..training.folds import fit_estimator

log = logging.getLogger("cnn_cifar")
SEARCH_HINT = "run `cnn-cifar search configs/search.yaml` first"
# The tutorial's tuned model and its test figure (average precision/recall 71%).
TUTORIAL_LAYERS = ["conv 32 3x3 relu", "pool max 2", "conv 32 9x9 relu", "pool max 4", "dense 750 relu"]
TUTORIAL_FIGURE = 0.71
N_MISCLASSIFIED = 25
N_CONFUSIONS = 10  # enough to reach the tutorial's four (cat/dog, car/truck, deer/horse, bird/plane)


# --set overrides of a search that an evaluation does not use: the search block is not in
# best.json's config, and evaluate trains on the whole training set, without folds
UNUSED_SECTIONS = ("search", "cv")


class Inherited(TypedDict):
    """What an evaluate --best run takes from its search besides the best candidate: the
    search's subset (None: the whole data set) and its --set overrides still in force."""

    subset: int | None
    overrides: list[str]


class SearchFacts(TypedDict):
    """What an evaluate --best run records of the search it takes its config from."""

    run: str  # the search's run folder
    best_params: dict[str, Any]
    best_score: float | None
    best_std: float | None
    best_candidate: int | None
    scoring: str | None
    strategy: str | None
    subset: int | None  # the subset the search ran on
    inherited: Inherited


class Evaluation(metrics.ClassificationMetrics):
    """metrics.json: what `evaluate` writes and returns."""

    name: str
    training_time_s: float
    epochs: int
    max_epochs: int
    validation_split: float
    tta: str  # the test predictions' test-time augmentation
    parameters: int
    n_train: int
    n_test: int
    input_shape: list[int]
    class_names: list[str]
    confusion_matrix: list[list[int]]
    top_confusions: list
    tutorial_figure: float | None
    search_run: str | None
    search: SearchFacts | None
    data: dict[str, Any]
    config: dict[str, Any]
    history: dict[str, list[float]]


# --------------------------------------------------------------------------- --best


def find_search_run(results_dir, run: str | None = None) -> Path:
    """The given search run folder, or the latest one under results_dir with a best.json."""
    if run is not None:
        folder = Path(run)
        if not (folder / BEST_FILE).is_file():
            raise ConfigError(
                str(folder), "", f"no {BEST_FILE} here: not a finished search run folder ({SEARCH_HINT})"
            )
        return folder
    done = [f for f in list_runs(results_dir, "search") if (f / BEST_FILE).is_file()]
    if not done:
        raise ConfigError(str(results_dir), "", f"no finished search run here; {SEARCH_HINT}")
    return done[-1]


def best_config(
    folder: Path, overrides=(), subset: int | None = None, full_data: bool = False
) -> tuple[Config, SearchFacts]:
    """best.json's config (with --set overrides applied) and the search facts to record.
    The search's data (source, path and subset) becomes the config's data; --data and
    --subset (`subset`) override it as for any config, and `full_data` drops the subset.
    The search's own --set overrides are in best.json's config already: those still in
    force, and the subset when it is kept, are the facts' `inherited`."""
    source = str(folder / BEST_FILE)
    try:
        best = read_json(folder / BEST_FILE)
        raw = dict(best["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(source, "", f"not a readable search result ({e})") from None
    data = best.get("data") or {}
    if data.get("source"):
        raw["data"] = {k: data.get(k) for k in ("source", "path", "subset")}
    for text in overrides:
        set_param(raw, *parse_override(text))
    if full_data and isinstance(raw.get("data"), dict):
        raw["data"] = {**raw["data"], "subset": None}
    cfg = validate(raw, source)
    searched = data.get("subset") if isinstance(data.get("subset"), int) else None
    own = [split_name(parse_override(text)[0]) for text in overrides]
    kept = searched is not None and subset is None and cfg.data.subset == searched
    search: SearchFacts = {
        "run": str(folder),
        "best_params": best.get("best_params"),
        "best_score": best.get("best_score"),
        "best_std": best.get("best_std"),
        "best_candidate": best.get("best_candidate"),
        "scoring": best.get("scoring"),
        "strategy": best.get("strategy"),
        "subset": searched,
        "inherited": {
            "subset": searched if kept and ["data", "subset"] not in own else None,
            "overrides": [o for o in search_overrides(folder) if _in_force(o, raw, cfg, own)],
        },
    }
    return cfg, search


def search_overrides(folder: Path) -> list[str]:
    """The --set overrides the search run in `folder` was started with (its overrides.txt;
    none for a search run by `run_search` alone)."""
    try:
        return [line.strip() for line in (folder / OVERRIDES_FILE).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return []


def _in_force(text: str, raw: dict, cfg: Config, own: list[list[str]]) -> bool:
    """Whether a search's override `text` still holds in the config `raw` validates to
    (`cfg`): setting it again changes nothing, it is not in a section evaluate does not use,
    and this command's own --set does not name it (it is then this command's setting)."""
    try:
        name, value = parse_override(text)
        parts = split_name(name)
        if parts[0] in UNUSED_SECTIONS or parts in own:
            return False
        again = copy.deepcopy(raw)
        set_param(again, name, value)
        return validate(again, "") == cfg
    except ConfigError:  # a setting this config no longer has (another layer stack)
        return False


def inherited_items(search: SearchFacts | None) -> list[str]:
    """What a --best run took from its search, as the options that would say it
    (`--subset 2000`, `train.epochs=4`); empty without a search."""
    if search is None:
        return []
    subset = search["inherited"]["subset"]
    return ([f"--subset {subset}"] if subset else []) + search["inherited"]["overrides"]


def inherited_lines(search: SearchFacts | None, full_data: bool = False) -> list[str]:
    """The lines evaluate --best prints before it starts: what it takes from the search
    besides the best candidate, and the one flag that gives the whole data set."""
    if search is None:
        return []
    items = inherited_items(search)
    lines = [f"from the search: {', '.join(items)}"] if items else []
    if search["inherited"]["subset"]:
        lines.append(
            "  (the search's subset of the training images, the test set cut to match; "
            "--full-data for the whole data set)"
        )
    elif full_data and search.get("subset"):
        lines.append(f"--full-data: the whole data set, not the search's --subset {search['subset']}")
    return lines


def epochs_overrides(epochs: int | None) -> list[str]:
    """--epochs N as the settings it stands for (exactly N epochs, early stopping off),
    applied with the --set overrides: through the name router and validation."""
    return [] if epochs is None else [f"train.epochs={epochs}", "train.early_stopping=null"]


def is_tutorial_model(cfg: Config, class_names) -> bool:
    """The tutorial's final architecture on CIFAR-10: its 71% is a fair comparison."""
    return [layer.describe() for layer in cfg.model.layers] == TUTORIAL_LAYERS and tuple(
        class_names
    ) == CIFAR10_CLASSES


# --------------------------------------------------------------------------- training


def train_and_test(cfg: Config, ds: Dataset, threads: int | None = None, callbacks=None) -> dict:
    """Fit on the full training set (`training.folds.fit_estimator`, as a fold's fit), then
    predict the test set once."""
    estimator = training.estimator.from_config(cfg, input_shape=ds.input_shape)
    est = fit_estimator(estimator, ds.x_train, ds.y_train, threads, callbacks)
    proba = est.predict_proba(ds.x_test)
    return {"estimator": est, "proba": proba, "y_pred": est.classes_[proba.argmax(axis=1)], "dataset": ds}


def evaluate(
    cfg: Config,
    data: Data,
    ds: Dataset,
    run_dir: Path,
    search: SearchFacts | None = None,
    threads: int | None = None,
    callbacks=None,
) -> Evaluation:
    """Train on `ds` (`data` decoded and checked before the run folder existed), test, and
    write every output file; returns metrics.json's content."""
    out = train_and_test(cfg, ds, threads, callbacks)
    est, ds, proba, y_pred = out["estimator"], out["dataset"], out["proba"], out["y_pred"]
    names = list(ds.class_names)
    cm = metrics.confusion(ds.y_test, y_pred, len(names))
    result: Evaluation = {
        "name": cfg.name,
        **metrics.classification_metrics(ds.y_test, y_pred, names),
        "training_time_s": round(est.fit_time_, 1),
        "epochs": est.n_epochs_,
        "max_epochs": cfg.train.epochs,
        "validation_split": cfg.train.validation_split,
        "tta": cfg.model.tta,  # the test predictions' test-time augmentation
        "parameters": int(est.model_.count_params()),
        "n_train": len(ds.y_train),
        "n_test": len(ds.y_test),
        "input_shape": list(ds.input_shape),
        "class_names": names,
        "confusion_matrix": cm.tolist(),
        "top_confusions": metrics.top_confusions(cm, names),
        "tutorial_figure": TUTORIAL_FIGURE if is_tutorial_model(cfg, names) else None,
        "search_run": search["run"] if search else None,
        "search": search,
        "data": data.model_dump(),
        "config": to_dict(cfg),
        "history": est.history_,
    }
    write_json(run_dir / METRICS_FILE, result)
    log.info("%s", headline(result))
    write_text(
        run_dir / CLASSIFICATION_REPORT_FILE, metrics.classification_report_text(ds.y_test, y_pred, names)
    )
    write_text(run_dir / CONFUSION_CSV, confusion_csv(cm, names))
    write_plots(run_dir, cm, names, est.history_, ds.x_test, ds.y_test, proba, cfg.name)
    save_trained_model(est, run_dir / MODEL_FILE, cfg, names)
    write_text(run_dir / SUMMARY_FILE, summary_markdown(result))
    est.release()
    return result


def confusion_csv(cm, names) -> str:
    rows = [[name, *row] for name, row in zip(names, np.asarray(cm).tolist(), strict=True)]
    return csv_text(["true \\ predicted", *names], rows)


def write_plots(run_dir: Path, cm, names, history, x_test, y_test, proba, title) -> None:
    plots.plot_confusion_matrix(
        cm, names, run_dir / CONFUSION_PLOT, title=f"Confusion matrix, test set ({title})"
    )
    plots.plot_training_curves(history, run_dir / CURVES_PLOT, title=f"Training curves ({title})")
    wrong = metrics.most_confident_errors(proba, y_test, k=N_MISCLASSIFIED)
    pred = proba.argmax(axis=1)
    plots.plot_misclassified(
        x_test[wrong],
        [names[i] for i in y_test[wrong]],
        [names[i] for i in pred[wrong]],
        proba[wrong, pred[wrong]],
        run_dir / MISCLASSIFIED_PLOT,
    )


def save_trained_model(est, path: Path, cfg: Config, names) -> None:
    training.model_file.save_model(
        est.model_,
        path,
        {
            "class_names": list(names),
            "input_shape": list(est.input_shape_),
            "config_name": cfg.name,
            "tta": cfg.model.tta,  # `cnn-cifar predict` applies it too
        },
    )


# --------------------------------------------------------------------------- summary


def headline(m: Evaluation) -> str:
    text = (
        f"{m['name']}: test accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f} "
        f"({m['n_test']} test images, {m['epochs']} epochs, {m['training_time_s']:.0f} s training"
    )
    items = inherited_items(m.get("search"))
    text += f"; from the search: {', '.join(items)})" if items else ")"
    if m.get("tutorial_figure"):
        text += f"; tutorial: {m['tutorial_figure']:.0%}"
    return text


def summary_markdown(m: Evaluation) -> str:
    """The evaluate run as a short write-up: figures, confusions in words, plots."""
    lines = [
        f"# Test-set evaluation: {m['name']}",
        "",
        f"- Test accuracy: **{m['accuracy']:.2%}**",
        f"- Macro F1: **{m['macro_f1']:.2%}** (macro precision {m['macro_precision']:.2%}, "
        f"macro recall {m['macro_recall']:.2%})",
    ]
    if figure := m.get("tutorial_figure"):
        delta = m["macro_f1"] - figure
        lines.append(
            f"- The tutorial's tuned model reached {figure:.0%} average "
            f"precision/recall; macro F1 here is {100 * abs(delta):.1f} points "
            f"{'below' if delta < 0 else 'above'} it"
        )
    sample = "a --subset sample, " if (m.get("data") or {}).get("subset") else ""
    lines += [
        f"- Trained on the {m['n_train']} training images ({sample}{m['validation_split']:.0%} of them "
        f"held out for validation) for {m['epochs']} epochs (at most {m['max_epochs']}) "
        f"in {m['training_time_s']:.0f} s; {m['parameters']:,} parameters; "
        f"{m['n_test']} test images"
    ]
    if m.get("tta", "none") != "none":
        lines.append(f"- Test predictions with test-time augmentation: {m['tta'].replace('_', ' + ')}")
    if (s := m.get("search")) is not None:
        score = (
            f" (CV {s['scoring']} {s['best_score']:.4f} ± {s['best_std'] or 0:.4f})"
            if isinstance(s.get("best_score"), (int, float))
            else ""
        )
        lines.append(f"- Configuration: best candidate of the search run `{m['search_run']}`{score}")
        if items := inherited_items(s):
            lines.append(
                f"- Taken from the search besides its best candidate: {', '.join(items)}"
                + (
                    " (`--full-data` trains and tests on the whole data set)"
                    if s["inherited"]["subset"]
                    else ""
                )
            )
    lines += ["", "## Most confused classes", ""]
    sentences = metrics.confusion_sentences(np.array(m["confusion_matrix"]), m["class_names"], k=N_CONFUSIONS)
    lines += [f"- {s}" for s in sentences] or ["- No test image was misclassified."]
    lines += [
        "",
        "## Per-class scores",
        "",
        markdown_table(
            ("class", "precision", "recall", "F1", "support"),
            (
                (name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", s["support"])
                for name, s in m["per_class"].items()
            ),
            right=("precision", "recall", "F1", "support"),
        ).rstrip("\n"),
    ]
    weak = [n for n, s in m["per_class"].items() if s["f1"] < 0.7]
    if weak and len(weak) < len(m["per_class"]):
        lines += ["", f"Classes with F1 below 0.70: {', '.join(weak)}."]
    lines += [
        "",
        "## Plots",
        "",
        "![Confusion matrix](confusion_matrix.png)",
        "",
        "![Training curves](training_curves.png)",
        "",
        "![Most confidently misclassified test images](misclassified.png)",
        "",
    ]
    return "\n".join(lines)

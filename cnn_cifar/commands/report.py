"""`cnn-cifar report`: one table of every run under the results folder, for a write-up.

Each run folder has run.json (command, name, status, started, wall_time_s) and its
command's result: cv.json (cv), best.json (search) or metrics.json (evaluate). Runs
still running, stale, interrupted or failed are listed with their status and no figures,
whatever result files they left. A run whose process is gone without a word (SIGKILL) is
written down as stale when the report is made, and its leftovers removed (run_record.close_stale). CV
figures are the mean +/- one standard deviation over the folds and the 95% confidence
interval of the mean by the corrected resampled t (results.stats). Where there are finished
evaluate runs, accuracy_vs_time.png shows each one's test accuracy against its training
minutes, for comparing presets by what their accuracy costs; the trainings of a
`python -m benchmarks --only speedrun` result in the folder (bench-<timestamp>.json, where the
bench writes by default) are drawn beside them, airbench94's own as stars, each labelled
with its CPU: the reference a preset is measured against.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from ..core.console import fmt_seconds, table
from ..core.files import (
    ACCURACY_TIME_PLOT,
    BEST_FILE,
    CONFIG_FILE,
    CV_FILE,
    METRICS_FILE,
    OVERRIDES_FILE,
    REPORT_CSV,
    REPORT_MD,
    RUN_FILE,
    read_json,
    write_text,
)
from ..core.tables import markdown_table, write_csv
from ..core.vocabulary import RunStatus
from ..results import run_record
from ..results.plots import plot_accuracy_vs_time
from ..results.runs import list_runs
from ..results.stats import mean_interval

log = logging.getLogger("cnn_cifar")

COLUMNS = (
    "run",
    "command",
    "config",
    "data",
    "subset",
    "overrides",
    "cv_mean",
    "cv_std",
    "cv_ci_low",
    "cv_ci_high",
    "scoring",
    "test_accuracy",
    "macro_f1",
    "epochs",
    "wall_time_s",
    "started",
    "status",
)


def run_row(folder: Path) -> dict:
    """One table row; missing or unreadable files leave their cells empty, and a run.json
    that cannot be read (or holds a field of the wrong type) makes the run `unreadable`."""
    record = run_record.read_record(folder)
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row.update(run=folder.name, status=RunStatus.UNREADABLE)
    if record is None:
        return row
    row.update(
        command=record.command,
        config=record.name,
        status=run_record.status(record),
        started=record.started,
        wall_time_s="" if record.wall_time_s is None else record.wall_time_s,
        **_what_ran(folder),
    )
    if row["status"] == RunStatus.FINISHED:  # a file an unfinished run left is not its result
        row.update(_RESULTS.get(row["command"], lambda f: {})(folder))
    return row


def _what_ran(folder: Path) -> dict:
    """What sets runs of one config apart: the data (its file's name, or the source), the
    --subset and the --set overrides, from the run's config.yaml and overrides.txt; for an
    evaluate --best run, also what it took from its search (run.json's `inherited`)."""
    try:
        data = (yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}).get("data") or {}
        overrides = (folder / OVERRIDES_FILE).read_text().split()
        path, subset = data.get("path"), data.get("subset")
        return {
            "data": Path(str(path)).name if path else str(data.get("source", "")),
            "subset": subset if isinstance(subset, int) else "",
            "overrides": " ".join([*overrides, *_from_search(folder)]),
        }
    except (OSError, ValueError, AttributeError, yaml.YAMLError):  # a missing or odd file: blank
        return {}


def _from_search(folder: Path) -> list[str]:
    """What an evaluate --best run took from its search, as the overrides cell shows it after
    the run's own: `(from the search: --subset 2000, train.epochs=4)`; none for other runs."""
    inherited = (_read(folder / RUN_FILE) or {}).get("inherited")
    if not isinstance(inherited, dict):
        return []
    subset = inherited.get("subset")
    overrides = inherited.get("overrides")
    items = ([f"--subset {subset}"] if isinstance(subset, int) else []) + (
        [str(o) for o in overrides] if isinstance(overrides, list) else []
    )
    return [f"(from the search: {', '.join(items)})"] if items else []


def _cv(folder: Path) -> dict:
    cv = _read(folder / CV_FILE)
    if not cv:
        return {}
    return {
        "cv_mean": cv.get("mean_accuracy"),
        "cv_std": cv.get("std_accuracy"),
        **_ci(cv["ci_accuracy"] if "ci_accuracy" in cv else _old_ci(cv)),
        "scoring": "accuracy",
        "epochs": _epochs(cv.get("epochs")),
    }


def _old_ci(cv: dict):
    """The interval of a cv.json written before it held one, from its folds."""
    try:
        folds = cv["folds"]
        return mean_interval(
            [f["accuracy"] for f in folds], [f["n_train"] for f in folds], [f["n_test"] for f in folds]
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _ci(ci) -> dict:
    """The corrected 95% interval of the CV mean (results.stats) as two cells; empty if none."""
    ok = isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)
    return {"cv_ci_low": ci[0], "cv_ci_high": ci[1]} if ok else {}


def _search(folder: Path) -> dict:
    best = _read(folder / BEST_FILE)
    if not best:
        return {}
    return {
        "cv_mean": best.get("best_score"),
        "cv_std": best.get("best_std"),
        **_ci(best.get("best_ci")),
        "scoring": best.get("scoring", ""),
        "config": _name(best) or "",
    }


def _evaluate(folder: Path) -> dict:
    m = _read(folder / METRICS_FILE)
    if not m:
        return {}
    return {"test_accuracy": m.get("accuracy"), "macro_f1": m.get("macro_f1"), "epochs": m.get("epochs", "")}


_RESULTS = {"cv": _cv, "search": _search, "evaluate": _evaluate}


def _name(best: dict) -> str | None:
    config = best.get("config")
    return config.get("name") if isinstance(config, dict) else None


def _epochs(epochs) -> str:
    """Per-fold epochs as `min-max` (early stopping makes them differ)."""
    if not epochs:
        return ""
    lo, hi = min(epochs), max(epochs)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _read(path: Path) -> dict | None:
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def gather(results_dir) -> list[dict]:
    return [run_row(f) for f in list_runs(results_dir)]


# --------------------------------------------------------------------------- output


def _num(x, digits=4) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else ""


def _cells(row: dict) -> list[str]:
    cv = f"{_num(row['cv_mean'])} ± {_num(row['cv_std'])}" if _num(row["cv_mean"]) else ""
    if cv and row["scoring"] not in ("", "accuracy"):
        cv += f" ({row['scoring']})"
    ci = f"[{_num(row['cv_ci_low'])}, {_num(row['cv_ci_high'])}]" if _num(row["cv_ci_low"]) else ""
    wall = row["wall_time_s"]
    subset = f", {row['subset']:,} images" if isinstance(row["subset"], int) else ""
    return [
        row["run"],
        row["command"],
        row["config"],
        f"{row['data']}{subset}",
        row["overrides"],
        cv,
        ci,
        _num(row["test_accuracy"]),
        _num(row["macro_f1"]),
        str(row["epochs"]),
        fmt_seconds(wall) if isinstance(wall, (int, float)) else "",
        str(row["started"]).replace("T", " ")[:16],
        row["status"],
    ]


HEADERS = (
    "run",
    "command",
    "config",
    "data",
    "overrides",
    "CV mean ± std",
    "CV 95% CI",
    "test accuracy",
    "macro F1",
    "epochs",
    "wall time",
    "date",
    "status",
)
RIGHT = ("CV mean ± std", "CV 95% CI", "test accuracy", "macro F1", "epochs", "wall time")


def markdown(rows: list[dict]) -> str:
    return markdown_table(HEADERS, [_cells(r) for r in rows], right=RIGHT)


def screen_table(rows: list[dict]):
    """The table `cnn-cifar report` prints (a rich table; plain columns when piped)."""
    return table(HEADERS, [_cells(r) for r in rows], right=RIGHT)


def write_report(results_dir) -> tuple[list[dict], list[Path]]:
    """Gather every run and write report.md, report.csv and, where there are finished
    evaluate runs, accuracy_vs_time.png into results_dir; returns the rows and the files."""
    root = Path(results_dir)
    close_stale_runs(root)
    rows = gather(root)
    md, csv_path = root / REPORT_MD, root / REPORT_CSV
    write_text(md, f"# Runs in {root}\n\n" + markdown(rows))
    write_csv(csv_path, COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    written = [md, csv_path]
    timed = accuracy_over_time(root) + bench_trainings(root)
    if timed:
        plot_accuracy_vs_time(timed, root / ACCURACY_TIME_PLOT)
        written.append(root / ACCURACY_TIME_PLOT)
    return rows, written


def close_stale_runs(results_dir) -> None:
    """Record every run whose process is gone as stale and remove what stopped runs left
    (run_record.close_stale), saying so on stderr, one line per run."""
    for folder in list_runs(results_dir):
        closed = run_record.close_stale(folder)
        if closed is None:
            continue
        fields, removed = closed
        said = []
        if fields:
            seen = f", last seen {fields['last_seen']}" if "last_seen" in fields else ""
            said.append(f"its process is gone: recorded {RunStatus.STALE}{seen}")
        if removed:
            said.append(f"removed what it left: {', '.join(p.name for p in removed)}")
        log.warning("%s: %s", folder.name, "; ".join(said))


def accuracy_over_time(results_dir) -> list[dict]:
    """Each finished evaluate run: its config's name (and a label with its overrides),
    training minutes, test accuracy and, where it watched a validation split, the validation
    accuracy after each epoch."""
    out = []
    for folder in list_runs(results_dir):
        info, metrics = _read(folder / RUN_FILE) or {}, _read(folder / METRICS_FILE) or {}
        seconds, accuracy = metrics.get("training_time_s"), metrics.get("accuracy")
        finished = info.get("command") == "evaluate" and info.get("status") == RunStatus.FINISHED
        if not finished or seconds is None or accuracy is None:
            continue
        history = metrics.get("history") or {}
        name, overrides = info.get("name", folder.name), _what_ran(folder).get("overrides")
        out.append(
            {
                "name": name,
                "label": f"{name} ({overrides})" if overrides else name,  # runs of one config apart
                "minutes": float(seconds) / 60,
                "test_accuracy": float(accuracy),
                "val_accuracy": [float(v) for v in history.get("val_accuracy") or []],
            }
        )
    return out


def bench_trainings(results_dir) -> list[dict]:
    """Each CPU training of the speedrun part of the bench results in results_dir (not smoke
    runs), in accuracy_over_time's form plus `reference` (airbench94's own training). GPU
    trainings are left out: their seconds beside CPU minutes would read as one scale."""
    out = []
    for path in sorted(Path(results_dir).glob("bench-2*.json")):  # bench-smoke-* measure nothing
        result = _read(path) or {}
        speedrun = result.get("speedrun")
        if not isinstance(speedrun, dict):
            continue
        # benchmarks.measure.machine(): "<arch> <n> cores, <CPU model>, <bfloat16>"
        cpu = str(result.get("machine", "")).split(", ")[1:2] or ["CPU not recorded"]
        subset = "" if speedrun.get("subset") is None else f", --subset {speedrun['subset']}"
        for r in speedrun.get("runs", []):
            if r.get("device", "cpu") != "cpu":
                continue
            what = "airbench94 itself" if r["side"] == "reference" else "speedrun.yaml"
            out.append(
                {
                    "name": what,
                    "label": f"{what}, seed {r['seed']}, bench on {cpu[0]}{subset}",
                    "minutes": float(r["train_s"]) / 60,
                    "test_accuracy": float(r["test_accuracy_tta"]),
                    "val_accuracy": [],
                    "reference": r["side"] == "reference",
                }
            )
    return out

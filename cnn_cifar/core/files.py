"""Every file the project writes: one atomic writer, and the names of the result files.

A file appears complete or not at all: it is written under a temporary name in the same
folder, flushed and fsync'd, renamed over the target with `os.replace`, and the folder is
fsync'd so the rename survives a crash. A write that fails removes its temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

# Result files, by the command that writes them (one place for every name).
RUN_FILE = "run.json"  # every run: command, status, timings, machine
CONFIG_FILE = "config.yaml"  # every run: the resolved config
OVERRIDES_FILE = "overrides.txt"  # every run: the --set options, one per line
LOG_FILE = "log.txt"  # every run: log records, a failure's traceback
LOCK_FILE = ".lock"  # every run: locked by the one process writing the folder (pid inside)
RESERVE_FILE = ".reserve"  # every run, while it runs: disk space kept for recording its outcome
CV_FILE = "cv.json"  # cv
BEST_FILE = "best.json"  # search: the best candidate, for evaluate --best
SPEC_FILE = "search.json"  # search: config + data spec a resume starts from
CANDIDATES_FILE = "candidates.json"  # search: the drawn candidates
FITS_DIR = "fits"  # search: one JSON per finished fit
CURVES_DIR = "curves"  # search: each fit's validation score per epoch (pruning)
CV_RESULTS_FILE = "cv_results.csv"  # search
RANKING_FILE = "ranking.txt"  # search
SCORES_PLOT = "scores.png"  # search
SCORE_VS_PARAMS_PLOT = "score_vs_params.png"  # search
METRICS_FILE = "metrics.json"  # evaluate
CLASSIFICATION_REPORT_FILE = "classification_report.txt"  # evaluate
CONFUSION_CSV = "confusion_matrix.csv"  # evaluate
CONFUSION_PLOT = "confusion_matrix.png"  # evaluate
CURVES_PLOT = "training_curves.png"  # evaluate
MISCLASSIFIED_PLOT = "misclassified.png"  # evaluate
MODEL_FILE = "model.keras"  # evaluate
SUMMARY_FILE = "summary.md"  # evaluate
REPORT_MD, REPORT_CSV = "report.md", "report.csv"  # report, in the results folder
ACCURACY_TIME_PLOT = "accuracy_vs_time.png"  # report: evaluate runs, accuracy against minutes


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path` to write to; on success it replaces `path`
    (fsync'd file and folder), on any error it is removed and `path` is left as it was.
    The temporary name keeps the suffix, for writers that pick a format by it (Keras)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove what a killed or failed writer left in `folder`: `atomic_path`'s temporary
    files and TensorBoard's `.<fit>.tmp/` folders (both named `.<name>.tmp...`)."""
    removed = []
    for path in Path(folder).glob(".*.tmp*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, default=_jsonable) + "\n")


def overwrite_json(path: str | Path, obj, indent: int | None = 2) -> None:
    """Rewrite an existing file in place (truncated, written, fsync'd): not atomic, so only
    for a file that must change where its folder refuses the temporary name of `write_json`
    (a folder made read-only while its process runs)."""
    data = (json.dumps(obj, indent=indent, default=_jsonable) + "\n").encode()
    with open(path, "r+b") as f:  # never creates: the folder would refuse a new name anyway
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(x):
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def one_line(e: BaseException, limit: int = 400) -> str:
    """`Type: message` on one line, whitespace collapsed, cut at `limit` characters: how
    run.json, fit records and the terminal name an error."""
    text = " ".join(str(e).split()) or "(no message)"
    text = f"{type(e).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."

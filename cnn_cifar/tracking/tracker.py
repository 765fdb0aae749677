"""The tracking of one command's run besides its folder (see the package's docstring)."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config.schema import Track
from ..core.records import FitRecord, FitResult
from ..core.tracking import TrackedRun
from ..core.vocabulary import UserError
from . import tensorboard
from .mlflow_runs import MlflowRuns
from .warn import warn

log = logging.getLogger("cnn_cifar")
INSTALL_HINT = "pip install 'cnn-cifar[mlflow]'"


class TrackingError(UserError):
    """A tracking setting that cannot work (the CLI shows it as one line, exit status 2)."""


def check(track: Track) -> None:
    """Refuse, before anything runs, what cannot be tracked: MLflow without the extra."""
    if track.mlflow and importlib.util.find_spec("mlflow") is None:
        raise TrackingError(f"--track mlflow needs MLflow, which is not installed: {INSTALL_HINT}")


class RunTracker:
    """The tracking of one command's run, as its `track:` settings ask (a `core.tracking.Tracker`)."""

    def __init__(self, track: Track | None = None):
        self.track = track or Track()
        self.tensorboard = self.track.tensorboard
        self.mlflow: MlflowRuns | None = None
        if self.track.mlflow:
            self.mlflow = MlflowRuns(self.track.mlflow)
        self.run_dir: Path | None = None
        self.fits, self.seconds = 0, 0.0  # fits written to TensorBoard; seconds spent tracking

    def start(self, run: TrackedRun) -> None:
        """The run folder exists: open the MLflow parent run (or reopen a resumed one's)."""
        self.run_dir = run.dir
        start = time.perf_counter()
        if self.mlflow is not None:
            self.mlflow.start(run)
        self.seconds += time.perf_counter() - start

    def log_fit(self, name: str, params: Mapping[str, Any], result: FitResult | FitRecord) -> None:
        """One finished fit: `result` as fit_one or a search's fit record has it (status,
        score, history, epochs, fit_time, n_train, error); `params` what sets it apart
        (candidate parameters, fold). Never raises."""
        if self.run_dir is None:
            return
        params = {k: v for k, v in params.items() if v is not None}
        start = time.perf_counter()
        if self.tensorboard:
            folder = self.run_dir / tensorboard.TENSORBOARD_DIR
            try:
                if not self.fits:  # the table's columns: this command's fits share their names
                    tensorboard.write_experiment(folder, [*params, "status"])
                tensorboard.write_fit(folder, name, params, result)
                self.fits += 1
            except Exception as e:
                self.tensorboard = False
                warn("TensorBoard", str(folder), e)
        if self.mlflow is not None:
            self.mlflow.log_fit(name, params, result)
        self.seconds += time.perf_counter() - start

    def finish(self, run: TrackedRun, status: str) -> None:
        """After the outcome is recorded: artifacts and status of the parent run."""
        start = time.perf_counter()
        if self.mlflow is not None:
            self.mlflow.finish(run, status)
        self.seconds += time.perf_counter() - start
        if self.fits or self.mlflow is not None:  # what tracking cost this run, in log.txt
            log.info(
                "tracking: %.2f s in all (%d fits in TensorBoard%s)",
                self.seconds,
                self.fits,
                ", MLflow" if self.mlflow is not None else "",
            )


def evaluated(result: Mapping[str, Any]) -> FitResult:
    """evaluate's metrics.json as a fit result: its score is the test accuracy (a fit
    result has scored, so trackers log it as status ok)."""
    return {
        "score": result["accuracy"],
        "history": result.get("history") or {},
        "epochs": result["epochs"],
        "fit_time": result["training_time_s"],
        "n_train": result["n_train"],
        "n_test": result["n_test"],
    }

"""Tracking besides the run folder: TensorBoard event files (on by default) and an MLflow
store (`--track mlflow`), both behind one small interface that `runs.Run` drives:

    start(run)                 Run.__enter__: the MLflow parent run of the command
    log_fit(name, params, r)   as each fit's result arrives (cv fold, search fit, evaluate)
    finish(run, status)        Run.__exit__: the run's result files as artifacts, its status

Every fit is logged from the command's own process, from the result it returns (per-epoch
`history`, score, status), never from inside the training. Why: fits also run in loky
worker processes and on dask workers on other machines, which may not see the run folder
or reach the tracking store; several processes writing one sqlite file contend for its
lock; and a callback in a worker would have to be rebuilt there from picklable settings
for nothing, since the history holds every epoch. So nothing here travels to a worker,
tracking costs no time inside training (its price is a few file writes per fit), and a
tracking failure is caught in one place. The price: a fit shows up when it ends, not epoch
by epoch (the terminal shows the live progress).

TensorBoard: `<run>/tensorboard/<fit>/` per fit, laid out as Keras' TensorBoard callback
does (`train/` and `validation/` with `epoch_loss`, `epoch_accuracy`, and the learning rate
in `train/epoch_learning_rate`, step = epoch from 1), and in the fit's own folder its HParams
session (its parameters, fold, status) and its final `score`: `tensorboard --logdir <run>`
shows a search or a cv as the HParams table and parallel-coordinates view. A fit's folder
is written under a temporary name and renamed: it is there complete or not at all.

MLflow: one parent run per command (config, overrides, data, versions, result files as
artifacts) and one nested run per fit (`mlflow.parentRunId`), written through
`MlflowClient` (no autolog, no global active run). A store that fails (unwritable path,
server down) is one warning line; the run and its files go on without it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import FITS_DIR
from ..schema import Track

if TYPE_CHECKING:
    from .mlflow_runs import MlflowRuns

log = logging.getLogger("cnn_cifar")

TENSORBOARD_DIR = "tensorboard"  # every run with track.tensorboard: one folder per fit
MLFLOW_DB = "mlflow.db"  # --track mlflow: the default store, in the results folder
MLFLOW_ARTIFACTS = "mlartifacts"  # beside a local sqlite store: the runs' artifacts
EXPERIMENT = "cnn-cifar"  # the MLflow experiment (MLFLOW_EXPERIMENT_NAME overrides it)
INSTALL_HINT = "pip install 'cnn-cifar[mlflow]'"
SKIP_ARTIFACTS = {FITS_DIR, TENSORBOARD_DIR}  # per-fit records, logged as nested runs already


class TrackingError(ValueError):
    """A tracking setting that cannot work (the CLI shows it as one line, exit status 2)."""


def default_store(results_dir: str | Path) -> str:
    """MLflow's own default kind of store, a sqlite file, in the results folder."""
    return f"sqlite:///{Path(results_dir).resolve() / MLFLOW_DB}"


def check(track: Track) -> None:
    """Refuse, before anything runs, what cannot be tracked: MLflow without the extra."""
    if track.mlflow and importlib.util.find_spec("mlflow") is None:
        raise TrackingError(f"--track mlflow needs MLflow, which is not installed: {INSTALL_HINT}")


def learning_rate_log():
    """A Keras callback that adds the optimizer's learning rate (the schedule's value at the
    epoch's end) to each epoch's logs, and so to the fit's history, as Keras' own
    LearningRateScheduler does. Keras appends its History callback after the given ones."""
    import keras

    class LearningRateLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))

    return LearningRateLog()


class Tracker:
    """The tracking of one command's run, as its `track:` settings ask."""

    def __init__(self, track: Track | None = None):
        self.track = track or Track()
        self.tensorboard = self.track.tensorboard
        self.mlflow: MlflowRuns | None = None
        if self.track.mlflow:
            from .mlflow_runs import MlflowRuns

            self.mlflow = MlflowRuns(self.track.mlflow)
        self.run_dir: Path | None = None
        self.fits, self.seconds = 0, 0.0  # fits written to TensorBoard; seconds spent tracking

    def start(self, run) -> None:
        """The run folder exists: open the MLflow parent run (or reopen a resumed one's)."""
        self.run_dir = run.dir
        start = time.perf_counter()
        if self.mlflow is not None:
            self.mlflow.start(run)
        self.seconds += time.perf_counter() - start

    def log_fit(self, name: str, params: dict, result: dict) -> None:
        """One finished fit: `result` as fit_one or a search's fit record has it (status,
        score, history, epochs, fit_time, n_train, error); `params` what sets it apart
        (candidate parameters, fold). Never raises."""
        if self.run_dir is None:
            return
        params = {k: v for k, v in params.items() if v is not None}
        start = time.perf_counter()
        if self.tensorboard:
            try:
                from .tensorboard import write_experiment, write_fit

                if not self.fits:  # the table's columns: this command's fits share their names
                    write_experiment(self.run_dir / TENSORBOARD_DIR, [*params, "status"])
                write_fit(self.run_dir / TENSORBOARD_DIR, name, params, result)
                self.fits += 1
            except Exception as e:
                self.tensorboard = False
                warn("TensorBoard", str(self.run_dir / TENSORBOARD_DIR), e)
        if self.mlflow is not None:
            self.mlflow.log_fit(name, params, result)
        self.seconds += time.perf_counter() - start

    def finish(self, run, status: str) -> None:
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


def evaluated(result: dict) -> dict:
    """evaluate's metrics.json as a fit result: its score is the test accuracy."""
    return {
        "status": "ok",
        "score": result["accuracy"],
        "history": result.get("history") or {},
        "epochs": result.get("epochs"),
        "fit_time": result.get("training_time_s"),
        "n_train": result.get("n_train"),
    }


def warn(what: str, where: str, e: BaseException) -> None:
    """One line on stderr and in log.txt; the run goes on without this tracking."""
    from ..files import one_line

    line = f"warning: {what} tracking failed ({where}: {one_line(e, 300)}); the run goes on without it"
    log.warning(line)
    print(line, file=sys.stderr)

"""Tracking besides the run folder: TensorBoard event files (on by default) and an MLflow
store (`--track mlflow`), both behind `RunTracker`, the one small interface that
`results.runs.Run` drives (`core.tracking.Tracker`):

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

Imports `results` (run.json, for MLflow's run id), `config` and `core`; never training,
search or a command, which drive it through `core.tracking.Tracker`.
"""

from .mlflow_runs import default_store
from .tracker import RunTracker, TrackingError, check, evaluated

__all__ = ("RunTracker", "TrackingError", "check", "default_store", "evaluated")

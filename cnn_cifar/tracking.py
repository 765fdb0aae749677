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

import contextlib
import importlib.util
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .files import FITS_DIR, RUN_FILE, read_json
from .schema import Track

log = logging.getLogger("cnn_cifar")

TENSORBOARD_DIR = "tensorboard"  # every run with track.tensorboard: one folder per fit
MLFLOW_DB = "mlflow.db"  # --track mlflow: the default store, in the results folder
MLFLOW_ARTIFACTS = "mlartifacts"  # beside a local sqlite store: the runs' artifacts
EXPERIMENT = "cnn-cifar"  # the MLflow experiment (MLFLOW_EXPERIMENT_NAME overrides it)
INSTALL_HINT = "pip install 'cnn-cifar[mlflow]'"
# history keys -> (TensorBoard subfolder, tag), as keras.callbacks.TensorBoard names them
_TB_SPLITS = {"train": "", "validation": "val_"}
_SKIP_ARTIFACTS = {FITS_DIR, TENSORBOARD_DIR}  # per-fit records, logged as nested runs already
_MAX_PARAM = 500  # characters of a parameter value (MLflow accepts 6000; a table needs fewer)


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
        self.mlflow: _Mlflow | None = _Mlflow(self.track.mlflow) if self.track.mlflow else None
        self.run_dir: Path | None = None

    def start(self, run) -> None:
        """The run folder exists: open the MLflow parent run (or reopen a resumed one's)."""
        self.run_dir = run.dir
        if self.mlflow is not None:
            self.mlflow.start(run)

    def log_fit(self, name: str, params: dict, result: dict) -> None:
        """One finished fit: `result` as fit_one or a search's fit record has it (status,
        score, history, epochs, fit_time, n_train, error); `params` what sets it apart
        (candidate parameters, fold). Never raises."""
        if self.run_dir is None:
            return
        params = {k: v for k, v in params.items() if v is not None}
        if self.tensorboard:
            try:
                write_tensorboard(self.run_dir / TENSORBOARD_DIR, name, params, result)
            except Exception as e:
                self.tensorboard = False
                _warn("TensorBoard", str(self.run_dir / TENSORBOARD_DIR), e)
        if self.mlflow is not None:
            self.mlflow.log_fit(name, params, result)

    def finish(self, run, status: str) -> None:
        """After the outcome is recorded: artifacts and status of the parent run."""
        if self.mlflow is not None:
            self.mlflow.finish(run, status)


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


# --------------------------------------------------------------------------- TensorBoard


def write_tensorboard(folder: Path, name: str, params: dict, result: dict) -> Path:
    """`folder/<name>/`: the fit's per-epoch scalars, HParams session and final score."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    final = folder / name
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    history = result.get("history") or {}
    for split, prefix in _TB_SPLITS.items():
        keys = [k for k in history if k.startswith(prefix) and (prefix or not k.startswith("val_"))]
        if not keys:
            continue
        with _writer(tf, tmp / split):
            for key in keys:
                for epoch, value in enumerate(history[key], 1):
                    tf.summary.scalar(f"epoch_{key[len(prefix) :]}", _finite(value), step=epoch)
    with _writer(tf, tmp):
        hp.hparams(
            {k: _hparam(v) for k, v in {**params, "status": result.get("status", "ok")}.items()},
            trial_id=name,
        )
        if isinstance(result.get("score"), (int, float)):
            tf.summary.scalar("score", _finite(result["score"]), step=int(result.get("epochs") or 0))
    if final.exists():  # a fit run again (a resumed search): the new one replaces it
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


@contextlib.contextmanager
def _writer(tf, path: Path):
    writer = tf.summary.create_file_writer(str(path))
    try:
        with writer.as_default():
            yield
        writer.flush()
    finally:
        writer.close()


def _hparam(value):
    """An HParams value: bool, int, float or str (anything else as its JSON text)."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


def _finite(value) -> float:
    value = float(value)
    return value if math.isfinite(value) else float("nan")


# --------------------------------------------------------------------------- MLflow


class _Mlflow:
    """The MLflow side: a parent run per command, a nested run per fit, through MlflowClient.
    The first failure of the store is one warning line; after it, nothing more is tried."""

    def __init__(self, uri: str):
        self.uri = uri
        self.client: Any = None
        self.parent: str | None = None
        self.experiment: str | None = None
        self.broken = False

    def _safe(self, what, *args) -> Any:
        if self.broken:
            return None
        try:
            return what(*args)
        except Exception as e:  # a store down or unwritable must not stop the run
            self.broken = True
            _warn("MLflow", self.uri, e)
            return None

    def start(self, run) -> None:
        self._safe(self._start, run)

    def _start(self, run) -> None:
        # a server that is down answers at once; MLflow's default is 7 retries with backoff
        # (minutes) and a 120 s timeout: a run should not wait that long for its tracking
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow import MlflowClient

        for name in ("mlflow", "alembic"):  # the store's migrations log at INFO on first use
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment = self._experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT)
        info = read_json(run.dir / RUN_FILE)
        previous = info.get("mlflow") or {}
        if run.resume is not None and previous.get("uri") == self.uri and previous.get("run_id"):
            self.parent = previous["run_id"]  # search --resume: the same parent run goes on
            self.client.update_run(self.parent, status="RUNNING")
            return
        tags = {
            "mlflow.source.name": f"cnn-cifar {run.command}",
            "mlflow.source.type": "LOCAL",
            "command": run.command,
            "config": run.name,
            "run_dir": str(run.dir.resolve()),
            "argv": " ".join(info.get("argv") or sys.argv)[:_MAX_PARAM],
            "overrides": " ".join(run.overrides)[:_MAX_PARAM],
            "host": platform.node(),
            **{f"version.{k}": str(v) for k, v in _versions(info).items()},
        }
        parent = self.client.create_run(self.experiment, run_name=run.dir.name, tags=tags)
        self.parent = parent.info.run_id
        self._log(self.parent, params=config_params(run.config_yaml))
        from .runs import update_run

        update_run(run.dir, mlflow={"uri": self.uri, "run_id": self.parent, "experiment_id": self.experiment})

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:///"):  # artifacts beside the database, not in ./mlruns
            db = Path(self.uri[len("sqlite:///") :]).resolve()
            location = (db.parent / MLFLOW_ARTIFACTS).as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except Exception:  # created meanwhile by another command
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def log_fit(self, name: str, params: dict, result: dict) -> None:
        if self.parent is not None:
            self._safe(self._log_fit, name, params, result)

    def _log_fit(self, name: str, params: dict, result: dict) -> None:
        end = _ms(result.get("finished")) or int(time.time() * 1000)
        start = end - int(1000 * float(result.get("fit_time") or 0))
        tags = {"mlflow.parentRunId": self.parent, "status": str(result.get("status", "ok"))}
        if result.get("error"):
            tags["error"] = str(result["error"])[:_MAX_PARAM]
        child = self.client.create_run(self.experiment, start_time=start, tags=tags, run_name=name)
        run_id = child.info.run_id
        metrics = [
            (key, value, epoch)
            for key, values in (result.get("history") or {}).items()
            for epoch, value in enumerate(values, 1)
        ]
        metrics += [
            (k, result[k], 0) for k in ("score", "fit_time", "epochs", "n_train") if _number(result.get(k))
        ]
        self._log(run_id, params={k: _param(v) for k, v in params.items()}, metrics=metrics, timestamp=end)
        status = "FINISHED" if result.get("status", "ok") == "ok" else "FAILED"
        self.client.set_terminated(run_id, status, end_time=end)

    def finish(self, run, status: str) -> None:
        if self.parent is not None:
            self._safe(self._finish, run, status)

    def _finish(self, run, status: str) -> None:
        info = read_json(run.dir / RUN_FILE)
        metrics = [(k, v, 0) for k, v in info.items() if _number(v) and k not in ("pid", "pid_started")]
        self._log(self.parent, metrics=metrics)
        for path in sorted(run.dir.iterdir()):
            if path.name in _SKIP_ARTIFACTS or path.name.startswith("."):
                continue
            if path.is_dir():
                self.client.log_artifacts(self.parent, str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(self.parent, str(path))
        outcome = {"finished": "FINISHED", "failed": "FAILED"}.get(status, "KILLED")
        self.client.set_terminated(self.parent, outcome)

    def _log(self, run_id, params=None, metrics=(), timestamp=None) -> None:
        """log_batch within its limits (100 params, 1000 entries a call)."""
        from mlflow.entities import Metric, Param

        stamp = timestamp or int(time.time() * 1000)
        p = [Param(k, _param(v)) for k, v in (params or {}).items()]
        m = [Metric(k, _finite(v), stamp, int(step)) for k, v, step in metrics]
        for i in range(0, len(p), 100):
            self.client.log_batch(run_id, params=p[i : i + 100])
        for i in range(0, len(m), 1000):
            self.client.log_batch(run_id, metrics=m[i : i + 1000])


def config_params(config_yaml: str) -> dict:
    """The resolved config as flat parameters: `train.optimizer.learning_rate`, layers by
    name (`conv2.kernel`), lists and the search space as JSON text."""
    import yaml

    out: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, list) and node and all(isinstance(x, dict) and x.get("name") for x in node):
            for item in node:  # model.layers: by layer name, as --set names them
                walk({k: v for k, v in item.items() if k != "name"}, str(item["name"]))
        else:
            out[prefix] = node

    raw = yaml.safe_load(config_yaml or "{}") or {}
    space = (raw.get("search") or {}).pop("space", None) if isinstance(raw.get("search"), dict) else None
    walk(raw, "")
    if space is not None:
        out["search.space"] = space
    return out


def _param(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ms(iso: str | None) -> int | None:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None
    except ValueError:
        return None


def _versions(info: dict) -> dict:
    versions = {k: v for k, v in (info.get("machine") or {}).items() if k not in ("host", "cpus", "platform")}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        versions["mlflow"] = version("mlflow")
    return versions


def _warn(what: str, where: str, e: BaseException) -> None:
    """One line on stderr and in log.txt; the run goes on without this tracking."""
    from .files import one_line

    line = f"warning: {what} tracking failed ({where}: {one_line(e, 300)}); the run goes on without it"
    log.warning(line)
    print(line, file=sys.stderr)

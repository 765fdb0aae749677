"""The MLflow side of tracking: a parent run per command, a nested run per fit, through
MlflowClient (no autolog, no global active run). The first failure of the store is one
warning line; after it, nothing more is tried and the run goes on."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from ..core.files import FITS_DIR, RUN_FILE, read_json
from ..core.records import FitRecord, FitResult
from ..core.tracking import TrackedRun
from ..core.vocabulary import FitStatus, RunStatus
from ..results.run_record import update_run
from .tensorboard import TENSORBOARD_DIR, finite
from .warn import warn

MLFLOW_DB = "mlflow.db"  # --track mlflow: the default store, in the results folder
MLFLOW_ARTIFACTS = "mlartifacts"  # beside a local sqlite store: the runs' artifacts
EXPERIMENT = "cnn-cifar"  # the MLflow experiment (MLFLOW_EXPERIMENT_NAME overrides it)
SKIP_ARTIFACTS = {FITS_DIR, TENSORBOARD_DIR}  # per-fit records, logged as nested runs already
# a fit that raised is FAILED; one stopped by the search (pruned) KILLED, as MLflow names it
FIT_OUTCOMES = {FitStatus.OK: "FINISHED", FitStatus.FAILED: "FAILED"}
RUN_OUTCOMES = {RunStatus.FINISHED: "FINISHED", RunStatus.FAILED: "FAILED"}  # interrupted: KILLED
MAX_PARAM = 500  # characters of a parameter value (MLflow accepts 6000; a table needs fewer)


class MlflowRuns:
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
            warn("MLflow", self.uri, e)
            return None

    def start(self, run: TrackedRun) -> None:
        self._safe(self._start, run)

    def _start(self, run: TrackedRun) -> None:
        # a server that is down answers at once; MLflow's default is 7 retries with backoff
        # (minutes) and a 120 s timeout: a run should not wait that long for its tracking
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        # a server's client prints two "View run" lines to stdout for every run it ends
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
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
            "argv": " ".join(info.get("argv") or sys.argv)[:MAX_PARAM],
            "overrides": " ".join(run.overrides)[:MAX_PARAM],
            "host": platform.node(),
            **{f"version.{k}": str(v) for k, v in _versions(info).items()},
        }
        parent = self.client.create_run(self.experiment, run_name=run.dir.name, tags=tags)
        self.parent = parent.info.run_id
        self._log(self.parent, params=config_params(run.config_yaml))
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
            # a model-training experiment, not a GenAI one: the kind the UI's experiment
            # settings would otherwise infer or ask for
            kind = {"mlflow.experimentKind": "custom_model_development"}
            return str(self.client.create_experiment(name, artifact_location=location, tags=kind))
        except Exception:  # created meanwhile by another command
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def log_fit(self, name: str, params: Mapping[str, Any], result: FitResult | FitRecord) -> None:
        if self.parent is not None:
            self._safe(self._log_fit, name, params, result)

    def _log_fit(self, name: str, params: Mapping[str, Any], fit: FitResult | FitRecord) -> None:
        result: Mapping[str, Any] = fit  # either record: what is not there reads as absent
        end = _ms(result.get("finished")) or int(time.time() * 1000)
        start = end - int(1000 * float(result.get("fit_time") or 0))
        status = FitStatus(result.get("status", FitStatus.OK))
        tags = {"mlflow.parentRunId": self.parent, "status": str(status)}
        if result.get("error"):
            tags["error"] = str(result["error"])[:MAX_PARAM]
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
        self.client.set_terminated(run_id, FIT_OUTCOMES.get(status, "KILLED"), end_time=end)

    def finish(self, run: TrackedRun, status: str) -> None:
        if self.parent is not None:
            self._safe(self._finish, run, status)

    def _finish(self, run: TrackedRun, status: str) -> None:
        info = read_json(run.dir / RUN_FILE)
        metrics = [(k, v, 0) for k, v in info.items() if _number(v) and k not in ("pid", "pid_started")]
        self._log(self.parent, metrics=metrics)
        for path in sorted(run.dir.iterdir()):
            if path.name in SKIP_ARTIFACTS or path.name.startswith("."):
                continue
            if path.is_dir():
                self.client.log_artifacts(self.parent, str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(self.parent, str(path))
        self.client.set_terminated(self.parent, RUN_OUTCOMES.get(RunStatus(status), "KILLED"))

    def _log(self, run_id, params=None, metrics=(), timestamp=None) -> None:
        """log_batch within its limits (100 params, 1000 entries a call)."""
        from mlflow.entities import Metric, Param

        stamp = timestamp or int(time.time() * 1000)
        p = [Param(k, _param(v)) for k, v in (params or {}).items()]
        m = [Metric(k, finite(v), stamp, int(step)) for k, v, step in metrics]
        for i in range(0, len(p), 100):
            self.client.log_batch(run_id, params=p[i : i + 100])
        for i in range(0, len(m), 1000):
            self.client.log_batch(run_id, metrics=m[i : i + 1000])


def config_params(config_yaml: str) -> dict:
    """The resolved config as flat parameters: `train.optimizer.learning_rate`, layers by
    name (`conv2.kernel`), lists and the search space as JSON text."""
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
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ms(iso: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None
    except ValueError:
        return None


def _versions(info: dict) -> dict:
    versions = {k: v for k, v in (info.get("machine") or {}).items() if k not in ("host", "cpus", "platform")}
    with contextlib.suppress(Exception):
        versions["mlflow"] = version("mlflow")
    return versions


def default_store(results_dir: str | Path) -> str:
    """MLflow's own default kind of store, a sqlite file, in the results folder."""
    return f"sqlite:///{Path(results_dir).resolve() / MLFLOW_DB}"

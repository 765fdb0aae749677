"""Executors: run a batch of fits in this process, in loky worker processes or on a dask
cluster, and yield each (Fit, result) as it finishes."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from typing import Any, cast

from ..config.schema import Data
from ..core.files import one_line
from ..core.records import FitRecord
from ..core.vocabulary import FitStatus
from ..training.folds import fit_one
from ..training.runtime import exit_with_parent, threads_per_job
from .errors import SearchError
from .oracles import Fit
from .pruning import Pruning, stop_after


def run_fit(
    fit: Fit,
    estimator,
    data: Data,
    train_idx,
    test_idx,
    scoring: str,
    threads: int | None = None,
    callbacks=None,
    pruning: Pruning | None = None,
) -> tuple[Fit, FitRecord]:
    """One fit of an unfitted estimator, here or in a worker. A fit that raises is a result
    with status 'failed' and the error's message (never a silent NaN); one that `pruning`
    stopped within its epochs is 'pruned', with the reason and no score."""
    # assembled key by key in the order fits/<key>.json has always had; complete at the return
    result: dict[str, Any] = {"key": fit.key, "candidate": fit.candidate, "fold": fit.fold, "rung": fit.rung}
    pruner = pruning.callback(fit.key) if pruning and pruning.applies_to(fit) else None
    callbacks = [*(callbacks or []), *([pruner] if pruner else [])]
    if fit.probe is not None:
        result["probe"] = fit.probe
        callbacks.append(stop_after(fit.probe))
    try:
        out = fit_one(
            estimator,
            data,
            train_idx,
            test_idx,
            scoring=scoring,
            threads=threads,
            callbacks=callbacks,
            train_size=fit.n_train,
        )
        result["status"] = FitStatus.OK
        result.update(out)
        if pruner is not None and pruner.reason:
            del result["score"]  # of a model stopped part-way: not comparable
            result["status"], result["pruned"] = FitStatus.PRUNED, pruner.reason
    except Exception as e:
        result["status"], result["error"] = FitStatus.FAILED, one_line(e)
    result["finished"] = datetime.now().isoformat(timespec="milliseconds")
    return fit, cast(FitRecord, result)


def execute(tasks: list[dict], jobs: int | None, backend: str, callbacks_for=None):
    """Yield (Fit, result) as fits finish: in this process (loky with --jobs 1), else via
    joblib in finishing order. Dask needs `backend_context` around it. `tasks` are
    `run_fit`'s keyword arguments; `callbacks_for(fit)` gives in-process fits their callbacks."""
    if backend == "loky" and (jobs or 1) == 1:
        for task in tasks:
            yield run_fit(**task, callbacks=callbacks_for(task["fit"]) if callbacks_for else None)
        return
    from joblib import Parallel, delayed

    parent = None if backend == "dask" else os.getpid()  # a dask worker's parent is its nanny
    calls = (delayed(_worker_fit)(task, parent) for task in tasks)
    if backend == "dask":
        parallel = Parallel(n_jobs=jobs or -1, return_as="generator_unordered")
    else:
        parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    yield from parallel(calls)


def _worker_fit(task: dict, parent_pid: int | None) -> tuple[Fit, FitRecord]:
    exit_with_parent(parent_pid)  # a worker must not outlive a killed command
    return run_fit(**task)


def require_backend(backend: str):
    """The dask Client class for --backend dask (an optional extra, imported only here)."""
    if backend != "dask":
        return None
    try:
        from distributed import Client
    except ImportError:
        raise SearchError(
            "--backend dask needs dask.distributed, which is not installed: pip install 'cnn-cifar[dask]'"
        ) from None
    return Client


@contextlib.contextmanager
def backend_context(backend: str, scheduler: str | None):
    """joblib runs on a dask.distributed cluster inside this."""
    Client = require_backend(backend)
    if Client is None:
        yield
        return
    import joblib

    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as e:
        raise SearchError(f"cannot reach the dask scheduler at {scheduler}: {one_line(e)}") from None
    with client, joblib.parallel_config(backend="dask"):
        yield


def fit_threads(jobs: int | None, backend: str, threads: int | None) -> int | None:
    """Threads per fit: as `runtime.threads_per_job` locally, the worker's default on dask."""
    return threads if backend == "dask" else threads_per_job(jobs, threads)

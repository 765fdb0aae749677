"""The worker processes every part runs its measurements in: each a fresh spawned process
(so each keeps its own framework settings), spoken to over a pipe. `spawn` starts one,
`ask` sends a request and waits for the reply, `stop` ends it; `child` is its entry point,
which turns an exception into a reply. In the worker, `start_framework` applies a variant's
process settings before Keras starts, and `load_slice` takes the `--subset` draw."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from cnn_cifar.core.files import one_line
from cnn_cifar.data.sources import SUBSET_SEED, detect_source, load_dataset
from cnn_cifar.training.runtime import configure_threads

# A variant's keys that set up the process rather than the config: they act before Keras
# starts (start_framework) and are shown beside the config's settings, never passed to it.
PROCESS_KEYS = ("threads", "inter_threads", "backend")

Worker = tuple[BaseProcess, Connection]


class WorkerError(RuntimeError):
    """A worker process reported an error or died."""


def quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore")


def child(conn: Connection, task: Callable[..., None], *args: Any) -> None:
    """A spawned worker's entry point: runs task(conn, *args). An exception is sent to the
    parent as {"error": "Type: message"} (traceback on stderr) rather than a bare EOF."""
    quiet_tf()
    try:
        task(conn, *args)
    except BaseException as e:
        traceback.print_exc()
        with contextlib.suppress(OSError):
            conn.send({"error": one_line(e)})
    finally:
        conn.close()


def spawn(task: Callable[..., None], *args: Any) -> Worker:
    """Start task(conn, *args) in a fresh process (spawned, so each keeps its own framework
    settings); returns (process, the parent's end of the pipe)."""
    ctx = mp.get_context("spawn")
    parent, child_end = ctx.Pipe()
    proc = ctx.Process(target=child, args=(child_end, task, *args), daemon=True)
    proc.start()
    child_end.close()  # so a dead worker reads as EOFError
    return proc, parent


def ask(proc: BaseProcess, conn: Connection, message: Any = None) -> dict[str, Any]:
    """Send `message` (unless None) and wait for the worker's reply; WorkerError if it
    reported an error or died."""
    try:
        if message is not None:
            conn.send(message)
    except OSError:
        pass  # it has ended: its error may still wait in the pipe
    try:
        reply: dict[str, Any] = conn.recv()
    except (EOFError, OSError):
        proc.join(timeout=10)
        raise WorkerError(f"the worker died (exit code {proc.exitcode})") from None
    if "error" in reply:
        raise WorkerError(reply["error"])
    return reply


def stop(proc: BaseProcess, conn: Connection) -> None:
    with contextlib.suppress(OSError):
        conn.send(None)
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()


def start_framework(sets: dict[str, Any]) -> dict[str, Any]:
    """In a worker, before any Keras work: apply a variant's process settings (PROCESS_KEYS:
    backend, threads, inter_threads) and start the backend quietly, as the CLI does; returns
    the variant's config settings."""
    sets = dict(sets)
    process = {key: sets.pop(key) for key in PROCESS_KEYS if key in sets}
    if process.get("backend"):  # KERAS_BACKEND, before Keras is imported
        os.environ["KERAS_BACKEND"] = process["backend"]
    if process.get("inter_threads"):  # before anything starts TensorFlow
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(process["inter_threads"])
    configure_threads(process.get("threads"))  # None: the framework's defaults
    return sets


def load_slice(data_path: str, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The `--subset n` draw of the training set (stratified, seeded), as the CLI takes it."""
    ds = load_dataset(detect_source(data_path), data_path, subset=n, seed=SUBSET_SEED)
    return ds.x_train, ds.y_train, ds.n_classes

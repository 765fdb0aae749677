"""The process's framework state, kept in one place: thread pools, the Keras session
between fits, the precision, and worker processes that end with their parent.

threadpoolctl cannot cap TensorFlow's own pools (joblib/threadpoolctl#84), so each
process that trains sets TensorFlow's intra/inter-op threads itself, before the first op.
This module and `data.dataset` (the decoded data set) hold the package's only module-level
mutable state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

_configured: int | None = None  # threads the backend was started with (0: its default)
_collected = False  # True: nothing was built since the session was last cleared
_watched_parent: int | None = None  # a worker's parent pid, watched by `exit_with_parent`


def backend() -> str:
    import keras

    return str(keras.backend.backend())


def configure_threads(threads: int | None) -> None:
    """Start the backend in this process, its compute threads capped at `threads` (None:
    the framework's default, one per core). TensorFlow fixes its pools when it starts, so
    this must run before any other Keras work; a later call changes nothing."""
    global _configured
    if _configured is not None:
        return
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    with _stderr_to_devnull():
        if backend() == "tensorflow":
            import tensorflow as tf

            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
            tf.constant(0) + 0  # starts TensorFlow (and its CUDA probing)
        elif backend() == "torch" and threads:
            import torch

            torch.set_num_threads(threads)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    _configured = threads or 0


def threads_per_job(jobs: int | None, threads: int | None = None) -> int | None:
    """Threads for each of `jobs` parallel local fits: --threads if given, else the cores
    shared out (no oversubscription); None (the framework's default) for a single job."""
    if threads or not jobs or jobs == 1:
        return threads
    return max(1, (os.cpu_count() or 1) // jobs)


def exit_with_parent(parent_pid: int | None = None, interval_s: float = 1.0) -> None:
    """In a worker process: end it within `interval_s` of its parent's death (a `kill -9`
    of the command would otherwise leave workers training for minutes, ~800 MB each).
    A daemon thread polls the parent pid; the first call starts it, later calls do nothing.
    `parent_pid`: the command's pid, sent with the task, so a worker whose parent died
    before this first call (a slow start on a loaded machine) ends at once instead of
    watching the process that adopted it; None (dask: the parent is a nanny) reads it here."""
    global _watched_parent
    if _watched_parent is not None:
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
    _watched_parent = os.getppid()

    def watch():
        while os.getppid() == _watched_parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def release(model=None) -> None:
    """Free `model` (its traced graphs) and Keras' global state, so memory stays flat across
    many fits in one process. Call before building a model and after using one."""
    import keras

    global _collected
    if model is not None:
        free_traced_graphs(model, ("train_function", "test_function", "predict_function"))
    # clear_session's garbage collection takes about 0.25 s with TensorFlow loaded: run it
    # when something was built since the last one, not twice in a row (cv and search release
    # each model after scoring it, then the next fit releases again before building).
    keras.backend.clear_session(free_memory=model is not None or not _collected)
    _collected = True


def built() -> None:
    """Note that a model was built, so the next release collects garbage."""
    global _collected
    _collected = False


def available_memory() -> int:
    """Bytes of memory this process can still take: MemAvailable (Linux), else the
    machine's physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def native_bf16() -> bool:
    """True where the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), so oneDNN's
    bf16 convolutions and matmuls run about twice as fast as float32 ones. Elsewhere bf16 is
    emulated and slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str) -> str:
    """train.precision -> "float32" | "bfloat16". "auto" is bfloat16 only where it was
    measured to pay: TensorFlow on a CPU with native bf16 and no GPU."""
    if precision != "auto":
        return precision
    if backend() != "tensorflow" or not native_bf16():
        return "float32"
    import tensorflow as tf

    return "float32" if tf.config.list_physical_devices("GPU") else "bfloat16"


@contextlib.contextmanager
def _stderr_to_devnull():
    """Point file descriptor 2 at /dev/null: TensorFlow's C++ start-up lines (oneDNN, CUDA
    stubs) are written before absl's logging exists, so no log level silences them. An
    import that fails still raises, its traceback printed on the restored stderr."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def free_traced_graphs(model, attrs) -> None:
    """Dismantle the graphs TensorFlow traced for `model`'s train/test/predict functions and
    forget the functions (Keras traces them again if the model is used again).

    The graphs of tf.functions traced inside other tf.functions (Keras' one_step_on_data, the
    optimizer's and metrics' cond branches) form reference cycles through C++ objects the
    garbage collector cannot see, so they outlive the model: about 3 MB a fit, which adds up
    over a search (tensorflow#61791, tf-keras#286; measured by python -m benchmarks --only memory).
    Uses TensorFlow internals, so any failure leaves things as they were."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    try:
        from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function
        from tensorflow.python.framework.func_graph import dismantle_func_graph
    except ImportError:
        return
    functions, seen = [], set()

    def find(obj, depth=0):  # tf.functions in Keras' wrappers' closures
        if obj is None or depth > 4 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Function):
            functions.append(obj)
            obj = obj.python_function
        for cell in getattr(obj, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                find(cell.cell_contents, depth + 1)
        find(getattr(obj, "__wrapped__", None), depth + 1)

    try:
        for attr in attrs:
            find(getattr(model, attr, None))
            setattr(model, attr, None)
        graphs, todo = {}, [cf.graph for f in functions for cf in f._list_all_concrete_functions()]
        while todo:  # and the functions they call (cond/while branches)
            graph = todo.pop()
            if id(graph) not in graphs:
                graphs[id(graph)] = graph
                todo += [
                    g
                    for af in list(getattr(graph, "_functions", {}).values())
                    if (g := getattr(af, "_cached_graph", None)) is not None
                ]
        for graph in graphs.values():
            dismantle_func_graph(graph)
    except Exception:
        pass

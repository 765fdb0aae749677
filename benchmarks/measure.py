"""The instruments every part reads: medians, the load average, a process's memory, a
clock per epoch, the machine's peak rates (numpy's GEMM here, the framework's matmul in a
worker of its own), what the machine and the libraries are, and the progress log."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from cnn_cifar.config import shapes
from cnn_cifar.config.schema import ModelSpec
from cnn_cifar.training.runtime import configure_threads, native_bf16


def training_flops_per_image(
    model: ModelSpec, input_shape: tuple[int, ...] = (32, 32, 3), n_classes: int = 10
) -> int:
    """Training FLOPs per image: forward (1 x MACs) + backward (2 x MACs), 2 FLOPs a MAC."""
    _, macs = shapes.totals(shapes.infer(model, tuple(input_shape), n_classes))
    return 3 * 2 * macs


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """numpy float32 matmul rate (GFLOP/s), best of `repeats` after one warm-up product."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def peak_worker(conn: Connection, n: int = 2048, repeats: int = 5) -> None:
    """The framework's matmul peak: float32 and bfloat16 GFLOP/s of an n x n product in a
    tf.function (oneDNN), best of `repeats` after a warm-up, on every request until None."""
    configure_threads(None)  # TensorFlow started as the CLI starts it, every thread
    import tensorflow as tf

    product = tf.function(lambda a, b: tf.matmul(a, b)[0, 0])
    while conn.recv() is not None:
        rates = {}
        for dtype in ("float32", "bfloat16"):
            a = tf.cast(tf.random.uniform((n, n)), dtype)
            b = tf.cast(tf.random.uniform((n, n)), dtype)
            product(a, b).numpy()
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                product(a, b).numpy()
                best = min(best, time.perf_counter() - start)
            rates[dtype] = 2 * n**3 / best / 1e9
        conn.send(rates)


def median(xs: Iterable[float | None]) -> float:
    finite = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(finite) if finite else float("nan")


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def vm_status() -> dict[str, float]:
    """VmRSS and VmHWM (peak) of this process in MB, from /proc/self/status."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024
    except OSError:
        import resource

        out["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def epoch_timer() -> Any:
    """A Keras callback that records each epoch's wall and CPU seconds (`times`, `cpu`)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self.cpu: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start, self._cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter() - self._start)
            self.cpu.append(time.process_time() - self._cpu)

    return EpochTimer()


def machine() -> str:
    """Architecture, cores, CPU model and whether it computes bfloat16 natively: the figures
    of two machines compare only where these agree (precision auto is float32 without it)."""
    model = platform.processor() or platform.node()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        names = (line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        model = next(names, model)
    bf16 = "native bfloat16" if native_bf16() else "no native bfloat16"
    return f"{platform.machine()} {os.cpu_count()} cores, {model}, {bf16}"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("keras", "tensorflow", "numpy", "scikit-learn", "torch", "jax"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def keras_device() -> str:
    """Where Keras computes in this process: the GPU's name, else "cpu"."""
    import keras

    name = keras.backend.backend()
    if name == "torch":
        import torch

        return str(torch.cuda.get_device_name()) if torch.cuda.is_available() else "cpu"
    if name == "jax":
        import jax

        device = jax.devices()[0]
        return str(device.device_kind) if device.platform == "gpu" else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return (
        str(tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")) if gpus else "cpu"
    )


def log(msg: str) -> None:
    """A progress line on stderr, timestamped (the report itself goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

"""Process-level settings that must happen before the framework starts: thread pools.

threadpoolctl cannot cap TensorFlow's own pools (joblib/threadpoolctl#84), so each
process that trains sets TensorFlow's intra/inter-op threads itself, before the first op.
"""
from __future__ import annotations

import contextlib
import logging
import os

_configured: int | None = None


def backend() -> str:
    import keras
    return keras.backend.backend()


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
            tf.constant(0) + 0                  # starts TensorFlow (and its CUDA probing)
        elif backend() == "torch" and threads:
            import torch
            torch.set_num_threads(threads)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    _configured = threads or 0


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


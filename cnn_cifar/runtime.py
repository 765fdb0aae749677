"""Process-level settings that must happen before the framework starts: thread pools.

threadpoolctl cannot cap TensorFlow's own pools (joblib/threadpoolctl#84), so each
process that trains sets TensorFlow's intra/inter-op threads itself, before the first op.
"""
from __future__ import annotations

import os

_configured: int | None = None


def backend() -> str:
    import keras
    return keras.backend.backend()


def configure_threads(threads: int | None) -> None:
    """Cap the compute threads of this process (None: leave the framework's default,
    one per core). Call before any training; later calls with a new value are ignored
    by TensorFlow, which fixes its pools at start-up."""
    global _configured
    if not threads or _configured == threads:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if backend() == "tensorflow":
        import tensorflow as tf
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:          # TensorFlow already started: its pools stay as they are
            pass
    elif backend() == "torch":
        import torch
        torch.set_num_threads(threads)
    _configured = threads


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

"""The memory part: sequential fits of a small model in one fresh process, its resident
memory after each fit and its peak; growth from the first fit to the last is the figure."""

from __future__ import annotations

import argparse
import time
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.measure import loadavg, vm_status
from benchmarks.settings import config_path
from benchmarks.workers import WorkerError, ask, load_slice, spawn, stop
from cnn_cifar import training
from cnn_cifar.config.loader import load_config
from cnn_cifar.training.runtime import configure_threads


def memory_worker(conn: Connection, data_path: str, fits: int, images: int) -> None:
    configure_threads(None)
    x, y, _ = load_slice(data_path, images)
    cfg = load_config(config_path("two_conv"), ["train.epochs=1", "train.early_stopping=null"])
    rss = []
    start = time.perf_counter()
    for _ in range(fits):
        est = training.estimator.from_config(cfg).fit(x, y)
        est.predict(x[:100])
        rss.append(vm_status()["VmRSS"])
    conn.send({"rss": rss, "peak": vm_status().get("VmHWM"), "seconds": time.perf_counter() - start})


def run_memory(args: argparse.Namespace, budget: dict[str, Any], errors: list[str]) -> dict[str, Any] | None:
    proc, conn = spawn(memory_worker, str(args.data), budget["memory_fits"], budget["memory_images"])
    try:
        reply = ask(proc, conn)
    except WorkerError as e:
        errors.append(f"memory: {e}")
        return None
    finally:
        stop(proc, conn)
    rss = reply["rss"]
    return {
        "model": "two_conv (1 epoch each)",
        "fits": len(rss),
        "images": budget["memory_images"],
        "rss_mb": rss,
        "rss_first_mb": rss[0],
        "rss_last_mb": rss[-1],
        "growth_mb": rss[-1] - rss[0],
        "peak_mb": reply["peak"],
        "seconds": reply["seconds"],
        "load_end": loadavg(),
    }

"""Run folders and durable writes.

One folder per run, `results/<date>_<time>_<command>_<name>`, never reused. Every file a
run writes appears complete or not at all: written to a temporary file in the same folder,
flushed to disk, then renamed over the target (a rename within a folder is atomic).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

RUN_FILE = "run.json"


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(x):
    if hasattr(x, "item"):          # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def new_run(results_dir: str | Path, command: str, name: str, argv: list[str] | None = None) -> Path:
    """Create a fresh run folder and its run.json (status: running)."""
    root = Path(results_dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    base = f"{stamp}_{command}_{name}"
    for i in range(1, 1000):
        folder = root / (base if i == 1 else f"{base}-{i}")
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    write_json_atomic(folder / RUN_FILE, {
        "command": command, "name": name, "status": "running",
        "argv": list(argv if argv is not None else sys.argv),
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
    })
    return folder


def update_run(folder: str | Path, **fields) -> dict:
    path = Path(folder) / RUN_FILE
    info = read_json(path)
    info.update(fields)
    write_json_atomic(path, info)
    return info


def finish_run(folder: str | Path, status: str, started: float, **fields) -> dict:
    return update_run(folder, status=status, finished=datetime.now().isoformat(timespec="seconds"),
                      wall_time_s=round(time.time() - started, 1), **fields)


def machine_info() -> dict:
    info = {"host": platform.node(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        import keras
        info["keras"] = keras.__version__
        info["backend"] = keras.backend.backend()
    except Exception:        # keras missing or broken: the run record must still be written
        pass
    return info


def list_runs(results_dir: str | Path, command: str | None = None) -> list[Path]:
    """Run folders (oldest first), optionally of one command."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(root.iterdir()):
        if not (folder / RUN_FILE).is_file():
            continue
        if command is None or read_json(folder / RUN_FILE).get("command") == command:
            runs.append(folder)
    return runs


def attach_log(folder: str | Path) -> logging.Handler:
    """Send the package's log records to `<run>/log.txt` for the rest of the run. A process
    logs into one run at a time: an earlier run's file handler is closed first."""
    logger = logging.getLogger("cnn_cifar")
    for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        detach_log(old)
    handler = logging.FileHandler(Path(folder) / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def detach_log(handler: logging.Handler) -> None:
    logging.getLogger("cnn_cifar").removeHandler(handler)
    handler.close()

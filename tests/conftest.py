"""What the tests share: the checkout's paths, an environment with no CNN_CIFAR_* variable
of the developer's, the one way to run the CLI, and tiny generated data sets and configs
(never the real CIFAR-10)."""

import contextlib
import copy
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from cnn_cifar.cli import main

REPO = Path(__file__).resolve().parents[1]  # the checkout's root
CONFIGS = REPO / "configs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


_TERMINATED: list = []  # set by a SIGTERM: the session stops after the test it came in


def _on_sigterm(signum, frame):
    """A CI cancel or `timeout` sends SIGTERM: stop the session, do not go on to the next
    test. A run inside a test passes the signal on here once it has recorded it."""
    _TERMINATED.append(signum)
    raise KeyboardInterrupt("SIGTERM")


def pytest_sessionstart(session):
    signal.signal(signal.SIGTERM, _on_sigterm)


def pytest_runtest_logreport(report):
    if _TERMINATED and report.when == "teardown":
        raise KeyboardInterrupt("SIGTERM")  # pytest stops, reports, and leaves no test running


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    """Each test starts with no CNN_CIFAR_* setting but its own empty cache."""
    for name in [n for n in os.environ if n.startswith("CNN_CIFAR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CNN_CIFAR_CACHE", str(tmp_path / "cache"))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):  # rich would draw, not print lines
        monkeypatch.delenv(name, raising=False)


def invoke(*args, catch_exceptions: bool = False, cache: Path | None = None, env=None, **kwargs) -> Result:
    """`cnn-cifar ARGS` in this process (Click's CliRunner). Inside a test the environment is
    the test's own (`_isolated_environment`, then what the test sets); a module-scoped
    fixture, which runs before that, passes its `cache` and gets every other CNN_CIFAR_*
    variable unset. A bug raises with its traceback unless `catch_exceptions`; `env` adds
    variables for this call."""
    isolated: dict[str, str | None] = {}
    if cache is not None:
        isolated = {n: None for n in os.environ if n.startswith("CNN_CIFAR_")}
        isolated["CNN_CIFAR_CACHE"] = str(cache)
    isolated.update(env or {})
    return CliRunner().invoke(
        main, [str(a) for a in args], env=isolated, catch_exceptions=catch_exceptions, **kwargs
    )


def cli_command() -> list[str]:
    """How to start `cnn-cifar` as its own process: the installed script, else `-m`."""
    exe = Path(sys.executable).with_name("cnn-cifar")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cnn_cifar.cli"]


class CliProcess:
    """A real `cnn-cifar ARGS` process, its stderr read by a thread so that a test can wait
    for its first epoch before it signals or kills it; `then` runs in the child first."""

    def __init__(self, *args, env, then=None):
        def child():
            # a shell runs background jobs (CI, nohup) with SIGINT ignored, and a child
            # inherits that; Python would then never raise KeyboardInterrupt
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if then is not None:
                then()

        self.proc = subprocess.Popen(
            [*cli_command(), *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=child,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def wait_training(self, timeout=180) -> "CliProcess":
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            if any(" epoch " in line for line in self.lines):
                return self
            time.sleep(0.1)
        self.proc.kill()
        pytest.fail(f"did not start training: {''.join(self.lines)}")

    def finish(self, timeout=180) -> str:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # never leave a 100,000-epoch fit behind
            self.proc.wait()
            pytest.fail(f"still running after {timeout} s: {''.join(self.lines)}")
        self.reader.join(timeout=10)
        return "".join(self.lines)


# A finished fit's record; a record being written is a hidden temporary (`.c001_f0.*.tmp.json`,
# core.files.write_json), which pathlib's "*.json" would match too.
FIT_RECORDS = "[!.]*.json"


def wait_for_first_fit(proc: subprocess.Popen, results: Path, timeout: float = 300) -> None:
    """Until the search `proc` runs into `results` has saved a fit (or has ended)."""
    deadline = time.monotonic() + timeout
    while not list(Path(results).glob(f"*/fits/{FIT_RECORDS}")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no fit finished in time"
        time.sleep(0.02)


@contextlib.contextmanager
def local_dask_cluster():
    """A two-worker Dask cluster on 127.0.0.1 (the test skips without `distributed`):
    yields its scheduler's address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def make_images(n, size=8, channels=3, n_classes=3, seed=0):
    """Learnable toy images: each class brightens its own band of rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.integers(0, 100, (n, size, size, channels), dtype=np.uint8)
    band = size // n_classes
    for c in range(n_classes):
        x[y == c, c * band : (c + 1) * band] += 150
    return x, y


def write_npz(path, n_train=90, n_test=30, class_names=None, **images) -> Path:
    """An .npz data set of `make_images` (keyword arguments: size, channels, n_classes):
    n_train training and n_test test images, with class names if given."""
    x_train, y_train = make_images(n_train, **images)
    x_test, y_test = make_images(n_test, **images, seed=1)
    extra = {} if class_names is None else {"class_names": np.array(class_names)}
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return Path(path)


TINY = {
    "name": "tiny",
    "model": {
        "layers": [
            {"name": "conv1", "type": "conv", "filters": 4, "kernel": 3, "activation": "relu"},
            {"name": "pool1", "type": "pool", "size": 2},
            {"name": "hidden", "type": "dense", "units": 8, "activation": "relu"},
        ]
    },
    "train": {
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 2,
        "batch_size": 16,
        "early_stopping": {"monitor": "val_loss", "patience": 2},
        "seed": 3,
    },
    "cv": {"n_splits": 2, "test_size": 0.2, "random_state": 15},
}


def tiny_raw(data_path="tiny.npz", **sections) -> dict:
    """The tiny config as a dict on `data_path`, each keyword replacing a top-level block."""
    raw = {"name": TINY["name"], "data": {"source": "npz", "path": str(data_path)}}
    raw.update(copy.deepcopy({k: v for k, v in TINY.items() if k != "name"}))
    raw.update(copy.deepcopy(sections))
    return raw


def write_config(path, data_path, **sections) -> Path:
    """The tiny config (`tiny_raw`) written as YAML to `path`."""
    Path(path).write_text(yaml.safe_dump(tiny_raw(data_path, **sections), sort_keys=False))
    return Path(path)


@pytest.fixture
def tiny_npz(tmp_path):
    """An npz data set: 90 train / 30 test 8x8 RGB images, 3 classes."""
    return write_npz(tmp_path / "tiny.npz")


@pytest.fixture
def tiny_config(tmp_path, tiny_npz):
    return write_config(tmp_path / "tiny.yaml", tiny_npz)


def png_48_bit(rgb: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, which Pillow cannot write."""
    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def search_before_move(results: Path, data: Path) -> Path:
    """fixtures/search_before_move copied into `results` as a run folder, its data path
    pointed at `data`: a search stopped by an earlier layout of the package."""
    run = results / "2026-12-04_08-52-57_search_tiny_search"
    shutil.copytree(FIXTURES / "search_before_move", run)
    for name in ("search.json", "config.yaml"):
        path = run / name
        path.write_text(path.read_text().replace("DATA_PATH", str(data)))
    return run

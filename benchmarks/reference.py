"""airbench94 (the `airbench` package, Keller Jordan, MIT) trained on this project's data:
the reference that configs/speedrun.yaml ports, on the CPU or on a CUDA GPU.

    pip install -e ".[reference]"     # torch and airbench
    python -m benchmarks.reference --data ../shared/data/cifar10-jpeg.tar.xz --seed 0
    python -m benchmarks.reference --device cuda --seed 0 --data D   # as published: float16 on a GPU
    python -m benchmarks.reference --smoke --data D   # a tiny slice, seconds; skips without the extra

`--data` may be left out when $CNN_CIFAR_DATA names the data. `python -m benchmarks --only
speedrun` runs it beside the port; this module is what it calls.
The training is airbench's own `lib_airbench94.train94` (network, optimiser groups,
schedule, Lookahead, whitening, alternating flip, translation, label smoothing) and its
`utils.evaluate` (TTA); nothing of it is copied here. Exactly these edges change, and only
inside the process that trains:

- data: the loaders are airbench's `CifarLoader` (its augmentation and batching code)
  with the images and labels given as arrays instead of read from torchvision's download,
  and train()'s own test loader (`CifarLoader('cifar10', train=False)`) is built from the
  test arrays; where torchvision does not load (its wheels here are built against another
  torch), a stand-in holds only `transforms.Normalize` (per-channel `(x - mean) / std`,
  what torchvision's does to a tensor), the one thing airbench uses of it;
- timing: `torch.cuda.Event` is wrapped so that each of train()'s own brackets (the
  whitening, each epoch) is also recorded (GPU time on CUDA, and CPU time beside it);
- `--device cpu` only: `nn.Module.cuda` and `.half` return the module unchanged (it stays
  on the CPU, in float32; airbench keeps batchnorm in float32 anyway), the images are
  float32, the event is a CPU clock and `torch.cuda.synchronize` does nothing.
  `--device cuda` keeps airbench's device and float16 as published.

The seed is `torch.manual_seed(seed)` before training (airbench's train() sets none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import types
from typing import Any, ClassVar

import numpy as np

from cnn_cifar.core.vocabulary import DATA_ENV
from cnn_cifar.data.sources import SUBSET_SEED, DataError, detect_source, load_dataset

PROG = "benchmarks.reference"  # how its one-line messages start
NO_CUDA = "--device cuda: torch sees no CUDA GPU (use --device cpu)"
EXTRA = 'the reference extra is not installed (pip install -e ".[reference]": torch and airbench)'


def available() -> bool:
    """Whether torch and airbench are installed (without importing either)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("torch", "airbench"))


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class TimedEvent:
    """torch.cuda.Event as train() uses it, each bracket recorded: elapsed_time() returns
    milliseconds, as CUDA's does, and appends (seconds, CPU seconds) to INTERVALS. The
    seconds are the real CUDA event's when `cuda_event` is set, else the wall clock's."""

    INTERVALS: ClassVar[list[tuple[float, float]]] = []
    cuda_event: ClassVar[type | None] = None  # torch.cuda.Event, when training on CUDA

    def __init__(self, enable_timing: bool = True) -> None:
        self.event = self.cuda_event(enable_timing=True) if self.cuda_event else None
        self.wall = self.cpu = 0.0

    def record(self, stream: Any = None) -> None:
        if self.event is not None:
            self.event.record(stream)
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed_time(self, end: TimedEvent) -> float:
        seconds = 1e-3 * self.event.elapsed_time(end.event) if self.event else end.wall - self.wall
        self.INTERVALS.append((seconds, end.cpu - self.cpu))
        return 1e3 * seconds


def _torchvision_stand_in(torch: Any) -> None:
    """sys.modules['torchvision'] holding transforms.Normalize, unless the real one loads."""
    try:
        import torchvision  # noqa: F401

        return
    except Exception:  # not installed, or built against another torch (a RuntimeError)
        pass

    class Normalize:
        def __init__(self, mean: Any, std: Any) -> None:
            self.mean, self.std = torch.as_tensor(mean), torch.as_tensor(std)

        def __call__(self, x: Any) -> Any:
            mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
            return (x - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)

    transforms = types.ModuleType("torchvision.transforms")
    transforms.Normalize = Normalize  # type: ignore[attr-defined]
    vision = types.ModuleType("torchvision")
    vision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = vision, transforms


def _adapt(device: str) -> tuple[Any, Any]:
    """Import airbench with the edges above changed; returns (lib_airbench94, utils)."""
    import torch

    _torchvision_stand_in(torch)
    if device == "cpu":
        torch.nn.Module.cuda = lambda self, device=None: self  # type: ignore[method-assign, unused-ignore]
        torch.nn.Module.half = lambda self: self  # type: ignore[method-assign, unused-ignore]
        torch.cuda.synchronize = lambda device=None: None
        TimedEvent.cuda_event = None
    else:
        TimedEvent.cuda_event = torch.cuda.Event
    torch.cuda.Event = TimedEvent  # type: ignore[misc, assignment, unused-ignore]
    from airbench import lib_airbench94, utils

    return lib_airbench94, utils


def _loader(
    utils: Any,
    images: np.ndarray,
    labels: np.ndarray,
    train: bool,
    batch_size: int,
    aug: dict[str, Any] | None = None,
    device: str = "cpu",
) -> Any:
    """airbench's CifarLoader over uint8 (n, 32, 32, 3) arrays: its __init__ less the file
    read (on the CPU also less the float16 cast); iteration (augmentation, batching) is its own."""
    import torch

    loader = utils.CifarLoader.__new__(utils.CifarLoader)
    loader.epoch = 0
    pixels = torch.from_numpy(images).to(device)
    pixels = pixels.float() if device == "cpu" else pixels.half()
    loader.images = (pixels / 255).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    loader.labels = torch.from_numpy(labels.astype("int64")).to(device)
    loader.classes = None
    loader.normalize = utils.T.Normalize(utils.CIFAR_MEAN, utils.CIFAR_STD)
    loader.proc_images = {}
    loader.aug = aug or {}
    loader.batch_size = batch_size
    loader.drop_last = loader.shuffle = train
    loader.altflip = train
    return loader


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    epochs: float | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """One airbench94 training (its hyperparameters; `epochs` None: its 9.9) and its test
    accuracy with TTA (its tta_level 2) and without. Times are of train94 as a whole
    (network built, whitening fitted, every step), and per bracket of its own timer
    (`timed_s`: their sum, what airbench reports as its training time)."""
    import torch

    lib, utils = _adapt(device)
    hyp = lib.hyp
    epochs = hyp["opt"]["train_epochs"] if epochs is None else epochs
    batch = hyp["opt"]["batch_size"]
    train_loader = _loader(utils, x_train, y_train, True, batch, hyp["aug"], device)
    test_loader = _loader(utils, x_test, y_test, False, 2000, device=device)
    utils.CifarLoader = lambda *a, **k: test_loader  # train()'s own test loader
    torch.manual_seed(seed)
    TimedEvent.INTERVALS.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    model = lib.train94(train_loader, epochs=epochs, verbose=False)
    torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = math.ceil(len(train_loader) * epochs)  # train()'s total_train_steps
    return {
        "side": "reference",
        "seed": seed,
        "epochs": epochs,
        "images_trained": steps * batch,
        "train_s": wall,
        "train_cpu_s": cpu,
        "timed_s": sum(w for w, _ in TimedEvent.INTERVALS),
        # train()'s brackets: the whitening fit, then one per epoch
        "epoch_s": [w for w, _ in TimedEvent.INTERVALS[1:]],
        "epoch_cpu_s": [c for _, c in TimedEvent.INTERVALS[1:]],
        "images_per_epoch": len(train_loader) * batch,
        "test_accuracy": utils.evaluate(model, test_loader, tta_level=0),
        "test_accuracy_tta": utils.evaluate(model, test_loader, tta_level=hyp["net"]["tta_level"]),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def load(data: str, subset: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The project's training and test arrays (the `--subset` draw when given)."""
    ds = load_dataset(detect_source(data), data, subset=subset, seed=SUBSET_SEED)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.reference", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--data", default=os.environ.get(DATA_ENV) or None, help=f"default: ${DATA_ENV}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, help="default: airbench94's 9.9")
    p.add_argument("--subset", type=int, help="train on the `--subset N` draw (N images)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: float16, as published")
    p.add_argument("--smoke", action="store_true", help="the --subset 2560 draw, one epoch: proves it runs")
    args = p.parse_args(argv)
    if not available():
        print(f"{PROG}: skipped: {EXTRA}")
        return 0
    if args.device == "cuda" and not cuda_available():
        print(f"{PROG}: {NO_CUDA}", file=sys.stderr)
        return 2
    if args.data is None:  # after the checks above, which need no data
        p.error(f"--data: required unless {DATA_ENV} is set")
    if args.smoke:
        args.subset, args.epochs = args.subset or 2560, args.epochs or 1
    try:
        arrays = load(args.data, args.subset)
    except DataError as e:
        print(f"{PROG}: --data: {e}", file=sys.stderr)
        return 2
    with contextlib.redirect_stdout(sys.stderr):  # airbench's own prints, if any
        result = train(*arrays, seed=args.seed, epochs=args.epochs, device=args.device)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

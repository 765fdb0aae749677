#!/usr/bin/env python
"""airbench94 (the `airbench` package, Keller Jordan, MIT) trained on the CPU, on this
project's data: the reference that configs/speedrun.yaml ports.

    pip install -e ".[reference]"     # torch (CPU) and airbench
    python scripts/airbench_cpu.py --data ../shared/data/cifar10-jpeg.tar.xz --seed 0
    python scripts/airbench_cpu.py --smoke     # a tiny slice, seconds; skips without the extra

`scripts/bench.py --only speedrun` runs it beside the port; this file is what it calls.
The training is airbench's own `lib_airbench94.train94` (network, optimiser groups,
schedule, Lookahead, whitening, alternating flip, translation, label smoothing) and its
`utils.evaluate` (TTA); nothing of it is copied here. airbench is written for CUDA and
float16, so exactly these edges change, and only inside the process that trains:

- device: `nn.Module.cuda` returns the module unchanged (it stays on the CPU);
  `torch.cuda.Event` is a CPU clock (wall and CPU time) and `torch.cuda.synchronize`
  does nothing, so train()'s own timing brackets (the whitening, each epoch) are measured;
- precision: `nn.Module.half` returns the module unchanged, so the network computes in
  float32 (airbench keeps batchnorm in float32 anyway); the images are float32 too;
- data: the loaders are airbench's `CifarLoader` (its augmentation and batching code)
  with the images and labels given as arrays instead of read from torchvision's download,
  and train()'s own test loader (`CifarLoader('cifar10', train=False)`) is built from the
  test arrays; torchvision is replaced by a stand-in holding only `transforms.Normalize`
  (per-channel `(x - mean) / std`, what torchvision's does to a tensor), because its
  wheels here are built against another torch and airbench needs nothing else from it.

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
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
EXTRA = 'the reference extra is not installed (pip install -e ".[reference]": torch and airbench)'


def available() -> bool:
    """Whether torch and airbench are installed (without importing either)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("torch", "airbench"))


class CpuEvent:
    """torch.cuda.Event on the CPU: record() reads the clocks; elapsed_time() returns wall
    milliseconds, as CUDA's does, and appends (wall s, CPU s) to INTERVALS."""

    INTERVALS: ClassVar[list[tuple[float, float]]] = []

    def __init__(self, enable_timing: bool = True):
        self.wall = self.cpu = 0.0

    def record(self, stream=None) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed_time(self, end: CpuEvent) -> float:
        self.INTERVALS.append((end.wall - self.wall, end.cpu - self.cpu))
        return 1e3 * (end.wall - self.wall)


def _torchvision_stand_in(torch) -> None:
    """sys.modules['torchvision'] holding transforms.Normalize, unless the real one loads."""

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = torch.as_tensor(mean), torch.as_tensor(std)

        def __call__(self, x):
            return (x - self.mean.view(-1, 1, 1)) / self.std.view(-1, 1, 1)

    transforms = types.ModuleType("torchvision.transforms")
    transforms.Normalize = Normalize  # type: ignore[attr-defined]
    vision = types.ModuleType("torchvision")
    vision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = vision, transforms


def _adapt_to_cpu():
    """Import airbench with the edges above changed; returns (lib_airbench94, utils)."""
    import torch

    _torchvision_stand_in(torch)
    torch.nn.Module.cuda = lambda self, device=None: self  # type: ignore[method-assign]
    torch.nn.Module.half = lambda self: self  # type: ignore[method-assign]
    torch.cuda.Event = CpuEvent  # type: ignore[misc,assignment]
    torch.cuda.synchronize = lambda device=None: None
    from airbench import lib_airbench94, utils

    return lib_airbench94, utils


def _loader(utils, images, labels, train: bool, batch_size: int, aug=None):
    """airbench's CifarLoader over uint8 (n, 32, 32, 3) arrays: its __init__ less the file
    read and the float16 cast; iteration (augmentation, batching) is its own."""
    import torch

    loader = utils.CifarLoader.__new__(utils.CifarLoader)
    loader.epoch = 0
    loader.images = torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2)
    loader.images = loader.images.contiguous(memory_format=torch.channels_last)
    loader.labels = torch.from_numpy(labels.astype("int64"))
    loader.classes = None
    loader.normalize = utils.T.Normalize(utils.CIFAR_MEAN, utils.CIFAR_STD)
    loader.proc_images = {}
    loader.aug = aug or {}
    loader.batch_size = batch_size
    loader.drop_last = loader.shuffle = train
    loader.altflip = train
    return loader


def train(x_train, y_train, x_test, y_test, seed: int, epochs: float | None = None) -> dict:
    """One airbench94 training (its hyperparameters; `epochs` None: its 9.9) and its test
    accuracy with TTA (its tta_level 2) and without. Times are of train94 as a whole
    (network built, whitening fitted, every step), and per bracket of its own timer."""
    import torch

    lib, utils = _adapt_to_cpu()
    hyp = lib.hyp
    epochs = hyp["opt"]["train_epochs"] if epochs is None else epochs
    batch = hyp["opt"]["batch_size"]
    train_loader = _loader(utils, x_train, y_train, True, batch, hyp["aug"])
    test_loader = _loader(utils, x_test, y_test, False, 2000)
    utils.CifarLoader = lambda *a, **k: test_loader  # train()'s own test loader
    torch.manual_seed(seed)
    CpuEvent.INTERVALS.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    model = lib.train94(train_loader, epochs=epochs, verbose=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = math.ceil(len(train_loader) * epochs)  # train()'s total_train_steps
    return {
        "side": "reference",
        "seed": seed,
        "epochs": epochs,
        "images_trained": steps * batch,
        "train_s": wall,
        "train_cpu_s": cpu,
        # train()'s brackets: the whitening fit, then one per epoch
        "epoch_s": [w for w, _ in CpuEvent.INTERVALS[1:]],
        "epoch_cpu_s": [c for _, c in CpuEvent.INTERVALS[1:]],
        "images_per_epoch": len(train_loader) * batch,
        "test_accuracy": utils.evaluate(model, test_loader, tta_level=0),
        "test_accuracy_tta": utils.evaluate(model, test_loader, tta_level=hyp["net"]["tta_level"]),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def load(data: str, subset: int | None):
    """The project's training and test arrays (the `--subset` draw when given)."""
    sys.path.insert(0, str(ROOT))
    from cnn_cifar.data.sources import SUBSET_SEED, detect_source, load_dataset

    ds = load_dataset(detect_source(data), data, subset=subset, seed=SUBSET_SEED)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("CNN_CIFAR_DATA", str(DEFAULT_DATA)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, help="default: airbench94's 9.9")
    p.add_argument("--subset", type=int, help="train on the `--subset N` draw (N images)")
    p.add_argument("--smoke", action="store_true", help="the --subset 2560 draw, one epoch: proves it runs")
    args = p.parse_args(argv)
    if not available():
        print(f"airbench_cpu.py: skipped: {EXTRA}")
        return 0
    if args.smoke:
        args.subset, args.epochs = args.subset or 2560, args.epochs or 1
    from cnn_cifar.data.sources import DataError

    try:
        arrays = load(args.data, args.subset)
    except DataError as e:
        print(f"airbench_cpu.py: --data: {e}", file=sys.stderr)
        return 2
    with contextlib.redirect_stdout(sys.stderr):  # airbench's own prints, if any
        result = train(*arrays, seed=args.seed, epochs=args.epochs)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

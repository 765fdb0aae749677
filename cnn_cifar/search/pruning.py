"""Pruning within epochs: a search's fits report their validation score after every epoch
to the run folder (curves/<fit>.jsonl, one line an epoch), and a fit that is clearly
behind the others at the same epoch stops there (`search.prune`, schema.Prune).

A candidate is judged within the epochs of its first fold only (fold 0: every strategy
runs it first); its later folds are raced over (racing's margin), not pruned. Judging
every fold would let noise at an early epoch stop, sooner or later, the fold of every
candidate (ASHA stops two thirds at each rung), the winner's included.

With racing, asha's probe (oracles.RacingOracle) takes the place of this rule: every
candidate's first min_epochs epochs, compared all at once, and the entrants train
unpruned. Judging them again at later rungs would compare the best third with itself: a
full-data search pruned its eventual winner at epoch 3, 0.13 points below the cutoff of
three entrants.

The curves are files so that fits in loky workers (or on dask workers sharing the run
folder) see each other's progress; a fit that runs again (after an interruption) starts
its curve afresh, and a worker that cannot write there trains its fit unpruned. The rule
only reads scores and sets Keras' `stop_training`: a fit that is not stopped trains
exactly as it would without it. Fits are compared with the other first-fold fits of
the same rung (successive halving trains rungs on different numbers of images).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.files import CURVES_DIR

log = logging.getLogger("cnn_cifar")


@dataclass(frozen=True)
class Pruning:
    """A search's pruning rule and where its fits' curves live; picklable, so a worker
    builds its own callback (`callback`)."""

    run_dir: str
    rule: str  # "asha" | "median"
    monitor: str = "val_accuracy"
    min_epochs: int = 1
    factor: float = 3.0
    min_fits: int = 3
    max_epochs: int = 20

    @property
    def higher_is_better(self) -> bool:
        return not self.monitor.endswith("loss")

    def rungs(self) -> list[int]:
        """asha: the epochs at which fits are judged (min_epochs * factor**k, before the last)."""
        out, k = [], 0
        while (epoch := round(self.min_epochs * self.factor**k)) < self.max_epochs:
            out.append(epoch)
            k += 1
        return out

    def applies_to(self, fit) -> bool:
        """Only a candidate's first fold is judged (see the module docstring), and not
        racing's probe of it, which stops at its epochs anyway."""
        return fit.fold == 0 and fit.probe is None

    def callback(self, key: str):
        return _pruner_class()(self, key)


def from_config(cfg, run_dir: Path) -> Pruning | None:
    """The config's pruning within epochs, or None (rule none, strategy random, or racing's
    probe in asha's place). `pin` has already turned a default rule off where there is no
    validation split and no probe."""
    prune = cfg.search_block().prune
    if not _prunes_within_epochs(cfg):
        return None
    return Pruning(
        run_dir=str(run_dir),
        rule=prune.rule,
        monitor=prune.monitor,
        min_epochs=prune.min_epochs,
        factor=prune.factor,
        min_fits=prune.min_fits,
        max_epochs=cfg.train.epochs,
    )


def config_problem(cfg) -> tuple[str, str] | None:
    """(field, message) when the config's pruning cannot work: judging fits within their
    epochs needs a validation split (racing's probe scores on the fold's test rows)."""
    search = cfg.search_block()
    if _prunes_within_epochs(cfg) and cfg.train.validation_split <= 0:
        return (
            "search.prune.rule",
            f"{search.prune.rule} judges fits by {search.prune.monitor} on the validation split, "
            "and train.validation_split is 0; set it (e.g. 0.2) or search.prune.rule: none",
        )
    return None


def _prunes_within_epochs(cfg) -> bool:
    """Whether the config's search judges fits within their epochs: a rule, not strategy
    random, and not racing's probe in the rule's place."""
    search = cfg.search_block()
    return search.prune.rule != "none" and search.strategy != "random" and not probes(cfg)


def probes(cfg) -> bool:
    """Whether the config asks for racing's probe (asha with racing, `probe: true`) in place
    of pruning within epochs; the oracle still skips it where it cannot compare or would be
    the whole fit."""
    search = cfg.search_block()
    return bool(search.strategy == "racing" and search.prune.rule == "asha" and search.prune.probe)


def _group(key: str) -> str:
    """Fits compared with each other: the same rung ("r1_c003_f0" -> "r1"; "" without rungs)."""
    return key.split("_")[0] if key.startswith("r") else ""


class Curves:
    """The curves/ folder: each fit's score per epoch."""

    def __init__(self, run_dir: str | Path):
        self.folder = Path(run_dir) / CURVES_DIR

    def start(self, key: str) -> None:
        self.folder.mkdir(exist_ok=True)
        (self.folder / f"{key}.jsonl").write_text("")

    def record(self, key: str, epoch: int, value: float) -> None:
        with open(self.folder / f"{key}.jsonl", "a") as f:
            f.write(json.dumps({"epoch": epoch, "value": value}) + "\n")

    def at_epoch(self, epoch: int, group: str) -> dict[str, float]:
        """Every fit of `group` that reported `epoch`: its value there."""
        out = {}
        for path in self.folder.glob("*.jsonl"):
            if _group(path.stem) != group:
                continue
            value = _read_curve(path).get(epoch)
            if value is not None:
                out[path.stem] = value
        return out


def _read_curve(path: Path) -> dict[int, float]:
    curve: dict[int, float] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return curve
    for line in lines:
        try:  # a line being written by another process is skipped
            point = json.loads(line)
            curve[int(point["epoch"])] = float(point["value"])
        except (ValueError, KeyError, TypeError):
            continue
    return curve


def judge(p: Pruning, epoch: int, mine: float, best_so_far: float, others: dict[str, float]) -> str | None:
    """Why a fit stops at `epoch` (1-based), or None to go on. `others` holds every fit's
    value at that epoch, this one's included; scores are compared as higher-is-better."""
    sign = 1.0 if p.higher_is_better else -1.0
    values = [sign * v for v in others.values() if math.isfinite(v)]
    if epoch < p.min_epochs or epoch >= p.max_epochs or len(values) < p.min_fits:
        return None  # nothing is saved by stopping at the last epoch
    name = p.monitor
    if p.rule == "asha":
        if epoch not in p.rungs():
            return None
        cutoff = float(np.percentile(values, (1 - 1 / p.factor) * 100))
        if sign * mine < cutoff:
            return (
                f"pruned at epoch {epoch}: {name} {mine:.4f} not in the top 1/{p.factor:g} "
                f"of the {len(values)} fits there (cutoff {sign * cutoff:.4f})"
            )
        return None
    median = float(np.median(values))
    if sign * best_so_far < median:
        return (
            f"pruned at epoch {epoch}: best {name} so far {best_so_far:.4f} worse than the median "
            f"{sign * median:.4f} of the {len(values)} fits there"
        )
    return None


def stop_after(epochs: int):
    """A Keras callback that ends training after `epochs` epochs: racing's probe is the
    start of the full fit, stopped (the schedule and everything else unchanged)."""
    import keras

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= epochs:
                self.model.stop_training = True

    return StopAfter()


def _pruner_class():
    """The Keras callback, defined on first use so importing this module loads no Keras."""
    import keras

    class Pruner(keras.callbacks.Callback):
        """Reports the monitored score each epoch and stops the fit when `judge` says so;
        `reason` tells why afterwards (None: it ran to its end or early stopping)."""

        def __init__(self, pruning: Pruning, key: str):
            super().__init__()
            self.pruning, self.key = pruning, key
            self.curves: Curves | None = Curves(pruning.run_dir)
            self.reason: str | None = None
            self.best = math.nan

        def on_train_begin(self, logs=None):
            if self.curves is not None:
                self._share(self.curves.start, self.key)

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.pruning.monitor)
            if value is None or self.curves is None:
                return
            value = float(value)
            if not self._share(self.curves.record, self.key, epoch + 1, value):
                return
            better = max if self.pruning.higher_is_better else min
            self.best = value if math.isnan(self.best) else better(self.best, value)
            others = self.curves.at_epoch(epoch + 1, _group(self.key))
            reason = judge(self.pruning, epoch + 1, value, self.best, others)
            if reason is not None:
                self.reason = reason
                self.model.stop_training = True

        def _share(self, write, *args) -> bool:
            """Write to the curves folder; a worker that cannot (a dask worker on a machine
            without the run folder, a full disk) trains on unpruned rather than failing."""
            try:
                write(*args)
                return True
            except OSError as e:
                log.warning("fit %s is not pruned: cannot write its curve (%s)", self.key, e)
                self.curves = None
                return False

    return Pruner

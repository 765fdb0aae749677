"""`cnn-cifar search` beside the tools a user would pick instead, on the same work: Optuna
(TPE with a median pruner) and Keras Tuner (Hyperband), each written as its own docs teach,
over configs/search.yaml's space, the same stratified subset, the same folds and epoch cap,
the config's optimizer, batch 32, float32 (optionally sklearn's RandomizedSearchCV too).

    pip install -e ".[peers]"      # optuna, optuna-integration, keras-tuner
    python -m benchmarks.peers --data ../shared/data/cifar10-jpeg.tar.xz          # 3 seeds, hours
    python -m benchmarks.peers --smoke --data D    # a few hundred images: proves it runs (CI)

`--data` may be left out when $CNN_CIFAR_DATA names the data; without the extra it prints
one line saying it is skipped and exits 0.

Sides, each in a process of its own, run one after the other, their order rotated seed by
seed (the seed is each side's search seed; the networks' own seed is the config's
train.seed on every side):

project     `cnn-cifar search configs/search.yaml --subset N --set search.n_iter=K
            --set search.cv=F --set train.epochs=E --set search.random_state=SEED
            --set train.precision=float32` with its default strategy; its picks are read
            from its fits/ journal (a candidate whose folds are all in with the best mean
            so far), as benchmarks/search.py times it.
optuna      `optuna.create_study(direction="maximize", sampler=TPESampler(seed=SEED),
            pruner=MedianPruner())`, `study.optimize(objective, n_trials=K, n_jobs=1)`;
            the objective draws with `trial.suggest_categorical` / `suggest_int`, builds a
            plain keras.Sequential (Rescaling 1/255, Conv2D same + ReLU, MaxPooling2D,
            Conv2D, MaxPooling2D, Flatten, Dense ReLU, Dense softmax) on every fold, each
            fold's fit with the project's protocol (seeded shuffle, last 20% as validation,
            EarlyStopping on val_loss, patience 2), and returns the mean fold accuracy.
            Fold 0's epochs are reported to the pruner through optuna-integration's
            KerasPruningCallback(trial, "val_accuracy"), as Optuna's Keras example does.
            Its pick is `study.best_trial`.
kerastuner  `kt.Hyperband(build, objective="val_accuracy", max_epochs=E, factor=3,
            seed=SEED)` over a `build(hp)` of the same network (`hp.Choice`, `hp.Int`),
            `tuner.search(x, y, validation_split=0.2, batch_size=32,
            callbacks=[EarlyStopping(val_loss, patience 2)])` on the subset shuffled once
            (Keras takes the validation tail unshuffled); Hyperband decides its own number
            of trials. Its pick is its best trial (`get_best_hyperparameters`).
sklearn     (only when named in --sides) benchmarks/search.py's RandomizedSearchCV worker
            at the tutorial's arithmetic; it picks once, when it ends.

The yardstick: every pick a side makes (and when: wall seconds from its start, CPU
seconds of its process tree) is scored afterwards, outside every side's budget, by the
project's own F-fold CV (`training.folds.fit_one` on `cv_splits` of the config's cv block,
the config's training in float32), once per distinct candidate across sides and seeds.
Per side and seed: the best-so-far yardstick CV against wall and CPU time, the time to be
within 1 point of the best any side found on that seed, the yardstick CV at the smallest
side's total budget, and the final pick's yardstick CV. A table is printed; the JSON goes
to --out (default results/bench-peers-<time>.json; --smoke: a temporary folder) with a
PNG of the curves beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import search
from benchmarks.measure import loadavg, log, machine, versions
from benchmarks.settings import ROOT, config_path
from benchmarks.tables import fmt
from benchmarks.workers import Worker, WorkerError, ask, load_slice, quiet_tf, spawn, stop
from cnn_cifar import training
from cnn_cifar.config.loader import load_config
from cnn_cifar.config.schema import Config
from cnn_cifar.core.files import CANDIDATES_FILE, read_json, write_json
from cnn_cifar.core.records import FitRecord
from cnn_cifar.core.vocabulary import DATA_ENV
from cnn_cifar.data.dataset import dataset, resolve_data
from cnn_cifar.data.sources import DataError, detect_source, load_dataset
from cnn_cifar.search.journal import load_fits
from cnn_cifar.training.folds import cv_splits, fit_one
from cnn_cifar.training.runtime import configure_threads

PROG = "benchmarks.peers"  # how its one-line messages start
EXTRA = (
    'the peers extra is not installed (pip install -e ".[peers]": optuna, optuna-integration, keras-tuner)'
)
SIDES = ("project", "project_ttest", "optuna", "kerastuner", "sklearn")
DEFAULT_SIDES = ("project", "project_ttest", "optuna", "kerastuner")
# the project's sides besides its default: the settings each adds to the same command
PROJECT_VARIANTS: dict[str, list[str]] = {"project": [], "project_ttest": ["search.race_rule=ttest"]}
# what each side imports beyond the project's own dependencies
NEEDS: dict[str, tuple[str, ...]] = {
    "optuna": ("optuna", "optuna_integration"),
    "kerastuner": ("keras_tuner",),
}
LABELS = {
    "project": "cnn-cifar search",
    "project_ttest": "cnn-cifar search, racing by t-test",
    "optuna": "Optuna TPE + median pruner",
    "kerastuner": "Keras Tuner Hyperband",
    "sklearn": "RandomizedSearchCV",
}
POINTS = 1.0  # "within 1 point" of the best yardstick CV found
BUDGETS: dict[str, dict[str, Any]] = {
    "default": {"subset": 10000, "epochs": 10, "n_iter": 10, "folds": None, "seeds": [0, 1, 2]},
    # folds None: the config's search.cv (3)
    "smoke": {"subset": 400, "epochs": 2, "n_iter": 3, "folds": 2, "seeds": [0]},
}

Params = dict[str, Any]  # a candidate in the project's names: conv1__filters, hidden__units


# ---------------------------------------------------------------------- the space


def dimensions(space: dict[str, Any]) -> dict[str, list[Any] | range]:
    """A config's search.space as the peers can draw it: a list of choices, or the integers
    of {randint: [low, high]} (high excluded, as scipy's). Other forms are refused: this
    bench compares on configs/search.yaml's space, which has only these two."""
    out: dict[str, list[Any] | range] = {}
    for name, value in space.items():
        if isinstance(value, list):
            out[name] = list(value)
        elif isinstance(value, dict) and set(value) == {"randint"}:
            low, high = value["randint"]
            out[name] = range(int(low), int(high))
        else:
            raise ValueError(f"search.space.{name}: the peers take a list or {{randint: [low, high]}}")
    return out


def peer_name(name: str) -> str:
    """What a user would call a project parameter in Optuna or Keras Tuner: conv1__filters
    -> conv1_filters (their names are free text; the double underscore is scikit-learn's)."""
    return name.replace("__", "_")


def project_params(peer: Params, names: Iterable[str]) -> Params:
    """A peer's chosen values in the project's names; its own entries (Keras Tuner's
    tuner/epochs, tuner/bracket, ...) are dropped. Values become plain Python numbers."""
    by_peer = {peer_name(n): n for n in names}
    return {by_peer[k]: _plain(v) for k, v in peer.items() if k in by_peer}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def optuna_draw(trial: Any, dims: dict[str, list[Any] | range]) -> Params:
    """One candidate drawn as an Optuna objective draws it (`trial.suggest_categorical`,
    `trial.suggest_int` with both ends included), returned in the project's names."""
    drawn = {
        peer_name(name): (
            trial.suggest_int(peer_name(name), dim.start, dim.stop - 1)
            if isinstance(dim, range)
            else trial.suggest_categorical(peer_name(name), dim)
        )
        for name, dim in dims.items()
    }
    return project_params(drawn, dims)


def kerastuner_draw(hp: Any, dims: dict[str, list[Any] | range]) -> Params:
    """One candidate drawn as a Keras Tuner `build(hp)` draws it (`hp.Choice`, `hp.Int`
    with both ends included), returned in the project's names."""
    drawn = {
        peer_name(name): (
            hp.Int(peer_name(name), dim.start, dim.stop - 1)
            if isinstance(dim, range)
            else hp.Choice(peer_name(name), dim)
        )
        for name, dim in dims.items()
    }
    return project_params(drawn, dims)


def params_key(params: Params) -> str:
    """One candidate's cache key: its parameters as sorted JSON."""
    return json.dumps({k: _plain(v) for k, v in params.items()}, sort_keys=True)


# repr=False: dataclasses' generated __repr__ reads a global (`_thread`) of its own module,
# which tests/benchmarks/test_bench_package.py would take for a name missing here
@dataclass(repr=False)
class Recipe:
    """The training the config gives every fit, read once so the peers' Keras code and the
    project train alike: optimizer, batch, epochs cap, validation split, early stopping."""

    epochs: int
    batch_size: int
    learning_rate: float
    epsilon: float
    validation_split: float
    monitor: str
    patience: int
    seed: int
    rescale: float

    @classmethod
    def of(cls, cfg: Config) -> Recipe:
        t = cfg.train
        es = t.early_stopping
        assert es is not None and t.optimizer.name == "adadelta", "configs/search.yaml's training changed"
        return cls(
            epochs=t.epochs,
            batch_size=t.batch_size,
            learning_rate=t.optimizer.learning_rate,
            epsilon=t.optimizer.epsilon if t.optimizer.epsilon is not None else 1e-7,  # Keras' default
            validation_split=t.validation_split,
            monitor=es.monitor,
            patience=es.patience,
            seed=int(t.seed) if t.seed is not None else 0,
            rescale=cfg.model.rescale,
        )


# ---------------------------------------------------------------------- picks and the yardstick


@dataclass(repr=False)
class Pick:
    """A side's chosen candidate changed: when (wall seconds since the side started, CPU
    seconds of its processes) and to what (project names); `own`: the side's own score of
    it (its CV mean, best value or validation accuracy); `cv`: its yardstick CV."""

    wall_s: float
    cpu_s: float
    params: Params
    own: float | None = None
    cv: float | None = None


@dataclass(repr=False)
class SideRun:
    """What one side did on one seed."""

    side: str
    seed: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    picks: list[Pick] = field(default_factory=list)
    trials: int | None = None  # trials, candidates or (project) fits
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def best_so_far(picks: Sequence[Pick]) -> list[tuple[float, float, float]]:
    """(wall s, CPU s, best yardstick CV of any pick so far) at each pick, in time order;
    picks without a score are skipped."""
    out: list[tuple[float, float, float]] = []
    best = -np.inf
    for p in sorted(picks, key=lambda p: p.wall_s):
        if p.cv is None:
            continue
        best = max(best, p.cv)
        out.append((p.wall_s, p.cpu_s, float(best)))
    return out


def time_to_within(
    picks: Sequence[Pick], target: float, points: float = POINTS
) -> tuple[float, float] | None:
    """(wall s, CPU s) of the first pick whose yardstick CV is within `points` of `target`."""
    for wall, cpu, cv in best_so_far(picks):
        if cv >= target - points / 100 - 1e-12:
            return wall, cpu
    return None


def quality_at(picks: Sequence[Pick], budget: float, clock: str = "wall") -> float | None:
    """The best-so-far yardstick CV `budget` seconds in (clock "wall" or "cpu"); None before
    the first pick."""
    i = 0 if clock == "wall" else 1
    reached = [point[2] for point in best_so_far(picks) if point[i] <= budget + 1e-9]
    return reached[-1] if reached else None


class Yardstick:
    """The project's k-fold CV of candidates, once per candidate: `score(params)` runs
    `fit_scores(params)` (a list of fold accuracies) only for a candidate not seen before."""

    def __init__(self, fit_scores: Callable[[Params], list[float]]) -> None:
        self.fit_scores = fit_scores
        self.scores: dict[str, list[float]] = {}

    def score(self, params: Params) -> float:
        key = params_key(params)
        if key not in self.scores:
            self.scores[key] = [float(s) for s in self.fit_scores(params)]
        return float(np.mean(self.scores[key]))

    def records(self) -> list[dict[str, Any]]:
        return [
            {"params": json.loads(k), "scores": s, "mean": float(np.mean(s))} for k, s in self.scores.items()
        ]


def journal_picks(
    fits: Iterable[FitRecord], candidates: dict[int, Params], folds: int, epoch0: float
) -> list[Pick]:
    """`cnn-cifar search`'s picks from its fits/ journal: each time a candidate has all its
    folds (at the last rung, not the probe's) and the best mean so far. Wall seconds are
    from `epoch0` (the Unix time the command was started); CPU seconds are left at 0 for
    the caller to fill in."""
    fits = [f for f in fits if f["status"] == "ok" and "finished" in f and not f.get("probe")]
    last_rung = max((f.get("rung") or 0 for f in fits), default=0)
    done: dict[int, dict[int, float]] = {}
    picks: list[Pick] = []
    best = -np.inf
    for f in sorted(fits, key=lambda f: f["finished"]):
        if (f.get("rung") or 0) != last_rung:
            continue
        mine = done.setdefault(f["candidate"], {})
        mine[f["fold"]] = f["score"]
        if len(mine) == folds and np.mean(list(mine.values())) > best:
            best = float(np.mean(list(mine.values())))
            wall = datetime.fromisoformat(f["finished"]).timestamp() - epoch0
            picks.append(Pick(round(wall, 3), 0.0, dict(candidates[f["candidate"]]), best))
    return picks


def side_order(sides: Sequence[str], index: int) -> list[str]:
    """The sides of the index-th seed: rotated by one per seed, so none always goes first."""
    k = index % len(sides) if sides else 0
    return [*sides[k:], *sides[:k]]


# ---------------------------------------------------------------------- the peers' Keras code


def build_network(params: Params, input_shape: Sequence[int], n_classes: int, recipe: Recipe) -> Any:
    """configs/search.yaml's two_conv_hidden written in plain Keras, as a peer's user writes
    it: pixels scaled in the model (as the project does), same-padded ReLU convolutions, max
    pooling, a ReLU hidden layer, a softmax output; the config's Adadelta."""
    import keras

    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=tuple(input_shape)),
            layers.Rescaling(recipe.rescale),
            layers.Conv2D(
                params["conv1__filters"], params["conv1__kernel"], padding="same", activation="relu"
            ),
            layers.MaxPooling2D(params["pool1__size"]),
            layers.Conv2D(
                params["conv2__filters"], params["conv2__kernel"], padding="same", activation="relu"
            ),
            layers.MaxPooling2D(params["pool2__size"]),
            layers.Flatten(),
            layers.Dense(params["hidden__units"], activation="relu"),
            layers.Dense(n_classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adadelta(learning_rate=recipe.learning_rate, epsilon=recipe.epsilon),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def holdout(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[tuple, tuple]:
    """The project's validation rows: a seeded shuffle, then the last `fraction` (as
    CNNClassifier.fit takes them; Keras' own validation_split takes the tail unshuffled)."""
    n_val = min(round(len(x) * fraction), len(x) - 1)
    order = np.random.default_rng(seed).permutation(len(x))
    fit_idx, val_idx = np.sort(order[:-n_val]), np.sort(order[-n_val:])
    return (x[fit_idx], y[fit_idx]), (x[val_idx], y[val_idx])


def _setup(config: str, sets: list[str], data_path: str, subset: int, folds: int) -> tuple:
    configure_threads(None)  # the framework's defaults: every core, as each side's user has
    cfg = load_config(config, sets)
    assert cfg.search is not None, f"{config}: no search block"
    x, y, n_classes = load_slice(data_path, subset)
    splits = cv_splits(y, folds, cfg.cv.test_size, cfg.cv.random_state)
    return cfg, dimensions(cfg.search.space), Recipe.of(cfg), x, y, n_classes, splits


def optuna_worker(
    conn: Connection, config: str, sets: list[str], data_path: str, subset: int, folds: int, seed: int
) -> None:
    """Optuna as its Keras example writes it, over the project's folds; sends its picks."""
    cfg, dims, recipe, x, y, n_classes, splits = _setup(config, sets, data_path, subset, folds)
    assert cfg.search is not None
    import keras
    import optuna
    from optuna_integration import KerasPruningCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    picks: list[Pick] = []

    def objective(trial: optuna.Trial) -> float:
        params = optuna_draw(trial, dims)
        scores = []
        for fold, (train_idx, test_idx) in enumerate(splits):
            keras.backend.clear_session()
            keras.utils.set_random_seed(recipe.seed)  # after clear_session, which resets it
            model = build_network(params, x.shape[1:], n_classes, recipe)
            fit, val = holdout(x[train_idx], y[train_idx], recipe.validation_split, recipe.seed)
            callbacks: list = [
                keras.callbacks.EarlyStopping(monitor=recipe.monitor, patience=recipe.patience)
            ]
            if fold == 0:  # the pruner watches fold 0's epochs
                callbacks.append(KerasPruningCallback(trial, "val_accuracy"))
            model.fit(
                *fit,
                batch_size=recipe.batch_size,
                epochs=recipe.epochs,
                validation_data=val,
                callbacks=callbacks,
                verbose=0,
            )
            scores.append(
                model.evaluate(x[test_idx], y[test_idx], batch_size=256, verbose=0, return_dict=True)[
                    "accuracy"
                ]
            )
        return float(np.mean(scores))

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = study.best_trial
        except ValueError:  # every trial so far pruned
            return
        params = project_params(best.params, dims)
        if not picks or picks[-1].params != params:
            picks.append(Pick(time.time(), time.process_time(), params, best.value))

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(objective, n_trials=cfg.search.n_iter, n_jobs=1, callbacks=[record])
    states = [t.state.name.lower() for t in study.trials]
    conn.send(
        {
            "picks": [asdict(p) for p in picks],
            "trials": len(study.trials),
            "detail": {s: states.count(s) for s in sorted(set(states))},
        }
    )


def kerastuner_worker(
    conn: Connection, config: str, sets: list[str], data_path: str, subset: int, folds: int, seed: int
) -> None:
    """Keras Tuner's Hyperband as its docs write it, on the subset with a validation split;
    sends its picks (its best trial after each trial ends)."""
    _, dims, recipe, x, y, n_classes, _ = _setup(config, sets, data_path, subset, folds)
    import keras
    import keras_tuner as kt

    picks: list[Pick] = []

    def build(hp: kt.HyperParameters) -> Any:
        return build_network(kerastuner_draw(hp, dims), x.shape[1:], n_classes, recipe)

    class Hyperband(kt.Hyperband):
        """kt.Hyperband, watched: its best trial is noted after each trial ends."""

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            best = self.oracle.get_best_trials(1)
            if best:
                params = project_params(best[0].hyperparameters.values, dims)
                if not picks or picks[-1].params != params:
                    picks.append(Pick(time.time(), time.process_time(), params, best[0].score))

    keras.utils.set_random_seed(recipe.seed)
    order = np.random.default_rng(seed).permutation(len(y))  # the validation tail must not be one class
    folder = tempfile.mkdtemp(prefix="bench-peers-kt-")
    try:
        tuner = Hyperband(
            build,
            objective="val_accuracy",
            max_epochs=recipe.epochs,
            factor=3,
            seed=seed,
            directory=folder,
            project_name="search",
            overwrite=True,
        )
        tuner.search(
            x[order],
            y[order],
            validation_split=recipe.validation_split,
            batch_size=recipe.batch_size,
            callbacks=[keras.callbacks.EarlyStopping(monitor=recipe.monitor, patience=recipe.patience)],
            verbose=0,
        )
        final = project_params(tuner.get_best_hyperparameters(1)[0].values, dims)
        trials = len(tuner.oracle.trials)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not picks or picks[-1].params != final:
        picks.append(Pick(time.time(), time.process_time(), final))
    conn.send({"picks": [asdict(p) for p in picks], "trials": trials, "detail": {}})


def yardstick_worker(
    conn: Connection, config: str, sets: list[str], data_path: str, subset: int, folds: int
) -> None:
    """The project's own CV of each candidate it is sent (training.folds.fit_one on the
    search's folds), until it is sent None."""
    configure_threads(None)
    cfg = load_config(config, sets)
    data = resolve_data(cfg, data_path, subset)
    ds = dataset(data)
    splits = cv_splits(ds.y_train, folds, cfg.cv.test_size, cfg.cv.random_state)
    estimator = training.estimator.from_config(cfg, input_shape=ds.input_shape)
    while True:
        params = conn.recv()
        if params is None:
            break
        est = estimator.set_params(**params)
        start = time.perf_counter()
        scores = [
            fit_one(est, data, tr, te, cfg.search.scoring if cfg.search else "accuracy")["score"]
            for tr, te in splits
        ]
        conn.send({"scores": scores, "fit_s": time.perf_counter() - start})


class ProjectCV:
    """The yardstick's training: a worker running yardstick_worker, started on first use
    (after the first seed's sides, so that nothing runs beside a timed side) and kept to
    the end; calling it with a candidate returns its fold scores."""

    def __init__(self, config: str, sets: list[str], data: str, subset: int, folds: int) -> None:
        self.args = (config, sets, data, subset, folds)
        self.worker: Worker | None = None
        self.fit_s = 0.0  # seconds of training and scoring, all candidates together

    def __call__(self, params: Params) -> list[float]:
        if self.worker is None:
            self.worker = spawn(yardstick_worker, *self.args)
        proc, conn = self.worker
        reply = ask(proc, conn, params)
        self.fit_s += reply["fit_s"]
        return list(reply["scores"])

    def close(self) -> None:
        if self.worker is not None:
            stop(*self.worker)
            self.worker = None


# ---------------------------------------------------------------------- running the sides


def _tree_cpu(root: int) -> float:
    """CPU seconds of process `root` and its live descendants (their reaped children too),
    from /proc; 0 where it cannot be read."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [p for p, (ppid, _) in stats.items() if ppid == pid]
    return total


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_project(b: dict[str, Any], seed: int, data: str, jobs: int | None, side: str = "project") -> SideRun:
    """`cnn-cifar search` (with the `side`'s settings, PROJECT_VARIANTS) in a process of its
    own; picks from its journal, CPU seconds of its process tree sampled once a second (the
    total from the kernel's accounting)."""
    out = SideRun(side, seed)
    results = Path(tempfile.mkdtemp(prefix="bench-peers-search-"))
    cmd = [
        str(Path(sys.executable).with_name("cnn-cifar")),
        "search",
        str(config_path("search")),
        "--data",
        data,
        "--subset",
        str(b["subset"]),
        "--results-dir",
        str(results),
    ]
    for s in [*_sets(b), f"search.random_state={seed}", *PROJECT_VARIANTS[side]]:
        cmd += ["--set", s]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    out.detail["command"] = " ".join(cmd)
    samples: list[tuple[float, float]] = [(0.0, 0.0)]
    cpu0, epoch0, start = _children_cpu(), time.time(), time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append((time.perf_counter() - start, _tree_cpu(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate()
        out.wall_s = time.perf_counter() - start
        done.set()
        sampler.join()
        out.cpu_s = _children_cpu() - cpu0
        samples.append((out.wall_s, out.cpu_s))
        best = sorted(results.glob("*/best.json"))
        if proc.returncode != 0 or not best:
            out.error = _last_line(stderr or stdout)
            return out
        run_dir = best[-1].parent
        candidates = {int(c["candidate"]): c["params"] for c in read_json(run_dir / CANDIDATES_FILE)}
        journal = list(load_fits(run_dir).values())
        final, final_score = read_json(best[-1])["best_params"], read_json(best[-1])["best_score"]
    finally:
        shutil.rmtree(results, ignore_errors=True)  # the run folder was only a means
    folds = b["folds"]
    out.picks = journal_picks(journal, candidates, folds, epoch0)
    walls, cpus = np.array([s[0] for s in samples]), np.array([s[1] for s in samples])
    for p in out.picks:
        p.cpu_s = round(float(np.interp(p.wall_s, walls, np.maximum.accumulate(cpus))), 2)
    if not out.picks or out.picks[-1].params != final:  # its answer, if the journal's differs
        out.picks.append(Pick(out.wall_s, out.cpu_s, dict(final), final_score))
    out.trials = len(journal)
    statuses = [str(f["status"]) for f in journal]
    out.detail.update({s: statuses.count(s) for s in sorted(set(statuses))})
    return out


def run_worker_side(side: str, b: dict[str, Any], seed: int, data: str) -> SideRun:
    """A peer (optuna, kerastuner) or sklearn's RandomizedSearchCV in a spawned process;
    its picks' times are from the parent's clock at the spawn, its CPU seconds the process's."""
    out = SideRun(side, seed)
    config, sets = str(config_path("search")), [*_sets(b), f"search.random_state={seed}"]
    cpu0, epoch0, start = _children_cpu(), time.time(), time.perf_counter()
    if side == "sklearn":
        sets += ["train.steps_per_execution=1"]
        proc, conn = spawn(search.plain_search, config, sets, data, b["subset"], b["folds"])
    else:
        worker = optuna_worker if side == "optuna" else kerastuner_worker
        proc, conn = spawn(worker, config, sets, data, b["subset"], b["folds"], seed)
    try:
        reply = ask(proc, conn)
    except WorkerError as e:
        out.error = str(e)
        reply = {}
    finally:
        stop(proc, conn)
    out.wall_s, out.cpu_s = time.perf_counter() - start, _children_cpu() - cpu0
    if side == "sklearn" and reply:  # it answers once, when it ends
        out.picks = [Pick(out.wall_s, out.cpu_s, reply["best_params"], reply["best_score"])]
        out.trials = reply["n_fits"] // b["folds"]
    elif reply:
        out.picks = [
            Pick(round(p["wall_s"] - epoch0, 3), round(p["cpu_s"], 2), p["params"], p["own"])
            for p in reply["picks"]
        ]
        out.trials, out.detail = reply["trials"], reply["detail"]
    return out


def _sets(b: dict[str, Any]) -> list[str]:
    return [
        f"search.n_iter={b['n_iter']}",
        f"search.cv={b['folds']}",
        f"train.epochs={b['epochs']}",
        "train.precision=float32",
    ]


def summarise(runs: list[SideRun]) -> dict[str, Any]:
    """One seed's figures: the best yardstick CV any side found, the smallest side's total
    budget (wall and CPU), and per side its time to within POINTS of that best, its
    quality at that budget and its final pick's CV."""
    ok = [r for r in runs if not r.error and r.picks]
    cvs = [p.cv for r in ok for p in r.picks if p.cv is not None]
    best = max(cvs) if cvs else None
    wall = min((r.wall_s for r in ok), default=None)
    cpu = min((r.cpu_s for r in ok), default=None)
    sides: dict[str, Any] = {}
    for r in runs:
        reach = time_to_within(r.picks, best) if best is not None else None
        sides[r.side] = {
            **asdict(r),
            "curve": best_so_far(r.picks),
            "final_own": r.picks[-1].own if r.picks else None,
            "final_cv": r.picks[-1].cv if r.picks else None,
            "to_within_wall_s": reach[0] if reach else None,
            "to_within_cpu_s": reach[1] if reach else None,
            "at_smallest_wall": quality_at(r.picks, wall, "wall") if wall is not None else None,
            "at_smallest_cpu": quality_at(r.picks, cpu, "cpu") if cpu is not None else None,
        }
    return {"best_cv": best, "smallest_wall_s": wall, "smallest_cpu_s": cpu, "sides": sides}


def over_seeds(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per side, over the seeds' summaries: the mean of each figure over the seeds that
    have it, and on how many seeds the side came within POINTS of the seed's best."""
    keys = (
        "wall_s",
        "cpu_s",
        "final_cv",
        "to_within_wall_s",
        "to_within_cpu_s",
        "at_smallest_wall",
        "at_smallest_cpu",
    )
    out: dict[str, dict[str, Any]] = {}
    for side in dict.fromkeys(side for run in runs for side in run["sides"]):
        mine = [run["sides"][side] for run in runs if side in run["sides"]]
        means = {}
        for key in keys:
            values = [m[key] for m in mine if m.get(key) is not None]
            means[key] = float(np.mean(values)) if values else None
        reached = sum(m.get("to_within_wall_s") is not None for m in mine)
        out[side] = {**means, "seeds": len(mine), "reached": reached}
    return out


def table(result: dict[str, Any]) -> str:
    b = result["budget"]
    lines = [
        f"bench.peers {result['started']}  {result['machine']}  load average at start {result['load_start']}",
        *(
            ["SMOKE RUN: a tiny budget checks that every side runs; its figures measure nothing"]
            if result["smoke"]
            else []
        ),
        "",
        f"PEERS  (configs/search.yaml's space; stratified subset of {b['subset']} training images, "
        f"{b['n_iter']} trials, {b['folds']} folds, at most {b['epochs']} epochs per fit, float32, batch 32;",
        f"yardstick: the project's {b['folds']}-fold CV of every pick, outside the sides' budgets; "
        f"to {POINTS:g} pt: until the pick is within {POINTS:g} point of the seed's best;",
        "at budget: the best-so-far yardstick CV at the smallest side's total wall / CPU time)",
        "own: the side's own score of its final pick (its CV mean, best value or validation accuracy)",
        f"{'seed':<5}{'side':<28}{'wall s':>8}{'cpu s':>8}{'trials':>7}{'picks':>6}{'own':>8}{'final CV':>9}"
        f"{'to 1pt s':>9}{'cpu s':>8}{'CV@wall':>8}{'CV@cpu':>8}",
    ]
    for run in result["runs"]:
        for side, s in run["sides"].items():
            lines.append(
                f"{run['seed']:<5}{LABELS[side][:27]:<28}{fmt(s['wall_s']):>8}{fmt(s['cpu_s']):>8}"
                f"{fmt(s['trials'], 'd'):>7}{len(s['picks']):>6}"
                f"{fmt(s['final_own'], '.4f'):>8}{fmt(s['final_cv'], '.4f'):>9}"
                f"{fmt(s['to_within_wall_s']):>9}{fmt(s['to_within_cpu_s']):>8}"
                f"{fmt(s['at_smallest_wall'], '.4f'):>8}{fmt(s['at_smallest_cpu'], '.4f'):>8}"
                + (f"  ERROR {s['error']}" if s["error"] else "")
            )
        lines.append(
            f"{'':<5}best {fmt(run['best_cv'], '.4f')}; smallest budget "
            f"{fmt(run['smallest_wall_s'])} s wall, {fmt(run['smallest_cpu_s'])} s CPU; "
            f"order {', '.join(run['order'])}"
        )
    if len(result["runs"]) > 1:
        lines.append(f"mean over {len(result['runs'])} seeds (to 1pt: of the seeds that reached it)")
        for side, m in over_seeds(result["runs"]).items():
            lines.append(
                f"{'all':<5}{LABELS[side][:27]:<28}{fmt(m['wall_s']):>8}{fmt(m['cpu_s']):>8}{'':>13}{'':>8}"
                f"{fmt(m['final_cv'], '.4f'):>9}{fmt(m['to_within_wall_s']):>9}{fmt(m['to_within_cpu_s']):>8}"
                f"{fmt(m['at_smallest_wall'], '.4f'):>8}{fmt(m['at_smallest_cpu'], '.4f'):>8}"
                f"  within {POINTS:g} pt on {m['reached']} of {m['seeds']}"
            )
    lines.append(f"yardstick: {len(result['yardstick'])} candidates scored in {fmt(result['yardstick_s'])} s")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Best-so-far yardstick CV against minutes, a line per side and seed, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {side: f"C{i}" for i, side in enumerate(SIDES)}
    styles = ["-", "--", ":", "-."]
    for k, run in enumerate(result["runs"]):
        for side, s in run["sides"].items():
            curve = s["curve"]
            if not curve:
                continue
            minutes = [c[0] / 60 for c in curve] + [s["wall_s"] / 60]
            cv = [100 * c[2] for c in curve] + [100 * curve[-1][2]]
            ax.step(
                minutes,
                cv,
                where="post",
                color=colours[side],
                linestyle=styles[k % len(styles)],
                marker="o",
                markersize=3,
                markevery=list(range(len(curve))),  # the picks, not the side's end
                label=f"{LABELS[side]}, seed {run['seed']}",
            )
            ax.plot(minutes[-1], cv[-1], marker="|", markersize=10, color=colours[side])  # it ended
        if run.get("smallest_wall_s") is not None:
            ax.axvline(
                run["smallest_wall_s"] / 60,
                color="grey",
                alpha=0.5,
                linewidth=1,
                linestyle=styles[k % len(styles)],
            )
    b = result["budget"]
    ax.set_xlabel(
        "minutes since the side started (wall); |: the side ended; grey: the smallest side's budget"
    )
    ax.set_ylabel(f"best-so-far pick: the project's {b['folds']}-fold CV accuracy (%)")
    ax.set_title(
        f"search.yaml's space, {b['subset']} images, {b['n_iter']} trials, {b['epochs']} epochs at most"
        + (" (SMOKE)" if result["smoke"] else ""),
        fontsize=10,
    )
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- the command line


def available(sides: Iterable[str]) -> bool:
    """Whether the packages the named sides need are installed (none is imported)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for side in sides for name in NEEDS.get(side, ()))


def options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ints = lambda text: [int(x) for x in text.split(",") if x.strip()]  # noqa: E731
    p.add_argument("--data", default=os.environ.get(DATA_ENV) or None, help=f"default: ${DATA_ENV}")
    p.add_argument("--seeds", type=ints, metavar="S,...", help="the sides' search seeds (default 0,1,2)")
    p.add_argument("--subset", type=int, help="training images, the --subset N draw (default 10000)")
    p.add_argument("--epochs", type=int, help="epochs per fit at most (default 10; Hyperband's max_epochs)")
    p.add_argument("--n-iter", type=int, help="candidates / trials per side (default 10)")
    p.add_argument("--sides", default=",".join(DEFAULT_SIDES), help=f"comma-separated, of {', '.join(SIDES)}")
    p.add_argument("--jobs", type=int, help="cnn-cifar search --jobs (default: left out, its default)")
    p.add_argument("--smoke", action="store_true", help="400 images, 2 epochs, 3 trials, 2 folds, seed 0")
    p.add_argument(
        "--out",
        type=Path,
        help="the JSON (default results/bench-peers-<time>.json; "
        "--smoke: a temporary folder); the PNG goes beside it",
    )
    args = p.parse_args(argv)
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    bad = sorted(set(args.sides) - set(SIDES))
    if bad or not args.sides:
        p.error(f"--sides: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(SIDES)}")
    b = dict(BUDGETS["smoke" if args.smoke else "default"])
    for key in ("seeds", "subset", "epochs", "n_iter"):
        if getattr(args, key) is not None:
            b[key] = getattr(args, key)
    if b["folds"] is None:
        cfg = load_config(config_path("search"))
        assert cfg.search is not None
        b["folds"] = cfg.search.cv
    # the smoke run checks that each kind of side runs: the ttest variant is the project's
    # own command with one more --set, and a side costs CI half a minute
    b["sides"] = [s for s in args.sides if s != "project_ttest"] if args.smoke else args.sides
    args.budget = b
    return args


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    if not available(args.sides):
        print(f"{PROG}: skipped: {EXTRA}")
        return 0
    if args.data is None:
        print(f"{PROG}: --data: required unless {DATA_ENV} is set", file=sys.stderr)
        return 2
    quiet_tf()
    try:  # decoded (or read from the cache) once here, not inside the first side's time
        load_dataset(detect_source(str(args.data)), str(args.data))
    except DataError as e:
        print(f"{PROG}: --data: {e}", file=sys.stderr)
        return 2
    b, started = args.budget, datetime.now()
    stamp = started.strftime("%Y-%m-%d_%H-%M-%S")
    if args.out is not None:
        path = Path(args.out)
    elif args.smoke:
        path = Path(tempfile.mkdtemp(prefix="bench-peers-smoke-")) / f"bench-peers-smoke-{stamp}.json"
    else:
        path = ROOT / "results" / f"bench-peers-{stamp}.json"
    result: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "machine": machine(),
        "versions": versions(),
        "load_start": loadavg(),
        "smoke": args.smoke,
        "budget": b,
        "runs": [],
        "errors": [],
    }
    sets = [f"train.epochs={b['epochs']}", "train.precision=float32", f"search.cv={b['folds']}"]
    project_cv = ProjectCV(str(config_path("search")), sets, str(args.data), b["subset"], b["folds"])
    yardstick = Yardstick(project_cv)
    wall = time.perf_counter()
    try:
        for k, seed in enumerate(b["seeds"]):
            order = side_order(args.sides, k)
            runs = []
            for side in order:
                log(f"peers: seed {seed}: {LABELS[side]} ... (load {loadavg()})")
                if side in PROJECT_VARIANTS:
                    r = run_project(b, seed, str(args.data), args.jobs, side)
                else:
                    r = run_worker_side(side, b, seed, str(args.data))
                log(
                    f"peers: seed {seed}: {LABELS[side]}: {r.wall_s:.0f} s, {len(r.picks)} pick(s)"
                    + (f" ERROR {r.error}" if r.error else "")
                )
                if r.error:
                    result["errors"].append(f"seed {seed} {side}: {r.error}")
                runs.append(r)
            for r in runs:  # the yardstick, outside every side's time
                for p in r.picks:
                    p.cv = yardstick.score(p.params)
            result["runs"].append({"seed": seed, "order": order, **summarise(runs)})
            result["over_seeds"] = over_seeds(result["runs"])
            result["yardstick"], result["yardstick_s"] = yardstick.records(), project_cv.fit_s
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, result, indent=1)  # after every seed: a long run keeps what it measured
    except WorkerError as e:
        result["errors"].append(f"yardstick: {e}")
    finally:
        project_cv.close()
    result.update(
        wall_s=time.perf_counter() - wall,
        load_end=loadavg(),
        yardstick=yardstick.records(),
        yardstick_s=project_cv.fit_s,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result, indent=1)
    png = path.with_suffix(".png")
    plot(result, png)
    print(
        table(result) + f"\n\ntotal {result['wall_s'] / 60:.1f} min; load average at end {result['load_end']}"
    )
    print(f"wrote {path} and {png.name}")
    if result["errors"]:
        print(f"{PROG}: {len(result['errors'])} error(s); first: {result['errors'][0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

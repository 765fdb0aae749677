"""`cnn-cifar search`: randomized search and successive halving over a config's space.

Three parts, kept apart as in scikit-learn's and Keras Tuner's searches:

- candidates (`make_candidates`): ParameterSampler's draws (what RandomizedSearchCV fits),
  each resolved into a config and shape-checked before anything trains;
- the oracle (`RacingOracle`, `RandomOracle`, `HalvingOracle`): given the fits finished
  so far, which fits run next. It holds no other state, so a resumed search asks it again
  and gets the same answer;
- the runner (`run_search`, `execute`, `run_fit`): runs those fits in this process, in
  loky worker processes or on a dask cluster, and writes each result to
  `fits/<key>.json` (atomically, fsync'd) the moment it arrives.

Racing (`strategy: racing`, the default) fits RandomizedSearchCV's candidates on the same
folds, one fold at a time: every candidate on fold 0, then only those whose mean score so
far is within `margin` of the best mean so far go on to the next fold; the leader runs all
its remaining folds first, so its full score is known early. A clearly worse candidate costs one fit instead of one per fold; the leaders are fitted
exactly as a random search fits them, so their scores are a random search's scores. The
margin is in the scorer's units (accuracy: 0.03 = three points).

Successive halving (`strategy: halving`) budgets training images, like
HalvingRandomSearchCV with resource="n_samples": rung 0 trains every candidate on the
first `min_resources` of each fold's (shuffled) training rows; each next rung keeps the
best ceil(n / factor) candidates by mean score and multiplies the images by `factor`;
the last rung trains on the full fold. The number of rungs is 1 + floor(log_factor(n
candidates)), fewer if min_resources * factor**k would pass the fold size. The default
min_resources is fold size // factor**(rungs - 1), so the last rung uses the whole fold
(sklearn's "exhaust"). Test rows are always the whole fold's.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from . import experiment, shapes
from .config import Config, ConfigError, Data, to_dict, validate
from .files import (BEST_FILE, CANDIDATES_FILE, CV_RESULTS_FILE, FITS_DIR, RANKING_FILE, RUN_FILE,
                    SCORE_VS_PARAMS_PLOT, SCORES_PLOT, SPEC_FILE, one_line, read_json, write_json,
                    write_text)
from .runtime import dataset, threads_per_job
from .space import candidate_config, parse_space, sample

log = logging.getLogger("cnn_cifar")


class SearchError(Exception):
    """A user-facing problem running a search (bad run folder, missing dask, no scheduler)."""


# --------------------------------------------------------------------------- candidates

@dataclass
class Candidate:
    id: int
    params: dict
    config: Config | None = None
    layers: list | None = None        # shapes.infer output
    reason: str | None = None         # why it cannot run, found before training

    @property
    def ok(self) -> bool:
        return self.reason is None


def pin(cfg: Config, data: Data) -> tuple[Config, Data]:
    """Fix what a resume must reproduce: a drawn seed where the sampler or the splits have
    none, and an absolute data path (workers and resumes may start elsewhere)."""
    cfg = cfg.model_copy(deep=True)
    rng = np.random.default_rng()
    if cfg.search.random_state is None:
        cfg.search.random_state = int(rng.integers(2**31))
    if cfg.cv.random_state is None:
        cfg.cv.random_state = int(rng.integers(2**31))
    if data.path:
        data = data.model_copy(update={"path": os.path.abspath(data.path)})
    cfg.data = data
    return cfg, data


def make_candidates(cfg: Config, input_shape, n_classes: int, source: str) -> list[Candidate]:
    """Sample the space and check each draw's config and layer shapes (nothing trains)."""
    space = parse_space(cfg, source)
    base = to_dict(cfg)
    out = []
    for i, params in enumerate(sample(space, cfg.search.n_iter, cfg.search.random_state)):
        cand = Candidate(i, params)
        try:
            cand.config = candidate_config(base, params, source)
            cand.layers = shapes.infer(cand.config.model.layers, input_shape, n_classes)
        except ConfigError as e:
            cand.reason = f"{e.field}: {e.message}"
        except shapes.ShapeError as e:
            cand.reason = str(e)
        out.append(cand)
    return out


def n_folds(cfg: Config) -> int:
    return cfg.search.cv or cfg.cv.n_splits


def dry_run_report(cfg: Config, candidates: list[Candidate]) -> str:
    ok = [c for c in candidates if c.ok]
    k = n_folds(cfg)
    head = [f"search {cfg.name}: strategy {cfg.search.strategy}, {len(candidates)} candidates "
            f"({len(candidates) - len(ok)} cannot run), {k} folds, scoring {cfg.search.scoring}"]
    if cfg.search.strategy == "halving":
        counts = halving_counts(len(ok), cfg.search.factor)
        head.append(f"halving: candidates per rung {' -> '.join(map(str, counts))}, training images "
                    f"x{cfg.search.factor:g} per rung, the last rung on the full fold; at most "
                    f"{sum(counts) * k} fits")
    elif cfg.search.strategy == "racing":
        head.append(f"racing: every candidate on fold 0, then fold by fold only those within "
                    f"{cfg.search.margin:g} of the best mean so far; {len(ok)} to {len(ok) * k} fits")
    else:
        head.append(f"{len(ok) * k} fits")
    blocks = ["\n".join(head)]
    for c in candidates:
        if c.ok:
            params, macs = shapes.totals(c.layers)
            body = (f"  parameters {params:,}, multiply-accumulates per image {macs:,}\n"
                    + _indent(shapes.describe(c.layers)))
        else:
            body = f"  FAILED (cannot run): {c.reason}"
        blocks.append(f"c{c.id:03d} {c.params!r}\n{body}")
    return "\n\n".join(blocks)


def _indent(text: str, pad: str = "    ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


# --------------------------------------------------------------------------- oracles

@dataclass(frozen=True)
class Fit:
    """One unit of work: a candidate on a fold (at a rung, with n_train images)."""
    candidate: int
    fold: int
    rung: int | None = None           # None: plain random search
    n_train: int | None = None        # None: the fold's full training rows

    @property
    def key(self) -> str:
        base = f"c{self.candidate:03d}_f{self.fold}"
        return base if self.rung is None else f"r{self.rung}_{base}"


def rung_score(done: dict, candidate: int, folds: int, rung: int | None = None) -> float:
    """Mean score of a candidate over all folds of a rung; NaN if any fold is missing or failed."""
    scores = []
    for f in range(folds):
        r = done.get(Fit(candidate, f, rung).key)
        if r is None or r.get("status") != "ok":
            return float("nan")
        scores.append(r["score"])
    return float(np.mean(scores))


class RacingOracle:
    """Racing over folds: fold k runs for the candidates still in the race after fold k-1;
    the leader runs all its remaining folds first, so its full CV score comes early."""

    def __init__(self, candidates: list[int], folds: int, margin: float):
        self.candidates, self.folds, self.margin = list(candidates), folds, margin

    def stages(self, done: dict):
        """(fold, the candidates that run it, its fits not yet in `done`), fold by fold up to
        the first one not finished: the single walk the other methods read."""
        alive = self.candidates
        for fold in range(self.folds):
            todo = [Fit(c, fold) for c in alive if Fit(c, fold).key not in done]
            yield fold, alive, todo
            if todo:
                return
            alive = self.survivors(alive, fold, done)[0]

    def next_fits(self, done: dict) -> list[Fit]:
        for fold, alive, todo in self.stages(done):
            if todo:
                if fold == 0:
                    return todo
                leader = [Fit(alive[0], f) for f in range(fold, self.folds)]
                return [f for f in leader if f.key not in done] + [f for f in todo if f.candidate != alive[0]]
        return []

    def survivors(self, alive: list[int], fold: int, done: dict) -> tuple[list[int], float]:
        """Candidates within `margin` of the best mean over folds 0..fold, best first;
        failed ones drop out. Also returns that best mean."""
        scores = {c: rung_score(done, c, fold + 1) for c in alive}
        finite = [c for c in alive if np.isfinite(scores[c])]
        best = max((scores[c] for c in finite), default=float("nan"))
        keep = [c for c in finite if scores[c] >= best - self.margin - 1e-12]
        return sorted(keep, key=lambda c: (-scores[c], c)), best

    def dropped(self, done: dict) -> dict[int, str]:
        """Why each candidate left the race early. Not listed: candidates that failed, and a
        leader that fell behind after it had already run every fold."""
        out = {}
        for fold, alive, todo in self.stages(done):
            if todo or fold == self.folds - 1:
                break
            keep, best = self.survivors(alive, fold, done)
            for c in alive:
                mean = rung_score(done, c, fold + 1)
                if c not in keep and np.isfinite(mean) and not np.isfinite(rung_score(done, c, self.folds)):
                    out[c] = (f"dropped after {fold + 1} of {self.folds} folds: mean {mean:.4f} is more "
                              f"than {self.margin:g} below the leader's {best:.4f}")
        return out

    def planned(self, done: dict | None = None) -> int:
        """Fits this race runs at most, knowing who has dropped out in `done` so far."""
        done = done or {}
        finished = sum(Fit(c, f).key in done for c in self.candidates for f in range(self.folds))
        for fold, alive, todo in self.stages(done):
            if todo:
                return finished + sum(Fit(c, f).key not in done for c in alive for f in range(fold, self.folds))
        return finished


class RandomOracle:
    """RandomizedSearchCV: every runnable candidate on every fold, full training rows."""

    def __init__(self, candidates: list[int], folds: int):
        self.fits = [Fit(c, f) for c in candidates for f in range(folds)]

    def next_fits(self, done: dict) -> list[Fit]:
        return [fit for fit in self.fits if fit.key not in done]

    def dropped(self, done: dict) -> dict[int, str]:
        return {}

    def planned(self, done: dict | None = None) -> int:
        return len(self.fits)


def halving_counts(n_candidates: int, factor: float, n_rungs: int | None = None) -> list[int]:
    n_rungs = n_rungs or required_rungs(n_candidates, factor)
    counts = [n_candidates]
    for _ in range(n_rungs - 1):
        counts.append(math.ceil(counts[-1] / factor))
    return counts


def required_rungs(n_candidates: int, factor: float) -> int:
    """1 + floor(log_factor(n)), as HalvingRandomSearchCV: the last rung holds < factor candidates."""
    if n_candidates <= 1:
        return 1
    return 1 + math.floor(math.log(n_candidates) / math.log(factor) + 1e-9)


def rung_resources(n_candidates: int, max_resources: int, factor: float,
                   min_resources: int | None = None) -> list[int]:
    """Training images per fit at each rung (see the module docstring)."""
    n_rungs = required_rungs(n_candidates, factor)
    if min_resources is None:
        min_resources = max(1, int(max_resources // factor ** (n_rungs - 1)))
    elif min_resources > max_resources:
        raise ValueError(f"{min_resources} is more than the {max_resources} training images of a fold")
    possible = 1 + math.floor(math.log(max_resources / min_resources) / math.log(factor) + 1e-9)
    n_rungs = max(1, min(n_rungs, possible))
    return [int(min_resources * factor ** i) for i in range(n_rungs - 1)] + [max_resources]


class HalvingOracle:
    """Successive halving: a rung's fits run only once the previous rung has finished."""

    def __init__(self, candidates: list[int], folds: int, resources: list[int], factor: float):
        self.candidates, self.folds = list(candidates), folds
        self.resources, self.factor = resources, factor

    def next_fits(self, done: dict) -> list[Fit]:
        alive = self.candidates
        for rung, n_train in enumerate(self.resources):
            fits = [Fit(c, f, rung, n_train) for c in alive for f in range(self.folds)]
            todo = [fit for fit in fits if fit.key not in done]
            if todo:
                return todo
            alive = self.survivors(alive, rung, done)
        return []

    def survivors(self, alive: list[int], rung: int, done: dict) -> list[int]:
        """The best ceil(n / factor) by mean score (ties: lower id); failed ones never go on."""
        scores = {c: rung_score(done, c, self.folds, rung) for c in alive}
        ranked = sorted((c for c in alive if np.isfinite(scores[c])), key=lambda c: (-scores[c], c))
        return sorted(ranked[:math.ceil(len(alive) / self.factor)])

    def dropped(self, done: dict) -> dict[int, str]:
        return {}            # candidates left at a lower rung are ranked by the rung they reached

    def planned(self, done: dict | None = None) -> int:
        return sum(halving_counts(len(self.candidates), self.factor, len(self.resources))) * self.folds


def make_oracle(cfg: Config, candidates: list[Candidate], fold_size: int, source: str):
    ids = [c.id for c in candidates if c.ok]
    s = cfg.search
    if s.strategy == "random":
        return RandomOracle(ids, n_folds(cfg))
    if s.strategy == "racing":
        return RacingOracle(ids, n_folds(cfg), s.margin)
    try:
        resources = rung_resources(len(ids), fold_size, s.factor, s.min_resources)
    except ValueError as e:
        raise ConfigError(source, "search.min_resources", str(e)) from None
    return HalvingOracle(ids, n_folds(cfg), resources, s.factor)


# --------------------------------------------------------------------------- running fits

def run_fit(fit: Fit, estimator, data: Data, train_idx, test_idx, scoring: str,
            threads: int | None = None, callbacks=None) -> tuple[Fit, dict]:
    """One fit, here or in a worker. A fit that raises is a result with status 'failed'
    and the error's message (never a silent NaN)."""
    result = {"key": fit.key, "candidate": fit.candidate, "fold": fit.fold, "rung": fit.rung}
    try:
        out = experiment.fit_one(estimator, data, train_idx, test_idx, scoring=scoring,
                                 threads=threads, callbacks=callbacks, train_size=fit.n_train)
        result.update(status="ok", **out)
    except Exception as e:       # noqa: BLE001 - the search records it and goes on
        result.update(status="failed", error=one_line(e))
    result["finished"] = datetime.now().isoformat(timespec="milliseconds")
    return fit, result


def require_backend(backend: str):
    """The dask Client class for --backend dask (an optional extra, imported only here)."""
    if backend != "dask":
        return None
    try:
        from distributed import Client
    except ImportError:
        raise SearchError("--backend dask needs dask.distributed, which is not installed: "
                          "pip install 'cnn-cifar[dask]'") from None
    return Client


@contextlib.contextmanager
def backend_context(backend: str, scheduler: str | None):
    """joblib runs on a dask.distributed cluster inside this."""
    Client = require_backend(backend)
    if Client is None:
        yield
        return
    import joblib
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as e:
        raise SearchError(f"cannot reach the dask scheduler at {scheduler}: {one_line(e)}") from None
    with client, joblib.parallel_config(backend="dask"):
        yield


def execute(tasks: list[dict], jobs: int | None, backend: str, callbacks_for=None):
    """Yield (Fit, result) as fits finish: in this process (loky with --jobs 1), else via
    joblib in finishing order. Dask needs `backend_context` around it."""
    if backend == "loky" and (jobs or 1) == 1:
        for task in tasks:
            yield run_fit(**task, callbacks=callbacks_for(task["fit"]) if callbacks_for else None)
        return
    from joblib import Parallel, delayed
    calls = (delayed(run_fit)(**task) for task in tasks)
    if backend == "dask":
        parallel = Parallel(n_jobs=jobs or -1, return_as="generator_unordered")
    else:
        parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    yield from parallel(calls)


def fit_threads(jobs: int | None, backend: str, threads: int | None) -> int | None:
    """Threads per fit: as `runtime.threads_per_job` locally, the worker's default on dask."""
    return threads if backend == "dask" else threads_per_job(jobs, threads)


# --------------------------------------------------------------------------- run folder

def save_spec(run_dir: Path, cfg: Config, data: Data, source: str, candidates: list[Candidate]) -> None:
    """What --resume starts from. search.json goes last: a folder that has it has the rest."""
    (run_dir / FITS_DIR).mkdir(exist_ok=True)
    write_json(run_dir / CANDIDATES_FILE, [_candidate_record(c) for c in candidates])
    write_json(run_dir / SPEC_FILE, {"source": source, "config": to_dict(cfg),
                                            "data": data.model_dump()})


def _candidate_record(c: Candidate) -> dict:
    params, macs = shapes.totals(c.layers) if c.ok else (None, None)
    return {"candidate": c.id, "params": c.params, "status": "ok" if c.ok else "failed",
            "reason": c.reason, "n_parameters": params, "macs_per_image": macs}


def load_spec(run_dir: str | Path) -> tuple[Config, Data, str]:
    """The config, data spec and original source of a search run folder, for --resume."""
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_FILE
    if not info_path.is_file():
        raise SearchError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    command = read_json(info_path).get("command")
    if command != "search":
        raise SearchError(f"{run_dir}: not a search run (its {RUN_FILE} says command {command!r}); "
                          "--resume takes a folder made by cnn-cifar search")
    if not (run_dir / SPEC_FILE).is_file():
        raise SearchError(f"{run_dir}: no {SPEC_FILE}; the search was stopped before it started, "
                          "start a new one")
    spec = read_json(run_dir / SPEC_FILE)
    cfg = validate(spec["config"], str(run_dir / SPEC_FILE))
    return cfg, Data.model_validate(spec["data"]), spec.get("source", str(run_dir / SPEC_FILE))


def check_candidates(run_dir: Path, candidates: list[Candidate]) -> None:
    """A resume must draw the candidates the run started with."""
    saved = [c["params"] for c in read_json(run_dir / CANDIDATES_FILE)]
    now = json.loads(json.dumps([c.params for c in candidates]))
    if saved != now:
        raise SearchError(f"{run_dir}: the candidates drawn now differ from {CANDIDATES_FILE} "
                          "(was scikit-learn or scipy upgraded?); start a new search")


def load_fits(run_dir: Path) -> dict[str, dict]:
    """Finished fits by key. Files are written whole or not at all; a stray unreadable one
    is ignored (its fit runs again)."""
    done = {}
    for path in sorted((run_dir / FITS_DIR).glob("*.json")):
        try:
            result = read_json(path)
            done[result["key"]] = result
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable fit file %s (%s)", path, e)
    return done


def resume_command(run_dir: Path, jobs: int | None, backend: str, scheduler: str | None) -> str:
    cmd = ["cnn-cifar", "search", "--resume", str(run_dir)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    if backend != "loky":
        cmd += ["--backend", backend, "--scheduler", scheduler]
    return shlex.join(cmd)


# --------------------------------------------------------------------------- the search

@dataclass
class Plan:
    """Everything a search needs before its first fit: the candidates, the folds and the oracle."""
    cfg: Config
    data: Data
    candidates: list[Candidate]
    splits: list[tuple]
    oracle: RacingOracle | RandomOracle | HalvingOracle
    input_shape: tuple


def plan_search(cfg: Config, data: Data, candidates: list[Candidate], source: str) -> Plan:
    """Load the data (once per process), cut the folds and set up the oracle; a halving
    budget that cannot work is a ConfigError here, before a run folder exists."""
    ds = dataset(data)
    splits = experiment.cv_splits(ds.y_train, n_folds(cfg), cfg.cv.test_size, cfg.cv.random_state)
    fold_size = min(len(train) for train, _ in splits)
    return Plan(cfg, data, candidates, splits, make_oracle(cfg, candidates, fold_size, source),
                ds.input_shape)


def run_search(plan: Plan, run_dir: Path, jobs: int | None = None, threads: int | None = None,
               backend: str = "loky") -> dict:
    """Run (or finish) the search in `run_dir`, skipping fits already in fits/; returns the
    summary written by `write_outputs`. With backend "dask", call it inside `backend_context`."""
    from .estimator import from_config
    from .progress import EpochProgress, Progress
    cfg, oracle, splits = plan.cfg, plan.oracle, plan.splits
    estimators = {c.id: from_config(c.config, input_shape=plan.input_shape)
                  for c in plan.candidates if c.ok}
    per_fit = fit_threads(jobs, backend, threads)
    done = load_fits(run_dir)
    progress = Progress(oracle.planned(), label="fits", done=len(done))

    def callbacks(fit: Fit) -> list:                  # epoch progress, in-process fits only
        rung = f" rung {fit.rung}" if fit.rung is not None else ""
        return [EpochProgress(progress, f"c{fit.candidate:03d} fold {fit.fold}{rung}", cfg.train.epochs)]

    while todo := oracle.next_fits(done):
        progress.total = oracle.planned(done)          # racing: shrinks as candidates drop out
        tasks = [{"fit": fit, "estimator": estimators[fit.candidate], "data": plan.data,
                  "train_idx": splits[fit.fold][0], "test_idx": splits[fit.fold][1],
                  "scoring": cfg.search.scoring, "threads": per_fit} for fit in todo]
        for fit, result in execute(tasks, jobs, backend, callbacks):
            write_json(run_dir / FITS_DIR / f"{fit.key}.json", result)
            done[fit.key] = result
            _log_fit(fit, result)
            # every allowed scorer is greater-is-better (neg_log_loss is negated)
            mean = rung_score(done, fit.candidate, n_folds(cfg), fit.rung)
            progress.update(score=mean if np.isfinite(mean) else None)
    return write_outputs(cfg, plan.data, run_dir, plan.candidates, done, oracle.dropped(done))


def _log_fit(fit: Fit, result: dict) -> None:
    if result["status"] == "ok":
        log.info("fit %s: score %.4f, %d epochs, %.1f s, %d images", fit.key, result["score"],
                 result["epochs"], result["fit_time"], result["n_train"])
    else:
        log.warning("fit %s failed: %s", fit.key, result["error"])


# --------------------------------------------------------------------------- results

def summarize(candidates: list[Candidate], done: dict, folds: int,
              dropped: dict[int, str] | None = None) -> list[dict]:
    """One row per candidate from its highest rung: fold scores, mean/std, rank, status
    (ok, dropped: left a race early, failed)."""
    dropped = dropped or {}
    rows = [_row(c, done, folds, dropped.get(c.id)) for c in candidates]
    scored = [r for r in rows if r["status"] != "failed"]
    for r in rows:      # ok before dropped, then by rung, folds and score; failed share the last rank
        if r["status"] != "failed":
            r["rank"] = 1 + sum(_merit(o) > _merit(r) for o in scored)
        else:
            r["rank"] = len(scored) + 1
    return rows


def _merit(row: dict) -> tuple:
    n_scores = sum(s is not None for s in row["fold_scores"])
    return (row["status"] == "ok", row["rung"] or 0, n_scores, row["mean_score"])


def _row(c: Candidate, done: dict, folds: int, dropped: str | None = None) -> dict:
    mine = [r for r in done.values() if r["candidate"] == c.id]
    rung = max((r["rung"] or 0 for r in mine), default=None)
    last = {r["fold"]: r for r in mine if (r["rung"] or 0) == rung}
    fits = [last.get(f) for f in range(folds)]
    good = [r for r in fits if r is not None and r["status"] == "ok"]
    reason = c.reason or next((f"fold {r['fold']}: {r['error']}" for r in fits
                               if r is not None and r["status"] != "ok"), None)
    status = "failed" if reason else "dropped" if dropped else "ok"
    if status == "ok" and len(good) < folds:
        status, reason = "failed", "not finished"
    scores = [r["score"] if r is not None and r["status"] == "ok" else None for r in fits]
    times = [r["fit_time"] for r in good]
    scored = [s for s in scores if s is not None] if status != "failed" else []
    return {"candidate": c.id, "params": c.params, "fold_scores": scores,
            "mean_score": float(np.mean(scored)) if scored else float("nan"),
            "std_score": float(np.std(scored)) if scored else float("nan"),
            "mean_fit_time": float(np.mean(times)) if times else float("nan"),
            "std_fit_time": float(np.std(times)) if times else float("nan"),
            "mean_epochs": float(np.mean([r["epochs"] for r in good])) if good else float("nan"),
            "status": status, "reason": reason or dropped or "",
            "rung": rung, "n_resources": good[0]["n_train"] if good else None}


def write_outputs(cfg: Config, data: Data, run_dir: Path, candidates: list[Candidate],
                  done: dict, dropped: dict[int, str] | None = None) -> dict:
    """cv_results.csv, ranking.txt, best.json and the two plots; returns the summary."""
    from . import plots
    folds = n_folds(cfg)
    rows = summarize(candidates, done, folds, dropped)
    halving = cfg.search.strategy == "halving"
    names = sorted(cfg.search.space)
    write_text(run_dir / CV_RESULTS_FILE, cv_results_csv(rows, names, folds, halving))
    ranking = ranking_text(rows, cfg.search.scoring, folds, halving)
    write_text(run_dir / RANKING_FILE, ranking + "\n")
    plots.plot_search_scores(rows, run_dir / SCORES_PLOT,
                             title=f"{cfg.name}: {cfg.search.scoring} per candidate ({cfg.search.strategy})")
    varied = [n for n in names if not (isinstance(cfg.search.space[n], list)
                                       and len({repr(v) for v in cfg.search.space[n]}) == 1)]
    plots.plot_score_vs_params(rows, varied or names, run_dir / SCORE_VS_PARAMS_PLOT)
    best = min((r for r in rows if r["status"] == "ok"), key=lambda r: (r["rank"], r["candidate"]),
               default=None)
    summary = {"rows": rows, "ranking": ranking, "best": None, "n_fits": len(done)}
    if best is not None:
        summary["best"] = best_record(cfg, data, candidates[best["candidate"]], best)
        write_json(run_dir / BEST_FILE, summary["best"])
    return summary


def best_record(cfg: Config, data: Data, cand: Candidate, row: dict) -> dict:
    config = to_dict(cand.config)
    config["name"] = f"{cfg.name}_best"
    config.pop("search", None)
    return {"best_params": cand.params, "best_score": row["mean_score"], "best_std": row["std_score"],
            "best_candidate": cand.id, "scoring": cfg.search.scoring,
            "strategy": cfg.search.strategy, "config": config, "data": data.model_dump()}


def cv_results_csv(rows: list[dict], names: list[str], folds: int, halving: bool) -> str:
    import csv
    import io
    cols = (["candidate"] + [f"param_{n}" for n in names] + [f"split{i}_test_score" for i in range(folds)]
            + ["mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time", "std_fit_time",
               "mean_epochs", "status", "reason"] + (["rung", "n_resources"] if halving else []))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        cells = ([r["candidate"]] + [_cell(r["params"].get(n)) for n in names]
                 + [_cell(s) for s in r["fold_scores"]]
                 + [_cell(r[k]) for k in ("mean_score", "std_score", "rank", "mean_fit_time",
                                          "std_fit_time", "mean_epochs", "status", "reason")]
                 + ([_cell(r["rung"]), _cell(r["n_resources"])] if halving else []))
        writer.writerow(cells)
    return buf.getvalue()


def _cell(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return repr(v) if isinstance(v, float) else v


def ranking_text(rows: list[dict], scoring: str, folds: int, halving: bool) -> str:
    """The tutorial's printout: mean (+/- 2 x std) for params, best first."""
    lines = [f"{scoring} per candidate, best first: mean (+/-2 x std over {folds} folds, "
             "as the tutorial prints it) for parameters"]
    for r in sorted(rows, key=lambda r: (r["rank"], r["candidate"])):
        if r["status"] == "ok":
            line = "%0.3f (+/-%0.03f) for %r" % (r["mean_score"], r["std_score"] * 2, r["params"])
            if halving:
                line += f"  [rung {r['rung']}, {r['n_resources']} images]"
        elif r["status"] == "dropped":
            line = "%0.3f for %r  [%s]" % (r["mean_score"], r["params"], r["reason"])
        else:
            line = f"failed for {r['params']!r}: {r['reason']}"
        lines.append(line)
    return "\n".join(lines)

"""The search loop: plan a search (the folds, the oracle), then ask the oracle which fits
run next, execute them, journal each result, and repeat until it has none; then render.
`run_search` is all of it in one call, for Python users."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import training
from ..config.errors import ConfigError
from ..config.schema import Config, Data
from ..core import console
from ..core.files import SPEC_FILE
from ..core.records import FitRecord
from ..core.tracking import Tracker
from ..core.vocabulary import FitStatus
from ..data.dataset import load_checked, probe, resolve_data
from ..training.folds import cv_splits
from . import pruning
from .candidates import Candidate, make_candidates
from .errors import SearchError
from .executors import execute, fit_threads
from .journal import FitJournal, save_spec
from .oracles import Fit, Oracle, make_oracle, n_folds, n_splits, rung_score
from .render import write_outputs
from .space import parse_space
from .structures import inline_config_names, shown_params
from .summary import SearchSummary

log = logging.getLogger("cnn_cifar")


def pin(cfg: Config) -> Config:
    """Fix what a resume must reproduce: a drawn seed where the sampler or the splits have
    none, and no pruning by default where there is no validation split to judge fits by.
    (The data path is already absolute: `data.dataset.resolve_data`.)"""
    cfg = cfg.model_copy(deep=True)
    rng = np.random.default_rng()
    search = cfg.search_block()
    if search.random_state is None:
        search.random_state = int(rng.integers(2**31))
    if cfg.cv.random_state is None:
        cfg.cv.random_state = int(rng.integers(2**31))
    if pruning.config_problem(cfg) and "rule" not in search.prune.model_fields_set:
        search.prune.rule = "none"  # the default rule, with nothing to judge fits by
    return cfg


def resume_command(run_dir: Path, jobs: int | None, backend: str, scheduler: str | None) -> str:
    cmd = ["cnn-cifar", "search", "--resume", str(run_dir)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    if backend != "loky":
        cmd += ["--backend", backend, *(["--scheduler", scheduler] if scheduler else [])]
    return shlex.join(cmd)


@dataclass
class Plan:
    """Everything a search needs before its first fit: the candidates, the folds and the oracle."""

    cfg: Config
    data: Data
    candidates: list[Candidate]
    splits: list[tuple]
    oracle: Oracle
    input_shape: tuple


def plan_search(cfg: Config, data: Data, candidates: list[Candidate], source: str) -> Plan:
    """Load the data (once per process), cut the folds and set up the oracle; a halving
    budget that cannot work is a ConfigError here, before a run folder exists."""
    ds = load_checked(data, test_size=cfg.cv.test_size)
    splits = cv_splits(
        ds.y_train, n_splits(cfg), cfg.cv.test_size, cfg.cv.random_state, n_repeats=cfg.cv.n_repeats
    )
    fold_size = min(len(train) for train, _ in splits)
    problem = pruning.config_problem(cfg)
    if problem:
        raise ConfigError(source, *problem)
    return Plan(
        cfg,
        data,
        candidates,
        splits,
        make_oracle(cfg, [c.id for c in candidates if c.ok], fold_size, source),
        ds.input_shape,
    )


def run_search(
    cfg: Config,
    run_dir: str | Path,
    *,
    data: Data | None = None,
    source: str | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    backend: str = "loky",
    tracker: Tracker | None = None,
) -> SearchSummary:
    """Search `cfg`'s search: block into `run_dir` (a new folder, or an empty one) and
    return the summary: what `cnn-cifar search` does, without its run.json, log or
    `--resume`. The candidates are drawn and shape-checked, the plan made and saved
    (search.json, candidates.json), then every fit runs and the outputs are written
    (cv_results.csv, ranking.txt, best.json, the plots). `data` defaults to the config's
    (`data.dataset.resolve_data`); `source` names the config in messages and is where
    configs named in a structural space are looked for (default: the config's name, in the
    current folder). `jobs`, `threads`, `backend` and `tracker` are `run_plan`'s."""
    source = cfg.name if source is None else source
    run_dir = Path(run_dir)
    if (run_dir / SPEC_FILE).exists():
        raise SearchError(f"{run_dir}: holds a search already; resume it with cnn-cifar search --resume")
    if cfg.search is None:
        raise ConfigError(source, "search", "no search: block to run (see configs/search.yaml)")
    cfg = inline_config_names(cfg, source)
    space = parse_space(cfg, source)
    data = resolve_data(cfg, source=source) if data is None else data
    cfg = pin(cfg.model_copy(update={"data": data}))
    input_shape, class_names = probe(data)
    candidates = make_candidates(cfg, space, input_shape, len(class_names), source)
    plan = plan_search(cfg, data, candidates, source)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_spec(run_dir, plan.cfg, plan.data, source, plan.candidates)
    return run_plan(plan, run_dir, jobs=jobs, threads=threads, backend=backend, tracker=tracker)


def run_plan(
    plan: Plan,
    run_dir: Path,
    jobs: int | None = None,
    threads: int | None = None,
    backend: str = "loky",
    tracker: Tracker | None = None,
) -> SearchSummary:
    """Run (or finish) the planned search in `run_dir`, skipping fits already in its journal;
    returns the summary written by `render.write_outputs`. `jobs` fits at once (None: one,
    in this process), `threads` per fit; with backend "dask", call it inside
    `executors.backend_context`. `tracker` logs each fit as it arrives."""
    journal, oracle = FitJournal(run_dir), plan.oracle
    done = journal.load()
    estimators = {
        c.id: training.estimator.from_config(c.config, input_shape=plan.input_shape)
        for c in plan.candidates
        if c.ok and c.config is not None
    }
    per_fit = fit_threads(jobs, backend, threads)
    prune = pruning.from_config(plan.cfg, run_dir)
    planned = oracle.planned({})  # before any fit: what the search runs at most
    with console.progress(oracle.planned(done), "fits", done=len(done)) as progress:
        callbacks = _epoch_callbacks(progress, plan.cfg.train.epochs, n_folds(plan.cfg))
        while todo := oracle.next_fits(done):
            now = oracle.planned(done)  # racing: fewer as candidates leave the race
            progress.set_total(
                now, f"{planned - now} fewer: candidates left the race" if now < planned else ""
            )
            tasks = [_task(plan, fit, estimators[fit.candidate], per_fit, prune) for fit in todo]
            for fit, result in execute(tasks, jobs, backend, callbacks):
                journal.append(fit, result)
                done[fit.key] = result
                _log_fit(fit, result)
                if tracker is not None:
                    tracker.log_fit(fit.key, _fit_params(plan, fit), result)
                # every allowed scorer is greater-is-better (neg_log_loss is negated)
                mean = rung_score(done, fit.candidate, n_folds(plan.cfg), fit.rung)
                progress.advance(score=mean if np.isfinite(mean) else None)
    return write_outputs(plan.cfg, plan.data, run_dir, plan.candidates, done, oracle)


def _task(plan: Plan, fit: Fit, estimator, threads: int | None, prune: pruning.Pruning | None) -> dict:
    """`executors.run_fit`'s arguments for one fit."""
    train_idx, test_idx = plan.splits[fit.fold]
    return {
        "fit": fit,
        "estimator": estimator,
        "data": plan.data,
        "train_idx": train_idx,
        "test_idx": test_idx,
        "scoring": plan.cfg.search_block().scoring,
        "threads": threads,
        "pruning": prune,
    }


def _epoch_callbacks(progress, epochs: int, folds: int):
    """Epoch progress for in-process fits: a Keras callback per fit."""

    def callbacks(fit: Fit) -> list:
        rung = f" rung {fit.rung + 1}" if fit.rung is not None else ""  # from 1 on screen
        probe = " probe" if fit.probe is not None else ""
        label = f"candidate {fit.candidate} fold {fit.fold + 1}/{folds}{rung}{probe}"
        return [console.epoch_callback(progress, label, fit.probe or epochs)]

    return callbacks


def _fit_params(plan: Plan, fit: Fit) -> dict:
    """What sets a fit apart, for its tracked run: the candidate's parameters and where it ran."""
    where = {"candidate": fit.candidate, "fold": fit.fold + 1}  # folds from 1, as on screen
    if fit.rung is not None:
        where["rung"] = fit.rung + 1
    if fit.probe is not None:
        where["probe_epochs"] = fit.probe
    candidate = next(c for c in plan.candidates if c.id == fit.candidate)
    return {**shown_params(candidate.params), **where}


def _log_fit(fit: Fit, result: FitRecord) -> None:
    if result["status"] == FitStatus.OK:
        log.info(
            "fit %s: score %.4f, %d epochs, %.1f s, %d images",
            fit.key,
            result["score"],
            result["epochs"],
            result["fit_time"],
            result["n_train"],
        )
    elif result["status"] == FitStatus.PRUNED:
        log.info("fit %s %s", fit.key, result["pruned"])
    else:
        log.warning("fit %s failed: %s", fit.key, result["error"])

"""The search loop: plan a search (the folds, the oracle), then ask the oracle which fits
run next, execute them, journal each result, and repeat until it has none; then render."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import training
from ..config.loader import ConfigError
from ..config.schema import Config, Data
from ..core import console
from ..core.vocabulary import FitResult, FitStatus
from ..data.dataset import load_checked
from ..training.folds import cv_splits
from . import pruning
from .candidates import Candidate
from .executors import execute, fit_threads
from .journal import FitJournal
from .oracles import Fit, Oracle, make_oracle, n_folds, n_splits, rung_score
from .render import write_outputs
from .structures import shown_params

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
    plan: Plan,
    run_dir: Path,
    jobs: int | None = None,
    threads: int | None = None,
    backend: str = "loky",
    tracker=None,
) -> dict:
    """Run (or finish) the search in `run_dir`, skipping fits already in its journal;
    returns the summary written by `render.write_outputs`. With backend "dask", call it
    inside `backend_context`. `tracker` (tracking.Tracker) logs each fit as it arrives."""
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


def _log_fit(fit: Fit, result: FitResult) -> None:
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

"""The search part: time to quality on a fixed subset, sklearn's RandomizedSearchCV at the
tutorial's arithmetic (in a worker) against `cnn-cifar search` (a subprocess, timed from its
fits/ journal), on the same candidates and folds."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.measure import loadavg, log
from benchmarks.settings import ROOT, TARGETS, config_path
from benchmarks.tables import fmt
from benchmarks.workers import WorkerError, ask, spawn, stop
from cnn_cifar import training
from cnn_cifar.config.loader import load_config
from cnn_cifar.core.records import FitRecord
from cnn_cifar.data.dataset import dataset, resolve_data
from cnn_cifar.search.journal import load_fits
from cnn_cifar.search.space import parse_space
from cnn_cifar.training.folds import cv_splits
from cnn_cifar.training.runtime import configure_threads


def plain_search(
    conn: Connection, config: str, sets: list[str], data_path: str, subset: int, folds: int
) -> None:
    """The tutorial's search, in a worker process: sklearn's RandomizedSearchCV(n_jobs=1)
    over CNNClassifier, with the candidates (space, n_iter, random_state) and the folds
    (training.folds.cv_splits) `cnn-cifar search` draws from the same config."""
    from sklearn.model_selection import RandomizedSearchCV

    configure_threads(None)
    cfg = load_config(config, sets)
    assert cfg.search is not None, f"{config}: no search block"
    data = resolve_data(cfg, data_path, subset)
    start = time.perf_counter()
    ds = dataset(data)
    splits = cv_splits(ds.y_train, folds, cfg.cv.test_size, cfg.cv.random_state)
    search = RandomizedSearchCV(
        training.estimator.from_config(cfg, input_shape=ds.input_shape),
        parse_space(cfg, config),
        n_iter=cfg.search.n_iter,
        cv=splits,
        scoring=cfg.search.scoring,
        random_state=cfg.search.random_state,
        refit=False,
        n_jobs=1,
        error_score="raise",
    )
    search.fit(ds.x_train, ds.y_train)
    conn.send(
        {
            "search_s": time.perf_counter() - start,
            "best_score": float(search.best_score_),
            "best_params": {
                k: (v.item() if hasattr(v, "item") else v) for k, v in search.best_params_.items()
            },
            "n_fits": len(search.cv_results_["params"]) * len(splits),
        }
    )


def _search_sets(b: dict[str, Any]) -> list[str]:
    return [f"search.n_iter={b['n_iter']}", f"search.cv={b['cv']}", f"train.epochs={b['epochs']}"]


def _run_plain_search(args: argparse.Namespace, b: dict[str, Any]) -> dict[str, Any]:
    sets = [*_search_sets(b), "train.precision=float32", "train.steps_per_execution=1"]
    start = time.perf_counter()  # process start and data loading included, as for the CLI
    proc, conn = spawn(plain_search, str(config_path("search")), sets, str(args.data), b["subset"], b["cv"])
    try:
        out = ask(proc, conn)
    except WorkerError as e:
        return {"error": str(e), "wall_s": time.perf_counter() - start}
    finally:
        stop(proc, conn)
    out["wall_s"] = time.perf_counter() - start
    return out


def _run_cli_search(args: argparse.Namespace, b: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    results = Path(tempfile.mkdtemp(prefix="bench-search-"))
    cmd = [
        str(Path(sys.executable).with_name("cnn-cifar")),
        "search",
        str(config_path("search")),
        "--data",
        str(args.data),
        "--subset",
        str(b["subset"]),
        "--results-dir",
        str(results),
    ]
    for s in _search_sets(b) + extra:
        cmd += ["--set", s]
    if args.search_jobs:
        cmd += ["--jobs", str(args.search_jobs)]
    start, epoch0 = time.perf_counter(), time.time()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env())
        wall = time.perf_counter() - start
        best = sorted(results.glob("*/best.json"))
        if proc.returncode != 0 or not best:
            return {"error": _last_line(proc.stderr or proc.stdout), "wall_s": wall, "command": " ".join(cmd)}
        record = json.loads(best[-1].read_text())
        journal = load_fits(best[-1].parent).values()
        tracking = _tracking_cost(best[-1].parent)
    finally:
        shutil.rmtree(results, ignore_errors=True)  # the run folder was only a means
    fits = [_fit_event(fit, epoch0) for fit in journal]
    out = {
        "wall_s": wall,
        "best_score": record["best_score"],
        "best_params": record["best_params"],
        "n_fits": len(fits),
        "fits": sorted(fits, key=lambda f: f["elapsed_s"]),
        "command": " ".join(cmd),
        **tracking,
    }
    failed = [fit for fit in journal if fit["status"] == "failed"]  # pruned fits are not errors
    if failed:  # the search goes on past a failed fit; the bench must not
        out["error"] = f"{len(failed)} of {len(fits)} fits failed: {failed[0].get('error', '?')}"
    return out


def _tracking_cost(run_dir: Path) -> dict[str, Any]:
    """What TensorBoard cost the search: the seconds its run spent writing event files (the
    run's own log line) and their size on disk."""
    log_text = (run_dir / "log.txt").read_text() if (run_dir / "log.txt").is_file() else ""
    spent = re.search(r"tracking: ([0-9.]+) s in all", log_text)
    files = [f for f in (run_dir / "tensorboard").rglob("*") if f.is_file()]
    return {
        "tracking_s": float(spent.group(1)) if spent else None,
        "tensorboard_bytes": sum(f.stat().st_size for f in files),
        "tensorboard_files": len(files),
    }


def _fit_event(fit: FitRecord, epoch0: float) -> dict[str, Any]:
    """What time to quality needs of a fits/ record: when it ended, seconds after the start."""
    ended = datetime.fromisoformat(fit["finished"]).timestamp() - epoch0
    return {
        "elapsed_s": round(ended, 3),
        "candidate": fit["candidate"],
        "fold": fit["fold"],
        "rung": fit.get("rung"),
        "status": fit["status"],
        "score": fit.get("score"),
        "probe": fit.get("probe"),  # racing's probe: not a fold's score
    }


def time_to_quality(fits: list[dict[str, Any]], folds: int, target: float) -> float | None:
    """Seconds until some candidate had all `folds` scores at the last rung (halving) with
    a mean >= target; None if none did."""
    last_rung = max((f["rung"] or 0 for f in fits), default=0)
    scores: dict[int, dict[int, float]] = {}
    for f in sorted(fits, key=lambda f: f["elapsed_s"]):
        if f["status"] != "ok" or (f["rung"] or 0) != last_rung or f.get("probe"):
            continue
        mine = scores.setdefault(f["candidate"], {})
        mine[f["fold"]] = f["score"]
        if len(mine) == folds and sum(mine.values()) / folds >= target - 1e-9:
            elapsed: float = f["elapsed_s"]
            return elapsed
    return None


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_search(args: argparse.Namespace, budget: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    b = dict(budget["search"])
    cfg = load_config(config_path("search"))
    assert cfg.search is not None, "configs/search.yaml: no search block"
    b["test_size"] = cfg.cv.test_size
    default = cfg.search.strategy
    out: dict[str, Any] = {"budget": b, "load_start": loadavg(), "runs": {}}
    jobs = f", --jobs {args.search_jobs}" if args.search_jobs else ""
    plan: list[tuple[str, str, list[str]]] = [
        ("plain", "RandomizedSearchCV, tutorial arithmetic", []),
        ("project", f"cnn-cifar search (default: {default}{jobs})", []),
    ]
    plan += [
        (f"project_{s}", f"cnn-cifar search, strategy {s}{jobs}", [f"search.strategy={s}"])
        for s in args.search_strategies
        if s != default
    ]
    for name, sets in args.search_variant_sets:
        extra = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
        plan.append((f"project_{name}", f"cnn-cifar search, {name}{jobs}", extra))
    for key, label, extra in plan:
        log(f"search: {label} ... (load {loadavg()})")
        r = _run_plain_search(args, b) if key == "plain" else _run_cli_search(args, b, extra)
        r["label"] = label
        out["runs"][key] = r
        log(
            f"search: {label}: {fmt(r.get('wall_s'))} s, best {fmt(r.get('best_score'), '.4f')}"
            + (f" ERROR {r['error']}" if r.get("error") else "")
        )
        if r.get("error"):
            errors.append(f"search {label}: {r['error']}")
    plain = out["runs"]["plain"]
    for key, r in out["runs"].items():
        if key != "plain" and "fits" in r and plain.get("best_score") is not None:
            target = plain["best_score"] - TARGETS["search_score_points"] / 100
            r["time_to_quality_s"] = time_to_quality(r["fits"], b["cv"], target)
    if not plain.get("error"):
        plain["time_to_quality_s"] = plain.get("wall_s")  # it answers when it ends
    out["load_end"] = loadavg()
    return out

"""The command line: the options checked and resolved into a budget, the parts run one
after the other (a failed part is recorded and the others still run), the report printed
and the JSON written (results/, or a temporary folder for --smoke)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

import benchmarks
from benchmarks import memory, reference, search, speedrun, throughput
from benchmarks.measure import loadavg, machine, versions
from benchmarks.settings import BUDGETS, DEFAULT_PARTS, MODELS, PARTS, ROOT, config_path
from benchmarks.tables import table
from benchmarks.workers import PROCESS_KEYS, quiet_tf
from cnn_cifar.config.schema import Search
from cnn_cifar.core.files import one_line, write_json
from cnn_cifar.core.vocabulary import DATA_ENV
from cnn_cifar.data.sources import DataError, detect_source, load_dataset
from cnn_cifar.training.runtime import backend

PROG = "benchmarks"  # how its one-line messages start


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`name:key=value,key=value` -> (name, {key: value}); values are YAML.
    Keys are config paths (train.precision, conv2.kernel) or PROCESS_KEYS."""
    name, _, rest = text.partition(":")
    sets: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--variant {text!r}: expected name:key=value,...")
        sets[key.strip()] = yaml.safe_load(value)
    return name, sets


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: parts, models, search strategies and the budget resolved
    (args.parts, args.models, args.search_strategies, args.budget, args.out)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(benchmarks.__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--only",
        help=f"comma-separated parts to run: {', '.join(PARTS)} "
        f"(default: {', '.join(DEFAULT_PARTS)}; --smoke: all)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller slices, fewer rounds, a smaller search")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="every part on a tiny slice in under two minutes, to prove the bench runs (CI); "
        "no verdicts, the JSON goes to a temporary folder as bench-smoke-*.json",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=os.environ.get(DATA_ENV) or None,
        help=f"CIFAR-10 source (default: ${DATA_ENV}; one of the two is required)",
    )
    p.add_argument("--models", default=",".join(MODELS), help="throughput models (config names)")
    p.add_argument("--rounds", type=int, help="alternated rounds per model (default 4, quick 2, smoke 1)")
    p.add_argument("--epochs", type=int, help="epochs per timed fit; the first is not timed (default 3)")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VAL,...",
        help="also time a project variant, e.g. f32:train.precision=float32 or t1:threads=1 "
        f"(keys: config paths, {', '.join(PROCESS_KEYS)}); speedrun: also train the port so",
    )
    p.add_argument(
        "--search-strategies",
        default="",
        metavar="S,...",
        help="also time these search strategies (search.strategy's values) besides the default",
    )
    p.add_argument(
        "--search-variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VAL,...",
        help="also time cnn-cifar search with these --set options, e.g. noprune:search.prune.rule=none",
    )
    p.add_argument(
        "--search-jobs",
        type=int,
        default=2,
        help="--jobs for cnn-cifar search (default 2: one fit per core; 0: leave it out)",
    )
    p.add_argument(
        "--seeds",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        metavar="S,...",
        help="speedrun: the seeds each side trains with (default 0,1; quick and smoke 0)",
    )
    p.add_argument(
        "--speedrun-epochs",
        type=float,
        metavar="E",
        help="speedrun: epochs for both sides (default: airbench 9.9, the port its config's 10)",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="speedrun: where airbench94 trains (cuda: float16, as published); the port trains "
        "where its Keras backend puts it (KERAS_BACKEND; TensorFlow and torch take a visible GPU)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the JSON (default: results/, with --smoke a new temporary folder)",
    )
    args = p.parse_args(argv)
    only = args.only or ",".join(PARTS if args.smoke else DEFAULT_PARTS)
    args.parts = [s.strip() for s in only.split(",") if s.strip()]
    bad = sorted(set(args.parts) - set(PARTS))
    if bad:
        p.error(f"--only: unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    args.models = [m for m in args.models.split(",") if m]
    missing = [m for m in args.models if not config_path(m).is_file()]
    if missing:
        p.error(f"--models: no configs/{missing[0]}.yaml")
    strategies = typing.get_args(Search.model_fields["strategy"].annotation)
    args.search_strategies = [x for x in args.search_strategies.split(",") if x]
    bad = sorted(set(args.search_strategies) - set(strategies))
    if bad:
        p.error(f"--search-strategies: unknown {', '.join(bad)}; choose from {', '.join(strategies)}")
    cuda = args.device == "cuda" and "speedrun" in args.parts
    if cuda and reference.available() and not reference.cuda_available():
        p.error(reference.NO_CUDA)
    try:
        args.variant_sets = [parse_variant(v) for v in args.variant]
        args.search_variant_sets = [parse_variant(v) for v in args.search_variant]
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    args.budget = json.loads(
        json.dumps(BUDGETS["smoke" if args.smoke else "quick" if args.quick else "default"])
    )
    if args.rounds:
        args.budget["rounds"] = args.rounds
    if args.epochs:
        args.budget["epochs"] = max(2, args.epochs)
    if args.data is None:  # last, so that any other mistake is named first
        p.error(f"--data: required unless {DATA_ENV} is set")
    return args


def result_path(out: Path, started: datetime, smoke: bool) -> Path:
    """Where the JSON goes: bench-<timestamp>.json, or bench-smoke-<timestamp>.json so a
    smoke run's figures are never read as a benchmark's."""
    return out / f"bench-{'smoke-' if smoke else ''}{started.strftime('%Y-%m-%d_%H-%M-%S')}.json"


def output_folder(args: argparse.Namespace) -> Path:
    """--out, else results/, else for --smoke a new temporary folder (smoke figures must not
    sit among real ones)."""
    if args.out is not None:
        return Path(args.out)
    return Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else ROOT / "results"


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    budget = args.budget
    quiet_tf()
    try:  # decode (or read from the cache) once here, before the workers all want it
        load_dataset(detect_source(str(args.data)), str(args.data))
    except DataError as e:
        print(f"{PROG}: --data: {e}", file=sys.stderr)
        return 2
    started = datetime.now()
    errors: list[str] = []
    result: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "machine": machine(),
        "versions": versions(),
        "backend": backend(),
        "load_start": loadavg(),
        "quick": args.quick,
        "smoke": args.smoke,
        "budget": budget,
        "errors": errors,
    }
    wall = time.perf_counter()
    parts = {
        "throughput": throughput.run_throughput,
        "memory": memory.run_memory,
        "search": search.run_search,
        "speedrun": speedrun.run_speedrun,
    }
    for part, run in parts.items():
        if part not in args.parts:
            continue
        try:
            figures = run(args, budget, errors)
        except Exception as e:
            traceback.print_exc()
            errors.append(f"{part}: {one_line(e)}")
            continue
        if figures is not None:
            result[part] = figures
    result["wall_s"] = time.perf_counter() - wall
    result["load_end"] = loadavg()
    text = (
        table(result) + f"\n\ntotal {result['wall_s'] / 60:.1f} min; load average at end {result['load_end']}"
    )
    print(text)
    out = output_folder(args)
    out.mkdir(parents=True, exist_ok=True)
    path = result_path(out, started, args.smoke)
    write_json(path, result, indent=1)
    print(f"wrote {path}")
    if errors:
        print(f"{PROG}: {len(errors)} part(s) failed; first: {errors[0]}", file=sys.stderr)
        return 1
    return 0

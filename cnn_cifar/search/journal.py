"""A search run folder's storage: the spec a resume starts from (search.json,
candidates.json) and the fits journal (fits/, one JSON per finished fit). Every file is
written whole or not at all (`files.write_json`), so a killed search loses only the fits
in progress."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import cast

from ..config import shapes
from ..config.loader import to_dict, validate
from ..config.schema import Config, Data
from ..core.files import CANDIDATES_FILE, FITS_DIR, RUN_FILE, SPEC_FILE, read_json, write_json
from ..core.records import FitRecord
from ..core.vocabulary import FitStatus
from .candidates import Candidate
from .errors import SearchError
from .oracles import Fit

log = logging.getLogger("cnn_cifar")

RECORD_FIELDS = ("key", "candidate", "fold", "status")  # every fit record
SCORED_FIELDS = ("score", "fit_time", "epochs", "n_train")  # and a fit that succeeded
FAILED_FIELDS = ("error",)  # or one that raised
PRUNED_FIELDS = ("pruned", "epochs")  # or one stopped within its epochs


class FitJournal:
    """fits/ of a run folder: `append` each result the moment it arrives, `load` the
    finished ones (a resume skips them)."""

    def __init__(self, run_dir: str | Path):
        self.folder = Path(run_dir) / FITS_DIR

    def create(self) -> None:
        self.folder.mkdir(exist_ok=True)

    def append(self, fit: Fit, result: FitRecord) -> None:
        write_json(self.folder / f"{fit.key}.json", result)

    def load(self) -> dict[str, FitRecord]:
        """Finished fits by key. A file that cannot be read, or is not a whole fit record,
        is skipped with a warning (its fit runs again)."""
        records = (_read_record(path) for path in sorted(self.folder.glob("*.json")))
        return {r["key"]: r for r in records if r is not None}


def load_fits(run_dir: str | Path) -> dict[str, FitRecord]:
    return FitJournal(run_dir).load()


def _read_record(path: Path) -> FitRecord | None:
    try:
        record = read_json(path)
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable fit file %s (%s)", path, e)
        return None
    if not isinstance(record, dict):
        log.warning("ignoring fit file %s: not a JSON object", path)
        return None
    status = record.get("status")
    extra = (
        SCORED_FIELDS
        if status == FitStatus.OK
        else PRUNED_FIELDS
        if status == FitStatus.PRUNED
        else FAILED_FIELDS
    )
    missing = [k for k in RECORD_FIELDS + extra if k not in record]
    if missing:
        log.warning("ignoring fit file %s: no %s", path, ", ".join(missing))
        return None
    return cast(FitRecord, record)  # the keys its status needs are there: checked above


def save_spec(run_dir: Path, cfg: Config, data: Data, source: str, candidates: list[Candidate]) -> None:
    """What --resume starts from. search.json goes last: a folder that has it has the rest."""
    FitJournal(run_dir).create()
    write_json(run_dir / CANDIDATES_FILE, [_candidate_record(c) for c in candidates])
    write_json(run_dir / SPEC_FILE, {"source": source, "config": to_dict(cfg), "data": data.model_dump()})


def _candidate_record(c: Candidate) -> dict:
    params, macs = shapes.totals(c.layers) if c.ok and c.layers is not None else (None, None)
    return {
        "candidate": c.id,
        "params": c.params,
        "status": FitStatus.OK if c.ok else FitStatus.FAILED,  # runnable or not
        "reason": c.reason,
        "n_parameters": params,
        "macs_per_image": macs,
    }


def load_spec(run_dir: str | Path) -> tuple[Config, Data, str]:
    """The config, data spec and original source of a search run folder, for --resume."""
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_FILE
    if not info_path.is_file():
        raise SearchError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    command = read_json(info_path).get("command")
    if command != "search":
        raise SearchError(
            f"{run_dir}: not a search run (its {RUN_FILE} says command {command!r}); "
            "--resume takes a folder made by cnn-cifar search"
        )
    if not (run_dir / SPEC_FILE).is_file():
        raise SearchError(
            f"{run_dir}: no {SPEC_FILE}; the search was stopped before it started, start a new one"
        )
    spec = read_json(run_dir / SPEC_FILE)
    search = spec["config"].get("search") or {}
    search.setdefault("prune", {"rule": "none"})  # a search started before pruning existed
    search["prune"].setdefault("probe", False)  # or before the probe did
    cfg = validate(spec["config"], str(run_dir / SPEC_FILE))
    return cfg, Data.model_validate(spec["data"]), spec.get("source", str(run_dir / SPEC_FILE))


def first_id(run_dir: Path) -> int:
    """The id a search's candidates count from, as its candidates.json holds them."""
    saved = read_json(run_dir / CANDIDATES_FILE)
    return int(saved[0]["candidate"]) if saved else 1


def check_candidates(run_dir: Path, candidates: list[Candidate]) -> None:
    """A resume must draw the candidates the run started with."""
    saved = [c["params"] for c in read_json(run_dir / CANDIDATES_FILE)]
    now = json.loads(json.dumps([c.params for c in candidates]))
    if saved != now:
        raise SearchError(
            f"{run_dir}: the candidates drawn now differ from {CANDIDATES_FILE} "
            "(was scikit-learn or scipy upgraded?); start a new search"
        )

"""The project's words, each defined once: how a run, a fit and a search candidate end, the
user's-mistake error every command maps to exit status 2, the
significance level, the spread of fold scores and where the data comes from.

Every other module imports these names instead of retyping their values: a status is
compared, written and read as one of these enums (a `str` enum, so it is its value in
JSON, CSV, YAML and f-strings).
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Sequence


class UserError(Exception):
    """A mistake in the user's input (config, data, options, a run folder), found before or
    while a command runs; str() is one line naming the file, field or option and what is
    allowed. The CLI prints it as `Error: <line>` and exits with status 2."""


class RunStatus(str, enum.Enum):
    """A run folder's status in run.json (`results.runs`), as `report` shows it."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM
    STALE = "stale"  # recorded running by a process that is gone (written by the next resume or report)
    UNREADABLE = "unreadable"  # run.json cannot be read (never written, only read)

    def __str__(self) -> str:
        return self.value


class FitStatus(str, enum.Enum):
    """How one fit ended: a search's fit record (fits/<key>.json), a tracked fit."""

    OK = "ok"
    FAILED = "failed"  # it raised: the record has the one-line error
    PRUNED = "pruned"  # stopped within its epochs (search.prune): no score

    def __str__(self) -> str:
        return self.value


class CandidateStatus(str, enum.Enum):
    """How a search candidate ended: a row's status in cv_results.csv, ranking.txt and the plots."""

    COMPLETED = "completed"  # every fold of its last rung scored
    FAILED = "failed"  # a fit raised (or, never expected, a fold is missing at the end)
    DROPPED = "dropped"  # racing: left the race after fewer folds
    PRUNED = "pruned"  # a fit was stopped within its epochs (search.prune)
    INVALID = "invalid"  # could not run at all, found before training (shapes, config)

    def __str__(self) -> str:
        return self.value


# The significance level of every verdict (compare, the search's ranking, the intervals at
# 1 - ALPHA); compare --alpha changes it for one comparison.
ALPHA = 0.05
CONFIDENCE = 1 - ALPHA


def fold_spread(scores: Sequence[float]) -> float:
    """The spread of a model's fold scores, as everywhere in the project: one standard
    deviation over the folds (ddof 0, as scikit-learn's std_test_score); NaN with fewer
    than two folds, which have no spread."""
    if len(scores) < 2:
        return math.nan
    mean = sum(scores) / len(scores)
    return math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))


DATA_ENV = "CNN_CIFAR_DATA"


def data_path(given: str | None) -> tuple[str | None, str | None]:
    """Where the data comes from: --data beats $CNN_CIFAR_DATA beats the config (None).
    Returns (path, the option or variable that gave it)."""
    if given:
        return given, "--data"
    env = os.environ.get(DATA_ENV)
    return (env, DATA_ENV) if env else (None, None)

"""The records of a fit that cross package lines, typed so mypy checks every reader and
writer: what one fit returns (`FitResult`) and what a search journals of a fit (`FitRecord`).

They are TypedDicts, not classes: a fit result travels back from worker processes and dask
workers as a plain dict, and a journal record is its JSON file (fits/<key>.json) as it is
on disk, so the files written before these types load unchanged.
"""

from __future__ import annotations

from typing import TypedDict

from .vocabulary import FitStatus


class _FitResultKeys(TypedDict):
    """What every scored fit has."""

    score: float  # on the fold's (or evaluate's test set's) rows
    fit_time: float  # seconds
    epochs: int  # epochs trained
    n_train: int  # training images
    history: dict[str, list[float]]  # Keras' per-epoch logs


class FitResult(_FitResultKeys, total=False):
    """What one fit that scored returns: `training.folds.fit_one` (on a fold, every key) or
    evaluate's one fit as its tracker logs it (`tracking.evaluated`: no scoring time)."""

    score_time: float  # seconds
    n_test: int


class _FitRecordKeys(TypedDict):
    """The keys every journaled fit has, however it ended (the journal refuses a file
    without them: `search.journal.RECORD_FIELDS`)."""

    key: str  # c003_f1, r0_c003_f1 (halving rung), p3_c003_f0 (racing's probe)
    candidate: int  # from 0 in files; shown from 1
    fold: int
    status: FitStatus


class FitRecord(_FitRecordKeys, total=False):
    """A search's record of one fit (fits/<key>.json): the fit's result where it scored,
    the reason where it failed or was pruned. The journal checks, on reading, the keys each
    status needs (`search.journal`)."""

    rung: int | None  # halving's rung from 0; None for the other strategies
    finished: str  # ISO time
    score: float  # absent when pruned or failed
    fit_time: float
    score_time: float
    epochs: int
    n_train: int
    n_test: int
    history: dict[str, list[float]]
    probe: int  # racing's probe: its epochs
    error: str  # why it failed
    pruned: str  # why it was pruned

"""What a finished search hands back: its summary (`SearchSummary`) and its winner
(`BestCandidate`, written as best.json). Typed records, so every reader is checked by mypy
rather than reading keys of a dict written three packages away."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BestCandidate:
    """The best completed candidate: what `evaluate --best` trains, and best.json's content."""

    candidate: int  # its id, as every output shows it
    params: dict[str, Any]  # its drawn parameters, as sampled (search.space names)
    score: float  # mean over its folds
    std: float  # one standard deviation over its folds (NaN with one fold)
    ci: list[float] | None  # 95% corrected resampled t interval of the mean; None with one fold
    scoring: str
    strategy: str
    config: dict[str, Any]  # its full config, named <search>_best, without the search block
    data: dict[str, Any]  # the data it was searched on

    def to_json(self) -> dict[str, Any]:
        """best.json's keys, in the order the file has always had them."""
        return {
            "best_params": self.params,
            "best_score": self.score,
            "best_std": self.std,
            "best_ci": self.ci,
            "best_candidate": self.candidate,
            "scoring": self.scoring,
            "strategy": self.strategy,
            "config": self.config,
            "data": self.data,
        }


@dataclass(frozen=True)
class SearchSummary:
    """A finished search: its ranking, its winner (None when no candidate completed) and how
    many fits its journal holds; the files it wrote are in `run_dir`."""

    run_dir: Path
    rows: list[dict[str, Any]]  # one per candidate: cv_results.csv's facts
    ranking: str  # ranking.txt's text
    ranking_screen: list[Any]  # the same ranking as a table, for a terminal (`console.show`)
    best: BestCandidate | None
    n_fits: int

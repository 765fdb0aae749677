"""The interface a command's tracking satisfies (`Tracker`), what it reads of a run
(`TrackedRun`) and the tracker that tracks nothing (`NoTracking`): `results.runs.Run`,
`commands.cv` and the search's loop drive a tracker through it and `tracking` implements
it, so neither side imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .records import FitRecord, FitResult


class TrackedRun(Protocol):
    """What a tracker reads of a command's run (`results.runs.Run` has it)."""

    @property
    def dir(self) -> Path: ...
    @property
    def command(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def config_yaml(self) -> str: ...
    @property
    def overrides(self) -> Sequence[str]: ...
    @property
    def resume(self) -> str | Path | None: ...


class Tracker(Protocol):
    """Tracking besides the run folder, as a run drives it: `start` when the run folder
    exists, `log_fit` as each fit's result arrives (a cv fold, a search fit, evaluate's one
    fit), `finish` once the outcome is recorded. None of them raises: a tracking failure is
    a warning, never a lost run. `tracking.RunTracker` satisfies it, and `NoTracking` for a
    run that tracks nothing."""

    def start(self, run: TrackedRun) -> None: ...

    def log_fit(self, name: str, params: Mapping[str, Any], result: FitResult | FitRecord) -> None: ...

    def finish(self, run: TrackedRun, status: str) -> None: ...


class NoTracking:
    """The tracker of a run that tracks nothing besides its folder: a library call or a
    test that gives none, so a run never asks whether it has one."""

    def start(self, run: TrackedRun) -> None:
        pass

    def log_fit(self, name: str, params: Mapping[str, Any], result: FitResult | FitRecord) -> None:
        pass

    def finish(self, run: TrackedRun, status: str) -> None:
        pass

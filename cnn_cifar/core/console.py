"""Terminal output: progress (fits or folds done, elapsed, ETA, the score so far, the current
fit's epochs) and tables. On a terminal, `rich` draws a live progress bar and boxed
tables; piped (a log, CI, `| cat`, a test capturing output) the same facts come as plain
lines: one progress line per event, tables as aligned columns without borders.

Progress goes to stderr and tables to stdout, each stream judged on its own, so
`cnn-cifar cv ... | cat` keeps the bar on screen and pipes plain tables."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

PLAIN_WIDTH = 10_000  # piped tables are never wrapped


def stdout() -> Console:
    """A console on the current sys.stdout (looked up at each write, as click's test
    runner swaps it); `is_terminal` decides rich or plain."""
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def fmt_seconds(s: float | None) -> str:
    """`1h02m03s`, `4m15s`, `9s`; `?` when unknown."""
    if s is None:
        return "?"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


# --------------------------------------------------------------------------- tables


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()) -> Table:
    """A table of text cells; the columns named in `right` are right-aligned (numbers)."""
    t = Table(header_style="bold")
    for h in headers:  # a narrow terminal wraps cells, never cuts them
        t.add_column(h, justify="right" if h in right else "left", overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


def show(*items: RenderableType | str, console: Console | None = None) -> None:
    """Print tables and lines to stdout: rich on a terminal; plain text otherwise (tables
    without borders or colour, never wrapped, no trailing spaces)."""
    console = console or stdout()
    if console.is_terminal:
        for item in items:
            console.print(Text(item) if isinstance(item, str) else item)
        return
    console.file.write("".join(plain(item) + "\n" for item in items))
    console.file.flush()


def plain(item: RenderableType | str) -> str:
    """`item` as plain text: a table's columns aligned with two spaces, no borders."""
    if isinstance(item, str):
        return item
    if isinstance(item, Table):
        item.box, item.pad_edge, item.header_style = None, False, ""
    buf = io.StringIO()
    Console(file=buf, width=PLAIN_WIDTH, color_system=None, force_terminal=False, highlight=False).print(item)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())


# --------------------------------------------------------------------------- progress


class FitProgress:
    """`total` units (fits or folds): `advance` after each, `epoch` after each epoch of the
    current fit. ETA from the mean time per unit finished in this process (a resumed
    search starts at `done`). `stat`: the score shown, "best" (a search's best candidate
    mean so far) or "mean" (cross-validation: the mean of the folds so far)."""

    def __init__(
        self,
        total: int,
        label: str,
        stat: str = "best",
        done: int = 0,
        live: Progress | None = None,
        out: IO[str] | None = None,
    ):
        """`live`: the rich display to draw in; without it, plain lines to `out` (stderr)."""
        self.total, self.label, self.stat, self.done = total, label, stat, done
        self.unit = label  # what is counted; `label` may add why the total changed
        self.start, self.counted = time.perf_counter(), 0
        self.scores: list[float] = []
        self.detail, self.fraction = "", 0.0
        self.live, self.out = live, out
        if live is not None:
            self.task = live.add_task(label, total=total, completed=done, eta=None, score="", info="")
            self.fit = live.add_task("", total=1, visible=False, eta="", score="", info="")

    def advance(self, score: float | None = None) -> None:
        self.done += 1
        self.counted += 1
        if score is not None:
            self.scores.append(score)
        self.detail, self.fraction = "", 0.0
        self._show()

    def set_total(self, total: int, why: str = "") -> None:
        """A new total (racing's shrinks as candidates leave the race), and `why`, shown
        beside the label, so the count never changes without a word."""
        self.total = total
        self.label = self.unit + (f" ({why})" if why else "")
        if self.live is not None:
            self.live.update(self.task, total=total, description=self.label)

    def fit_started(self, prefix: str, epochs: int) -> None:
        if self.live is not None:
            self.live.reset(
                self.fit, total=epochs, description=f"{prefix} epoch", visible=True, eta="", score="", info=""
            )

    def epoch(self, prefix: str, epoch: int, epochs: int, logs: dict) -> None:
        """`epoch` of `epochs` (from 1) ended with Keras' `logs`."""
        stats = " ".join(
            f"{k} {logs[k]:.3f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs
        )
        self.detail, self.fraction = f"{prefix} epoch {epoch}/{epochs} {stats}", epoch / epochs
        if self.live is not None:
            room = self.live.console.width - FIXED
            info = stats if len(stats) <= room else stats[: max(0, room - 1)] + "…" * (room > 0)
            self.live.update(self.fit, completed=epoch, info=info)
        self._show()

    def eta(self) -> float | None:
        units = self.counted + self.fraction
        if not units:
            return None
        return (time.perf_counter() - self.start) / units * max(0.0, self.total - self.done - self.fraction)

    def score(self) -> str:
        if self.stat == "mean" and self.scores:
            return f"mean {sum(self.scores) / len(self.scores):.4f}"
        if self.stat == "best" and self.scores:
            return f"best {max(self.scores):.4f}"
        return ""

    def line(self) -> str:
        parts = [
            f"{self.label} {self.done}/{self.total}",
            f"elapsed {fmt_seconds(time.perf_counter() - self.start)}",
            f"ETA {fmt_seconds(self.eta())}",
            self.score(),
            self.detail,
        ]
        return " | ".join(p for p in parts if p)

    def _show(self) -> None:
        if self.live is None:
            out = self.out or sys.stderr
            out.write(self.line() + "\n")
            out.flush()
            return
        eta = self.eta()
        self.live.update(
            self.task,
            completed=self.done + self.fraction,
            eta=None if eta is None else time.perf_counter() + eta,
            score=self.score(),
        )
        if not self.detail:
            self.live.update(self.fit, visible=False)


LABEL, BAR = 28, 12  # columns of the live display's label and bar
FIXED = LABEL + BAR + 7 + 7 + 10 + 6  # and of counts (99/99), elapsed, ETA and the gaps


class _Eta(ProgressColumn):
    """`ETA 4m15s`, counting down from the progress's last estimate."""

    def render(self, task) -> Text:
        at = task.fields.get("eta")
        if at == "":
            return Text("")
        left = None if at is None else max(0.0, at - time.perf_counter())
        return Text(f"ETA {fmt_seconds(left)}", style="progress.remaining")


@contextlib.contextmanager
def progress(
    total: int, label: str, stat: str = "best", done: int = 0, console: Console | None = None
) -> Iterator[FitProgress]:
    """A `FitProgress`: a live rich bar when stderr (or `console`) is a terminal, plain lines
    on stderr otherwise."""
    console = console or stderr()
    if not console.is_terminal:
        yield FitProgress(total, label, stat, done, out=console.file)
        return
    # On a narrow terminal the label and the epoch's figures give way (cut with an
    # ellipsis: `FitProgress.epoch` cuts the figures to the room left), never the bar, the
    # counts or the times.
    columns = (
        TextColumn(
            "{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=LABEL)
        ),
        BarColumn(bar_width=BAR),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        _Eta(),
        TextColumn("{task.fields[score]}{task.fields[info]}", table_column=Column(no_wrap=True)),
    )
    # stderr writes (warnings, the data line) go above the bar; stdout stays its own stream
    with Progress(*columns, console=console, redirect_stdout=False) as live:
        yield FitProgress(total, label, stat, done, live)


def epoch_callback(progress: FitProgress, prefix: str, epochs: int):
    """A Keras callback that reports each epoch of one fit to `progress`."""
    import keras  # not at import: the CLI and workers start without it

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            progress.fit_started(prefix, epochs)

        def on_epoch_end(self, epoch, logs=None):
            progress.epoch(prefix, epoch + 1, epochs, logs or {})

    return EpochProgress()

"""Terminal progress: units done / total, elapsed, ETA, and a Keras callback for epochs.

On a terminal the line redraws in place; in a log or CI it prints one line per event."""

from __future__ import annotations

import sys
import time

import keras


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


class Progress:
    """`total` units (fits); `update` after each; ETA from the mean time per unit so far."""

    def __init__(self, total: int, label: str = "fits", stream=None, done: int = 0, stat: str = "best"):
        """`stat`: what the line shows of the scores reported so far, "best" (a search's
        best candidate mean) or "mean" (cross-validation's folds)."""
        self.total, self.label, self.done, self.stat = total, label, done, stat
        self.scores: list[float] = []
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.start = time.perf_counter()
        self.counted = 0  # units finished in this process (for the ETA)
        self.best: float | None = None
        self.detail = ""

    def eta(self, fraction_of_current: float = 0.0) -> float | None:
        if not self.counted + fraction_of_current:
            return None
        per_unit = (time.perf_counter() - self.start) / (self.counted + fraction_of_current)
        return per_unit * max(0.0, self.total - self.done - fraction_of_current)

    def line(self, fraction: float = 0.0) -> str:
        elapsed = time.perf_counter() - self.start
        parts = [
            f"{self.label} {self.done}/{self.total}",
            f"elapsed {fmt_seconds(elapsed)}",
            f"ETA {fmt_seconds(self.eta(fraction))}",
        ]
        if self.stat == "mean" and self.scores:
            parts.append(f"mean {sum(self.scores) / len(self.scores):.4f}")
        elif self.stat == "best" and self.best is not None:
            parts.append(f"best {self.best:.4f}")
        if self.detail:
            parts.append(self.detail)
        return " | ".join(parts)

    def show(self, fraction: float = 0.0, final: bool = False) -> None:
        text = self.line(fraction)
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, n: int = 1, score: float | None = None, higher_is_better: bool = True) -> None:
        self.done += n
        self.counted += n
        if score is not None:
            self.scores.append(score)
        if score is not None and (self.best is None or (score > self.best) == higher_is_better):
            self.best = score
        self.detail = ""
        self.show(final=True)


class EpochProgress(keras.callbacks.Callback):
    """Shows `fold i/k epoch e/E loss .. val_acc ..` inside a Progress line."""

    def __init__(self, progress: Progress, prefix: str, epochs: int):
        super().__init__()
        self.progress, self.prefix, self.epochs = progress, prefix, epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        stats = " ".join(
            f"{k} {logs[k]:.3f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs
        )
        self.progress.detail = f"{self.prefix} epoch {epoch + 1}/{self.epochs} {stats}"
        self.progress.show(fraction=(epoch + 1) / self.epochs)

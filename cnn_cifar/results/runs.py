"""Run folders and the one run lifecycle every command goes through.

`with Run(...) as run:` makes the folder `results/<date>_<time>_<command>_<name>/`, writes
run.json (status running, pid and host), config.yaml, overrides.txt and log.txt, and on
the way out records the outcome in run.json:

    finished      the block ended normally
    failed        it raised: the one-line error in run.json, the traceback in log.txt
    interrupted   Ctrl-C or SIGTERM (timeout, a CI cancel, a cluster scheduler)

A process killed with SIGKILL cannot write anything; `run_record.status()` reads such a
run as `stale` once its recorded process is gone, never as `running`, and the next command
that touches the folder (a resume, `report`) writes it so (`run_record.close_stale`):

    stale         its process is gone without a word: `last_seen` is the newest file it
                  left, and the time up to then is counted into `wall_time_s`

and removes what the killed process left (`.reserve`, half-written temporary files). A
resumed run (search --resume) moves the outcome of the leg that stopped into
`earlier_outcomes`, oldest first; a stale leg's entry also has its `started` and `pid`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..core.files import (
    CONFIG_FILE,
    LOG_FILE,
    OVERRIDES_FILE,
    RESERVE_FILE,
    RUN_FILE,
    one_line,
    read_json,
    write_json,
    write_text,
)
from ..core.tracking import NoTracking, Tracker
from ..core.vocabulary import RunStatus
from .run_record import leg_started, lock_run, pid_started, remove_leftovers, stale_fields, update_run

log = logging.getLogger("cnn_cifar")
OUTCOME_FIELDS = ("status", "ended", "error", "signal", "last_seen")  # how a leg of a run ended
RESERVE_BYTES = 256 * 1024  # run.json and the last log lines take a few KB


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it unwinds as Ctrl-C does (joblib stops its
    workers on a KeyboardInterrupt) and the run is recorded interrupted."""


class Run:
    """One command's run folder, from its start to its recorded outcome.

    `config_yaml` and `overrides` are written at the start; `resume` reopens an existing
    run folder (search --resume) instead of making one; `hint` is printed when the run
    stops early (e.g. the resume command). Fields given to `record()` are written with
    the outcome."""

    def __init__(
        self,
        results_dir,
        command: str,
        name: str,
        config_yaml: str = "",
        overrides: Sequence[str] = (),
        resume: str | Path | None = None,
        hint: str | None = None,
        tracker: Tracker | None = None,
    ):
        self.results_dir, self.command, self.name = results_dir, command, name
        self.config_yaml, self.overrides = config_yaml, list(overrides)
        self.resume, self.hint = resume, hint
        self.tracker: Tracker = tracker or NoTracking()  # TensorBoard and MLflow besides the folder
        self._dir: Path | None = None
        self.fields: dict = {}

    @property
    def dir(self) -> Path:
        """The run folder; it exists from the start of the `with` block on."""
        if self._dir is None:
            raise RuntimeError("the run folder exists once the run has started (with Run(...) as run)")
        return self._dir

    def record(self, **fields) -> None:
        self.fields.update(fields)

    def __enter__(self) -> Run:
        info: dict[str, Any]
        if self.resume is None:
            self._dir = new_folder(self.results_dir, self.command, self.name)
            info = {
                "command": self.command,
                "name": self.name,
                "argv": list(sys.argv),
                "started": _now(),
                "machine": machine_info(),
            }
        else:
            self._dir = Path(self.resume)
        self._lock = lock_run(self.dir)  # one writer per folder: a second --resume stops here
        if self.resume is not None:
            info = read_json(self.dir / RUN_FILE)
            if info.get("status") == RunStatus.RUNNING:  # we hold the lock: its writer is gone
                info.update(stale_fields(self.dir, info))  # before its leftovers go, their times with them
            remove_leftovers(self.dir)
            # the leg that stopped: its outcome moves to the list, so this leg's is the only
            # status, error or signal at the top (a finished resume says nothing of an error)
            ended = {k: info.pop(k) for k in OUTCOME_FIELDS if k in info}
            if ended.get("status") == RunStatus.STALE:  # it never wrote its end: when it ran, who
                seen = {"last_seen": ended.pop("last_seen")} if "last_seen" in ended else {}
                ended.update(started=leg_started(info), **seen, pid=info.get("pid"))
            info["earlier_outcomes"] = [*info.get("earlier_outcomes", []), ended]
            info["resumed"] = _now()
        self._previous_s = float(info.get("wall_time_s") or 0.0)  # earlier legs of a resume
        info.update(
            status=RunStatus.RUNNING, pid=os.getpid(), host=platform.node(), pid_started=pid_started()
        )
        self._start = time.time()
        try:
            write_json(self.dir / RUN_FILE, info)
            # room to record the outcome on a disk that fills during the run: freed first thing
            # in __exit__, so run.json can still say `failed` (and why) when nothing else fits
            (self.dir / RESERVE_FILE).write_bytes(bytes(RESERVE_BYTES))
            if self.resume is None:
                write_text(self.dir / CONFIG_FILE, self.config_yaml)
                write_text(self.dir / OVERRIDES_FILE, "".join(f"{o}\n" for o in self.overrides))
            self._log = attach_log(self.dir)
        except OSError as e:  # a full disk, say: record it if the disk still lets us
            with contextlib.suppress(OSError):  # an unwritable folder keeps it: the next touch removes it
                (self.dir / RESERVE_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                update_run(self.dir, status=RunStatus.FAILED, error=one_line(e), ended=_now())
            os.close(self._lock)
            raise
        self._sigterm = _catch_sigterm()
        self.tracker.start(self)  # never raises: a tracking failure is a warning
        return self

    def __exit__(self, kind, error, tb) -> None:
        # a folder made unwritable during the run keeps the file (a resume or report removes
        # it later); the outcome must still be recorded, and the run's own error kept
        with contextlib.suppress(OSError):
            (self.dir / RESERVE_FILE).unlink(missing_ok=True)
        _restore_sigterm(self._sigterm)
        fields = {"ended": _now(), "wall_time_s": round(self._previous_s + time.time() - self._start, 1)}
        if error is None:
            status = RunStatus.FINISHED
            fields.update(status=status, **self.fields)
        elif isinstance(error, KeyboardInterrupt):
            status = RunStatus.INTERRUPTED
            signal_name = "SIGTERM" if isinstance(error, Terminated) else "SIGINT"
            fields.update(status=status, signal=signal_name, **self.fields)
            log.warning("interrupted by %s", signal_name)
        else:
            status = RunStatus.FAILED
            fields.update(status=status, error=one_line(error), **self.fields)
            with contextlib.suppress(AttributeError):  # for the CLI's one-line message
                error.run_log = self.dir / LOG_FILE
            log.error("failed: %s\n%s", one_line(error), "".join(traceback.format_exception(kind, error, tb)))
        unrecorded, e_no = None, None
        try:
            update_run(self.dir, **fields)
        except OSError as e:  # a read-only disk, the folder gone: say so, keep the first error
            e_no = e.errno
            unrecorded = (
                f"the outcome ({status}) could not be recorded in {self.dir / RUN_FILE}: "
                f"{e.strerror or one_line(e)}; report reads the run as stale once this process is gone"
            )
            log.error(unrecorded)
        finally:
            self.tracker.finish(self, status)
            detach_log(self._log)
            os.close(self._lock)  # unlocks the folder
        if error is not None and self.hint:
            print(self.hint, file=sys.stderr)
        if unrecorded is not None:
            if error is None:  # the work is done but its record is not: not a success
                raise RunNotRecorded(e_no, unrecorded)
            with contextlib.suppress(AttributeError):  # the CLI adds it to the error's one line
                error.unrecorded = unrecorded
        if isinstance(error, Terminated) and callable(self._sigterm):
            # a program that runs this one in its process (a test runner, a user's script)
            # hears of the SIGTERM too, once the run is recorded: its own handler may stop it
            self._sigterm(signal.SIGTERM, None)


class RunNotRecorded(OSError):
    """A run whose outcome could not be written into its run.json (the message says why)."""


def new_folder(results_dir: str | Path, command: str, name: str) -> Path:
    """A fresh, uniquely named run folder."""
    root = Path(results_dir)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}_{command}_{name}"
    for i in range(1, 1000):
        folder = root / (base if i == 1 else f"{base}-{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{root}: no free run folder name for {base}")


def machine_info() -> dict:
    info = {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    for package in ("cnn-cifar", "keras", "tensorflow", "scikit-learn", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            info[package] = version(package)
    info["backend"] = os.environ.get("KERAS_BACKEND", "tensorflow")
    return info


def list_runs(results_dir: str | Path, command: str | None = None) -> list[Path]:
    """Run folders (oldest first), optionally of one command; unreadable ones only when
    no command is asked for (report lists them as unreadable)."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(root.iterdir()):
        if not (folder / RUN_FILE).is_file():
            continue
        if command is None:
            runs.append(folder)
            continue
        try:
            info = read_json(folder / RUN_FILE)
        except (OSError, ValueError):
            info = None
        if not isinstance(info, dict):
            log.warning("skipping %s: unreadable %s", folder, RUN_FILE)
        elif info.get("command") == command:
            runs.append(folder)
    return runs


def attach_log(folder: str | Path) -> logging.Handler:
    """Send the package's log records to `<run>/log.txt` for the rest of the run. A process
    logs into one run at a time: an earlier run's file handler is closed first."""
    logger = logging.getLogger("cnn_cifar")
    for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        detach_log(old)
    handler = _LogFile(Path(folder) / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


class _LogFile(logging.FileHandler):
    """log.txt, best effort: a record that cannot be written (a full disk) is dropped
    without logging's own traceback on stderr; the outcome still reaches run.json."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def detach_log(handler: logging.Handler) -> None:
    logging.getLogger("cnn_cifar").removeHandler(handler)
    handler.close()


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def _catch_sigterm():
    def handler(signum, frame):
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_sigterm(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)

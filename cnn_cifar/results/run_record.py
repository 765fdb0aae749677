"""A run folder's record, apart from the lifecycle that writes it (`runs.Run`): run.json
read (`RunRecord`, `read_record`) and updated (`update_run`), a run's status as its
process's life tells it (`status`: a run whose process is gone is stale), the folder's
one-writer lock (`lock_run`), and what the next command that touches the folder (a
resume, `report`) writes of a run killed without a word (`close_stale`: stale, its
`last_seen` and known time) and removes of what it left (`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..core.files import (
    LOCK_FILE,
    RESERVE_FILE,
    RUN_FILE,
    overwrite_json,
    read_json,
    remove_temporaries,
    write_json,
)
from ..core.vocabulary import RunStatus, UserError


class RunInUse(UserError):
    """Another live process holds the run folder (a second `search --resume` of it)."""


def lock_run(folder: Path) -> int:
    """Lock `folder` for this process and return the lock file's descriptor (closing it, or
    the process ending in any way, SIGKILL included, unlocks it). Raises RunInUse, naming
    the holder's pid and host, if another process holds it."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunInUse(
            f"{folder}: in use by {holder}; a run folder has one writer at a time "
            "(wait for that process to end, or stop it, then resume)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {platform.node()}".encode())
    return fd


def check_free(folder: Path) -> None:
    """RunInUse now, before anything slow, if another process holds `folder`."""
    os.close(lock_run(folder))


def update_run(folder: str | Path, **fields) -> None:
    """Add `fields` to a run folder's run.json (rewritten whole, atomically; in place where
    the folder refuses the temporary file but the file itself may still be written)."""
    path = Path(folder) / RUN_FILE
    info: dict[str, Any] = read_json(path)
    info.update(fields)
    try:
        write_json(path, info)
    except PermissionError:  # a folder made read-only during the run (chmod): run.json is ours
        overwrite_json(path, info)


def stale_fields(folder: str | Path, info: dict) -> dict:
    """What to record of a leg whose process vanished without a word (SIGKILL, a power cut):
    `stale`, the newest time a file of the folder was written (`last_seen`), and the leg's
    time up to then added to `wall_time_s` (the earlier legs' time when it began)."""
    seen = last_written(folder)
    fields: dict[str, Any] = {"status": RunStatus.STALE}
    if seen is None:
        return fields
    fields["last_seen"] = datetime.fromtimestamp(seen).isoformat(timespec="seconds")
    started = leg_started(info)
    with contextlib.suppress(TypeError, ValueError):  # a start of an odd form: time unknown
        leg = max(0.0, seen - datetime.fromisoformat(str(started)).timestamp())
        fields["wall_time_s"] = round(float(info.get("wall_time_s") or 0.0) + leg, 1)
    return fields


def last_written(folder: str | Path) -> float | None:
    """The newest modification time of the files in a run folder, at any depth (log.txt,
    fits/, TensorBoard's events), or None if none can be read. `.lock` is left out: taking
    the lock writes it."""
    newest = None
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if name == LOCK_FILE and root == str(folder):
                continue
            with contextlib.suppress(OSError):
                mtime = os.stat(os.path.join(root, name)).st_mtime
                newest = mtime if newest is None else max(newest, mtime)
    return newest


def _leftovers(folder: Path) -> bool:
    """Whether `remove_leftovers` would find anything (False for a folder it cannot read)."""
    try:
        subfolders = [p for p in folder.iterdir() if p.is_dir()]
        return (folder / RESERVE_FILE).exists() or any(
            next(f.glob(".*.tmp*"), None) is not None for f in (folder, *subfolders)
        )
    except OSError:
        return False


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Remove what a killed or failed leg left in a run folder: `.reserve` and half-written
    temporary files, in the folder and its subfolders. Only for a folder whose lock is held
    or free (no live writer); what cannot be removed stays."""
    folder = Path(folder)
    removed = []
    with contextlib.suppress(OSError):
        (folder / RESERVE_FILE).unlink()
        removed.append(folder / RESERVE_FILE)
    for sub in (folder, *(p for p in folder.iterdir() if p.is_dir())):
        with contextlib.suppress(OSError):
            removed += remove_temporaries(sub)
    return removed


def close_stale(folder: str | Path) -> tuple[dict, list[Path]] | None:
    """Tidy a run folder no process writes: a run whose process is gone (`status()` says
    stale) is written down as stale, with its known time (`stale_fields`), and what a killed
    or stopped leg left is removed (`remove_leftovers`). Only where the folder's lock can be
    taken, and never for a run that may still be going. Returns (the fields recorded, the
    files removed), or None where nothing was to be done or could be."""
    record = read_record(folder)
    if record is None or status(record) == RunStatus.RUNNING:
        return None
    if record.status != RunStatus.RUNNING and not _leftovers(Path(folder)):
        return None  # nothing to do: the folder is not touched (not even its lock file)
    try:
        lock = lock_run(Path(folder))
    except (RunInUse, OSError):  # resumed meanwhile, or a folder we may not write
        return None
    try:
        info = read_json(Path(folder) / RUN_FILE)
        fields = {}
        if isinstance(info, dict) and info.get("status") == RunStatus.RUNNING:
            fields = stale_fields(folder, info)
            update_run(folder, **fields)
        removed = remove_leftovers(folder)
        return (fields, removed) if fields or removed else None
    except (OSError, ValueError):  # a read-only folder: report still reads it as stale
        return None
    finally:
        os.close(lock)


class RunRecord(BaseModel):
    """run.json as its readers take it: the fields they use, typed (a wrong type is an
    unreadable record, never a crash); the other fields pass through."""

    model_config = ConfigDict(extra="allow")
    command: str
    name: str = ""
    status: RunStatus
    started: str = ""
    wall_time_s: float | None = None
    pid: int | None = None
    host: str | None = None
    pid_started: int | None = None


def read_record(folder: str | Path) -> RunRecord | None:
    """A run folder's run.json, checked; None if it is missing, not JSON or of the wrong shape."""
    try:
        return RunRecord.model_validate(read_json(Path(folder) / RUN_FILE))
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def status(record: RunRecord) -> RunStatus:
    """The run's status as recorded, except that a run whose process is gone is `stale`."""
    if record.status != RunStatus.RUNNING or record.host != platform.node() or record.pid is None:
        return record.status
    alive = pid_started(record.pid)
    started = record.pid_started if record.pid_started is not None else alive
    return RunStatus.RUNNING if alive is not None and alive == started else RunStatus.STALE


def leg_started(info: dict) -> str | None:
    """When the last leg of a run began: its resume, else the run's start."""
    return info.get("resumed") or info.get("started")


def pid_started(pid: int | None = None) -> int | None:
    """When process `pid` (default: this one) started, in clock ticks since boot (field 22
    of /proc/PID/stat), so a reused pid is not taken for the run's; None if it is gone, a
    zombie included (it has ended; only its parent has not read its exit status yet).
    Without /proc: 0 for any live process."""
    pid = pid or os.getpid()
    if os.path.isdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return None if fields[0] in ("Z", "X") else int(fields[19])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, IndexError):
            pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0

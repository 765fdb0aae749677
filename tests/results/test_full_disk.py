"""A disk that fills during a search, for real: a small tmpfs mounted for the test (root
only; skipped where this machine cannot mount one). The run ends `failed` with the reason
in run.json, leaves no half-written file or folder, and resumes once there is room."""

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import cli_command, wait_for_first_fit, write_config, write_npz

SEARCH = {
    "strategy": "random",
    "n_iter": 3,
    "random_state": 1,
    "space": {"conv1__filters": [2, 4, 8], "hidden__units": [4, 8, 16]},
}


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def test_a_disk_that_fills_during_a_search_records_failed_and_resumes(tmp_path, small_disk):
    config = write_config(tmp_path / "c.yaml", write_npz(tmp_path / "tiny.npz"), search=SEARCH)
    results = small_disk / "results"
    cmd = cli_command()
    env = {**os.environ, "CNN_CIFAR_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [*cmd, "search", str(config), "--results-dir", str(results)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_first_fit(proc, results)
    filler = fill(small_disk)
    _, stderr = proc.communicate(timeout=300)

    (run,) = results.iterdir()
    record = json.loads((run / "run.json").read_text())
    assert proc.returncode == 1, stderr[-3000:]
    assert record["status"] == "failed" and "No space left on device" in record["error"]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: ") and "No space left on device" in stderr
    assert not list(run.rglob(".*.tmp*"))  # no half-written file or TensorBoard folder
    assert not (run / ".reserve").exists()

    filler.unlink()
    done = subprocess.run([*cmd, "search", "--resume", str(run)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and "error" not in record
    assert record["earlier_outcomes"][-1]["status"] == "failed"
    assert len(list((run / "fits").glob("*.json"))) == 6

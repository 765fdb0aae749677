"""Tracking with the real parts: TensorBoard's own event reader (HParams plugin data
included), a real sqlite MLflow store read back with MlflowClient, and a real `mlflow
server` read back over its REST API. Tiny generated data, one or two epochs."""

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import invoke, write_config, write_npz

from cnn_cifar.config.schema import Track
from cnn_cifar.results.runs import Run
from cnn_cifar.tracking import RunTracker
from cnn_cifar.tracking.mlflow_runs import config_params

SEARCH_BLOCK = {
    "strategy": "random",
    "n_iter": 2,
    "space": {"conv1__filters": [2, 4], "train__optimizer__learning_rate": {"loguniform": [0.001, 0.1]}},
}


def cv_args(config, results) -> list[str]:
    return ["cv", str(config), "--results-dir", str(results), "--set", "train.epochs=1"]


def only_run(results: Path) -> Path:
    (run,) = [p for p in results.iterdir() if (p / "run.json").is_file()]
    return run


def events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag: str) -> list[tuple[int, float]]:
    import tensorflow as tf

    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def hparams_of(folder: Path) -> dict:
    """The fit's HParams session as TensorBoard's plugin reads it."""
    from tensorboard.plugins.hparams import metadata

    content = events(folder).PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = metadata.parse_session_start_info_plugin_data(content)
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def hparams_experiment(folder: Path):
    """The HParams experiment (the table's columns) as TensorBoard's plugin reads it."""
    from tensorboard.plugins.hparams import metadata

    content = events(folder).PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    return metadata.parse_experiment_plugin_data(content)


# --------------------------------------------------------------------------- a tracked search

MLFLOW_MISSING = "the mlflow extra is not installed: pip install -e '.[mlflow]'"


@pytest.fixture(scope="module")
def tracked_search(tmp_path_factory):
    """One tiny search (2 candidates x 2 folds, 2 epochs), tracked both ways when MLflow is
    installed (TensorBoard alone otherwise); the tests below read it back."""
    folder = tmp_path_factory.mktemp("search")
    config = write_config(folder / "tiny.yaml", write_npz(folder / "tiny.npz"), search=SEARCH_BLOCK)
    results = folder / "results"
    track = ["--track", "mlflow"] if importlib.util.find_spec("mlflow") else []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNN_CIFAR_CACHE", str(folder / "cache"))
        result = invoke("search", config, "--results-dir", results, *track)
    assert result.exit_code == 0, result.output
    return results, only_run(results)


def test_search_writes_tensorboard_per_fit_with_hparams(tracked_search):
    _, run = tracked_search
    fits = sorted(p.name for p in (run / "tensorboard").iterdir() if p.is_dir())
    assert fits == ["c001_f0", "c001_f1", "c002_f0", "c002_f1"]  # no temporary folder left
    record = json.loads((run / "fits" / "c002_f1.json").read_text())
    folder = run / "tensorboard" / "c002_f1"
    train, val = events(folder / "train"), events(folder / "validation")
    epochs = record["epochs"]
    assert [s for s, _ in scalars(train, "epoch_loss")] == list(range(1, epochs + 1))
    assert [v for _, v in scalars(val, "epoch_accuracy")] == pytest.approx(record["history"]["val_accuracy"])
    lr = scalars(train, "epoch_learning_rate")
    params = json.loads((run / "candidates.json").read_text())[1]["params"]
    assert [v for _, v in lr] == pytest.approx([params["train__optimizer__learning_rate"]] * epochs, rel=1e-5)
    ((step, score),) = scalars(events(folder), "score")
    assert score == pytest.approx(record["score"]) and step == epochs
    experiment = hparams_experiment(run / "tensorboard")
    assert [m.display_name for m in experiment.metric_infos][:3] == ["score", "val_accuracy", "val_loss"]
    assert [h.name for h in experiment.hparam_infos][-3:] == ["candidate", "fold", "status"]
    hp = hparams_of(folder)
    assert hp["conv1__filters"] == params["conv1__filters"] and hp["candidate"] == 2 and hp["fold"] == 2
    assert hp["status"] == "ok"


def test_search_tracked_in_a_sqlite_store(tracked_search):
    pytest.importorskip("mlflow", reason=MLFLOW_MISSING)
    from mlflow import MlflowClient

    results, run = tracked_search
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "cnn-cifar"]
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.run_name == run.name and parent.info.status == "FINISHED"
    assert json.loads((run / "run.json").read_text())["mlflow"]["run_id"] == parent.info.run_id
    assert parent.data.params["conv1.filters"] == "4" and parent.data.tags["command"] == "search"
    assert parent.data.tags["version.keras"] and parent.data.metrics["best_score"] > 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"cv_results.csv", "best.json", "config.yaml", "scores.png", "run.json"} <= artifacts
    assert "fits" not in artifacts and "tensorboard" not in artifacts
    assert sorted(r.info.run_name for r in children) == ["c001_f0", "c001_f1", "c002_f0", "c002_f1"]
    child = next(r for r in children if r.info.run_name == "c002_f1")
    record = json.loads((run / "fits" / "c002_f1.json").read_text())
    assert child.info.status == "FINISHED" and child.data.tags["status"] == "ok"
    assert child.data.params["fold"] == "2" and child.data.params["candidate"] == "2"
    assert child.data.metrics["score"] == pytest.approx(record["score"])
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        history = client.get_metric_history(child.info.run_id, key)
        assert [m.step for m in history] == list(range(1, record["epochs"] + 1))
        assert [m.value for m in history] == pytest.approx(record["history"][key])


# --------------------------------------------------------------------------- options, evaluate


def test_no_tensorboard(tmp_path, tiny_config):
    result = invoke(*cv_args(tiny_config, tmp_path / "off"), "--no-tensorboard")
    assert result.exit_code == 0, result.output
    run = only_run(tmp_path / "off")
    assert not (run / "tensorboard").exists()
    assert "tensorboard: false" in (run / "config.yaml").read_text()


def test_mlflow_without_the_extra_is_one_line_before_anything_runs(tmp_path, tiny_config, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    results = tmp_path / "results"
    result = invoke("cv", tiny_config, "--results-dir", results, "--track", "mlflow")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --track mlflow needs MLflow, which is not installed: pip install 'cnn-cifar[mlflow]'"
    )
    assert "Traceback" not in result.output and not results.exists()


def test_evaluate_tracked_with_its_model_and_learning_rate(tmp_path, tiny_config):
    """evaluate's one fit, in a store named by the config's track.mlflow; the cosine
    schedule's learning rate per epoch reaches the history and the store."""
    pytest.importorskip("mlflow", reason=MLFLOW_MISSING)
    from mlflow import MlflowClient

    results = tmp_path / "results"
    store = f"sqlite:///{tmp_path / 'other.db'}"
    result = invoke(
        *("evaluate", tiny_config, "--results-dir", results, "--epochs", 3),
        *("--set", f"track.mlflow={store}", "--set", "train.optimizer.schedule=cosine"),
    )
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (child,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert child.info.run_name == "final" and parent.data.metrics["accuracy"] == child.data.metrics["score"]
    lr = [m.value for m in client.get_metric_history(child.info.run_id, "learning_rate")]
    assert len(lr) == 3 and lr[0] > lr[1] > lr[2] >= 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"model.keras", "metrics.json", "confusion_matrix.png", "summary.md"} <= artifacts
    assert (tmp_path / "mlartifacts").is_dir()  # beside the store, not ./mlruns
    assert (only_run(results) / "tensorboard" / "final" / "train").is_dir()


def test_config_params_are_flat_and_name_layers():
    params = config_params(
        "name: x\nmodel:\n  layers:\n  - {name: conv1, type: conv, kernel: 3}\n"
        "train:\n  optimizer: {name: adam, learning_rate: 0.01}\nsearch:\n  space: {conv1__kernel: [3, 5]}\n"
    )
    assert params["conv1.kernel"] == 3 and params["train.optimizer.learning_rate"] == 0.01
    assert params["search.space"] == {"conv1__kernel": [3, 5]}


# --------------------------------------------------------------------------- failures


FIT = {
    "status": "ok",
    "score": 0.5,
    "epochs": 1,
    "fit_time": 1.0,
    "history": {"loss": [1.0], "val_loss": [1.2]},
}


def tracked_run(tmp_path, track: Track, capsys) -> tuple[Path, list[str]]:
    """A run with two fits logged (no training): its folder and the warning lines printed."""
    with Run(tmp_path / "results", "cv", "tiny", "name: tiny\n", tracker=RunTracker(track)) as run:
        run.tracker.log_fit("fold_01", {"fold": 1}, FIT)
        run.tracker.log_fit("fold_02", {"fold": 2}, FIT)
    lines = capsys.readouterr().err.splitlines()
    assert json.loads((run.dir / "run.json").read_text())["status"] == "finished"
    return run.dir, [line for line in lines if "warning" in line.lower()]


def test_a_tensorboard_failure_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    from cnn_cifar.tracking import tensorboard

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorboard, "write_fit", broken)
    _, warnings = tracked_run(tmp_path, Track(), capsys)
    assert len(warnings) == 1 and warnings[0].startswith("warning: TensorBoard tracking failed (")
    assert "No space left" in warnings[0]


def test_an_unwritable_store_is_one_warning_and_the_run_goes_on(tmp_path, capsys):
    pytest.importorskip("mlflow", reason=MLFLOW_MISSING)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run, warnings = tracked_run(tmp_path, Track(mlflow=f"sqlite:///{blocker}/mlflow.db"), capsys)
    assert len(warnings) == 1 and warnings[0].startswith("warning: MLflow tracking failed (sqlite:///")
    assert (run / "tensorboard" / "fold_02").is_dir()


def test_a_server_that_is_down_is_one_warning(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason=MLFLOW_MISSING)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the user's setting wins
    start = time.monotonic()
    _, warnings = tracked_run(tmp_path, Track(mlflow=f"http://127.0.0.1:{free_port()}"), capsys)
    assert len(warnings) == 1 and "MLflow tracking failed (http://127.0.0.1:" in warnings[0]
    assert time.monotonic() - start < 60


def test_a_resumed_run_goes_on_in_its_parent_run(tmp_path, capsys):
    """search --resume reopens the run folder: the same parent run gets the new fits."""
    pytest.importorskip("mlflow", reason=MLFLOW_MISSING)
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with (
        pytest.raises(KeyboardInterrupt),
        Run(tmp_path, "search", "s", "name: s\n", tracker=RunTracker(Track(mlflow=store))) as run,
    ):
        run.tracker.log_fit("c000_f0", {"candidate": 1, "fold": 1}, FIT)
        raise KeyboardInterrupt
    client = MlflowClient(store)
    (parent,) = client.search_runs(["1"], "tags.command = 'search'")
    assert parent.info.status == "KILLED"
    with Run(tmp_path, "search", "s", resume=run.dir, tracker=RunTracker(Track(mlflow=store))) as again:
        again.tracker.log_fit("c000_f1", {"candidate": 1, "fold": 2}, FIT)
    runs = client.search_runs(["1"])
    assert [r.info.run_id for r in runs if "mlflow.parentRunId" not in r.data.tags] == [parent.info.run_id]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    children = sorted(
        r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    )
    assert children == ["c000_f0", "c000_f1"]
    assert sorted(p.name for p in (run.dir / "tensorboard").iterdir() if p.is_dir()) == children
    assert "warning" not in capsys.readouterr().err.lower()


# --------------------------------------------------------------------------- an MLflow server


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rest(url: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


@pytest.fixture
def mlflow_server(tmp_path):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install -e '.[mlflow]'")
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"),
            *("--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"),
        ],
        cwd=tmp_path,
        start_new_session=True,  # its own process group: uvicorn and job workers end with it
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),  # noqa: SIM115 (closed with the process)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "mlflow server did not start:\n" + (tmp_path / "server.log").read_text()[-2000:]
                    )
                time.sleep(0.5)
        # the server's first answer is slow (it imports its handlers): not the test's time
        rest(url, "/api/2.0/mlflow/experiments/search", {"max_results": 1})
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # its job workers may outlive a SIGTERM
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_cv_tracked_on_an_mlflow_server(tmp_path, tiny_config, mlflow_server):
    results = tmp_path / "results"
    result = invoke(
        "cv",
        tiny_config,
        "--results-dir",
        results,
        "--set",
        "train.epochs=1",
        "--set",
        f"track.mlflow={mlflow_server}",
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output.lower() and "View run" not in result.output
    experiment = rest(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=cnn-cifar")
    found = rest(
        mlflow_server,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 100},
    )["runs"]

    def tags(r):
        return {t["key"]: t["value"] for t in r["data"].get("tags", [])}

    (parent,) = [r for r in found if "mlflow.parentRunId" not in tags(r)]
    children = [r for r in found if tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
    assert parent["info"]["status"] == "FINISHED" and parent["info"]["run_name"] == only_run(results).name
    assert sorted(r["info"]["run_name"] for r in children) == ["fold_01", "fold_02"]
    history = rest(
        mlflow_server,
        f"/api/2.0/mlflow/metrics/get-history?run_id={children[0]['info']['run_id']}&metric_key=val_loss",
    )["metrics"]
    assert [m["step"] for m in history] == [1]
    hp = hparams_of(only_run(results) / "tensorboard" / "fold_02")  # TensorBoard too, by default
    assert hp == {"config": "tiny", "fold": 2, "status": "ok"}
    listed = rest(mlflow_server, f"/api/2.0/mlflow/artifacts/list?run_id={parent['info']['run_id']}")
    assert {"cv.json", "config.yaml", "log.txt"} <= {f["path"] for f in listed.get("files", [])}

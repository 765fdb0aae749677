"""Searching over structure: each grammar element (optional layers, a choice of stacks
inline or by config name, repeated blocks with addressable names, parameters drawn only
where their layer exists), equality with RandomizedSearchCV on the list-of-dicts space,
a bad-input corpus refused before anything trains, resume after SIGKILL, and everything
downstream (ranking, cv_results.csv, evaluate --best, compare RUN:ID, tracking).

Searches train on a generated 12x12x3, 3-class npz (90 training images) with 2-filter
models for 2 epochs."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import (
    FIT_RECORDS,
    cli_command,
    invoke,
    local_dask_cluster,
    tiny_raw,
    wait_for_first_fit,
    write_npz,
)

from cnn_cifar.config.errors import ConfigError
from cnn_cifar.config.loader import load_config
from cnn_cifar.core.files import read_json
from cnn_cifar.data.dataset import dataset, resolve_data
from cnn_cifar.results.runs import list_runs
from cnn_cifar.search import space as sp, structures
from cnn_cifar.search.candidates import make_candidates
from cnn_cifar.training.folds import cv_splits

CONV = {"name": "conv", "type": "conv", "filters": 2, "kernel": 3, "padding": "same", "activation": "relu"}
POOL = {"name": "pool", "type": "pool", "kind": "max", "size": 2}
HIDDEN = {"name": "hidden", "type": "dense", "units": 8, "activation": "relu"}
# one or two conv-pool blocks, a hidden layer or none, and values drawn per layer
SPACE = {
    "model.layers": [
        {"repeat": [1, 2], "name": "block", "layers": [CONV, POOL]},
        {"optional": HIDDEN},
    ],
    "block1.conv.filters": [2, 3],
    "block2.conv.kernel": [1, 3],
    "block2.pool.kind": ["max", "average"],
    "hidden.units": {"randint": [4, 16]},
}
TRAIN = {
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 2,
    "batch_size": 16,
    "validation_split": 0.0,
    "seed": 3,
}


def search_block(space=None, **settings) -> dict:
    block = {"strategy": "random", "n_iter": 4, "random_state": 0, "space": space or SPACE}
    return {**block, **settings}


def config(folder: Path, space=None, name="structure.yaml", train=None, **settings) -> Path:
    """A search config over `space` (SPACE by default) on the tiny 12x12 data set."""
    data = folder / "tiny12.npz"
    if not data.exists():
        write_npz(data, size=12)
    raw = tiny_raw(data, train={**TRAIN, **(train or {})}, search=search_block(space, **settings))
    raw["name"] = "structure"
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def parsed(path: Path):
    cfg = load_config(path)
    return cfg, sp.parse_space(cfg, str(path))


def read_cv(run_dir: Path) -> list[dict]:
    with open(run_dir / "cv_results.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("structures")


@pytest.fixture(scope="module")
def finished(folder):
    """An uninterrupted structural search (random strategy): what the others reproduce."""
    path = config(folder)
    result = invoke("search", path, "--results-dir", folder / "reference", cache=folder / "cache")
    assert result.exit_code == 0, result.output
    return list_runs(folder / "reference", "search")[-1]


# --------------------------------------------------------------------------- grammar


def names(found) -> list[list[str]]:
    return [[layer["name"] for layer in layers] for layers in found]


def test_an_optional_part_gives_the_structures_without_and_with_it(tmp_path):
    found = structures.expand(
        [CONV, {"optional": [HIDDEN, {"type": "dropout"}]}], "f", str(tmp_path / "c.yaml")
    )
    assert names(found) == [["conv"], ["conv", "hidden", "dropout1"]]


def test_a_repeated_block_names_each_repeat(tmp_path):
    found = structures.expand(SPACE["model.layers"], "f", str(tmp_path / "c.yaml"))
    assert names(found) == [
        ["block1.conv", "block1.pool"],
        ["block1.conv", "block1.pool", "hidden"],
        ["block1.conv", "block1.pool", "block2.conv", "block2.pool"],
        ["block1.conv", "block1.pool", "block2.conv", "block2.pool", "hidden"],
    ]


def test_a_choice_takes_inline_stacks_and_configs_by_name(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "base: two_conv.yaml\nname: mine\nmodel:\n  layers:\n    - {type: conv, filters: 8, kernel: 5}\n"
    )
    import shutil

    from cnn_cifar.config.loader import SHIPPED_CONFIGS

    for name in ("one_conv.yaml", "two_conv.yaml"):
        shutil.copy(SHIPPED_CONFIGS / name, tmp_path / name)
    entry = {"choice": ["one_conv.yaml", "mine.yaml", [CONV, POOL], "two_conv_hidden"]}
    found = structures.expand(entry, "f", str(tmp_path / "search.yaml"))
    assert names(found) == [
        ["conv1", "pool1"],  # as one_conv names them
        ["conv1"],  # a local config, its base's layers replaced
        ["conv", "pool"],
        ["conv1", "pool1", "conv2", "pool2", "hidden"],  # shipped, found by name
    ]
    assert found[1][0]["filters"] == 8 and found[3][4]["units"] == 400


def test_every_structure_is_a_dict_of_the_space_with_its_own_parameters(tmp_path):
    _cfg, space = parsed(config(tmp_path))
    assert isinstance(space, list) and len(space) == 4
    drawn = [sorted(k for k in d if k != "model.layers") for d in space]
    assert drawn == [
        ["block1.conv.filters"],
        ["block1.conv.filters", "hidden.units"],
        ["block1.conv.filters", "block2.conv.kernel", "block2.pool.kind"],
        ["block1.conv.filters", "block2.conv.kernel", "block2.pool.kind", "hidden.units"],
    ]
    assert all(len(d["model.layers"]) == 1 for d in space)  # one choice: that structure


def test_a_candidate_sets_its_drawn_values_on_its_own_layers(tmp_path):
    path = config(tmp_path, n_iter=12)
    cfg, space = parsed(path)
    cands = make_candidates(cfg, space, (12, 12, 3), 3, str(path))
    for c in cands:
        layers = {layer.name: layer for layer in c.config.model.layers}
        assert layers["block1.conv"].filters == c.params["block1.conv.filters"]
        if "block2.conv" in layers:
            assert layers["block2.conv"].kernel == c.params["block2.conv.kernel"]
            assert layers["block2.pool"].kind == c.params["block2.pool.kind"]
        else:
            assert "block2.conv.kernel" not in c.params
        assert ("hidden" in layers) == ("hidden.units" in c.params)
    # the structure's own layer list is not changed by the values set on a candidate
    assert all(d["model.layers"][0][0]["filters"] == 2 for d in space)
    assert len({c.architecture for c in cands}) > 4  # structures and values both vary


def test_a_layer_name_with_dots_is_a_parameter_everywhere(tmp_path):
    from cnn_cifar.training.estimator import from_config

    path = config(tmp_path)
    cfg, space = parsed(path)
    cand = make_candidates(cfg, space, (12, 12, 3), 3, str(path))[0]
    est = from_config(cand.config)
    est.set_params(block1__conv__filters=5)
    assert est.get_params()["block1__conv__filters"] == 5
    assert est.model["layers"][0]["filters"] == 5


# --------------------------------------------------------------------------- bad input


def refused(tmp_path, space) -> str:
    """The one error line of `search --dry-run` on this space; nothing ran."""
    result = invoke("search", config(tmp_path, space), "--dry-run", catch_exceptions=True)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"model.layers": [{"choice": []}]},
            "search.space.model.layers[0].choice: needs a list of at least one alternative",
        ),
        (
            {"model.layers": [{"repeat": 0, "layers": [CONV]}]},
            "search.space.model.layers[0].repeat: how many times: a positive integer",
        ),
        (
            {"model.layers": [{"repeat": [2, -1], "layers": [CONV]}]},
            "search.space.model.layers[0].repeat: how many times",
        ),
        (
            {"model.layers": [CONV, {"optinal": HIDDEN}]},
            "search.space.model.layers[1].optinal: unknown key; a part is a layer",
        ),
        (
            {"model.layers": [{"optional": CONV, "choice": [POOL]}]},
            "search.space.model.layers[0]: a part is one of",
        ),
        (
            {"model.layers": [CONV, POOL], "hidden.units": [4, 8]},
            "search.space.hidden.units: no structure has a layer 'hidden'; their layers: conv, pool",
        ),
        (
            {"model.layers": [CONV, {"optional": HIDDEN}], "hidden.filters": [4, 8]},
            "search.space.hidden.filters: no such setting; hidden (dense) takes units, activation",
        ),
        (
            {"model.layers": [CONV, {"optional": CONV}]},
            "search.space.model.layers: structure 2 of 2 (conv, conv) cannot be built: "
            "model: layer name 'conv' used twice (layers[1])",
        ),
        (
            {"model.layers": [CONV, {"optional": {"type": "whiten"}}]},
            "cannot be built: model: a whiten layer must be the first layer (it is layers[1])",
        ),
        (
            {"model.layers": [{"choice": ["three_conv.yaml"]}]},
            "search.space.model.layers[0].choice[0]: ",  # then the file tried (below)
        ),
        (
            {"model.layers": [{"repeat": [1, 2, 3, 4, 5, 6, 7, 8, 9], "layers": [{"optional": CONV}]}]},
            "allows more than 256 structures",
        ),
        (
            {"model.layers": [CONV], "model__layers": [CONV]},
            "search.space: names model.layers twice (model.layers and model__layers)",
        ),
        (
            {"model.layers": [{"repeat": [1], "name": "a.b", "layers": [CONV]}]},
            "search.space.model.layers[0].name: 'a.b' is not a block name",
        ),
        (
            {"model.layers": [{"repeat": [1, 2], "layers": [CONV]}], "block2.conv.filters": [0]},
            "search.space.block2.conv.filters: value 0 is not allowed",
        ),
    ],
)
def test_bad_structure_is_one_line_before_any_data_or_training(tmp_path, space, message):
    line = refused(tmp_path, space)
    assert line.startswith(f"Error: {tmp_path / 'structure.yaml'}: "), line
    assert message in line, line


# a choice's config by name, each reaching a real file: (what the choice names, what the file
# holds or None for no file, what the one line says after the entry and the file tried)
NOT_A_CONFIG = "not a config; a config is a .yaml or .yml file, or a shipped config by name ("
CHOSEN = [
    ("../outside/hostname", "myhost\n", NOT_A_CONFIG),  # any path was opened (and read as YAML)
    ("tiny12.npz", None, NOT_A_CONFIG),  # the data beside it: was "not UTF-8 text"
    ("broken.yaml", "model: {layers: [\n", "line 2: not valid YAML: expected the node content"),
    ("empty.yaml", "name: empty\n", "no model.layers list to take"),
    ("nolist.yml", "name: e\nmodel: {layers: conv}\n", "no model.layers list to take"),
    ("three_conv.yaml", None, "no such config file; a config is a .yaml or .yml file, or a shipped"),
]


@pytest.mark.parametrize(("name", "text", "message"), CHOSEN)
def test_a_chosen_config_that_cannot_be_taken_names_the_entry_then_the_file(tmp_path, name, text, message):
    """Each mistake in reaching a choice's config is one line: the search's config and the
    choice's place first, then the file tried, then what is wrong with it. Before, a path
    outside (../../etc/hostname) was opened and its error named that file alone."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (tmp_path / "outside").mkdir()
    if text is not None:
        (folder / name).write_text(text)
    path = config(folder, {"model.layers": [{"choice": ["one_conv", name]}]})
    result = invoke("search", path, "--dry-run", catch_exceptions=True)
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(
        f"Error: {path}: search.space.model.layers[0].choice[1]: {folder / name}: {message}"
    ), result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="no /etc/passwd here")
def test_an_absolute_path_to_a_file_that_is_not_a_config_is_refused(tmp_path):
    path = config(tmp_path, {"model.layers": [{"choice": ["/etc/passwd"]}]})
    with pytest.raises(ConfigError) as e:
        parsed(path)
    assert str(e.value).startswith(
        f"{path}: search.space.model.layers[0].choice[0]: /etc/passwd: {NOT_A_CONFIG}"
    )


def test_a_users_structural_search_may_name_a_shipped_base_by_its_name(tmp_path):
    """`base: two_conv` in a user's own folder is the shipped two_conv, as a choice's
    `two_conv` is (before: "base: two_conv not found next to structure.yaml")."""
    space = {"model.layers": [{"choice": ["one_conv", [CONV, POOL]]}]}
    path = config(tmp_path, space, train={"early_stopping": None})  # the base's needs a split
    path.write_text("base: two_conv\n" + path.read_text())
    result = invoke("search", path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 structures" in result.output


def test_a_stack_no_candidate_can_build_is_skipped_with_its_reason(tmp_path):
    """Three 2x2 pools fit a 12x12 image (to 6, 3, 1); a fourth cannot: such candidates are
    invalid before anything trains, and the ranking says why."""
    space = {"model.layers": [{"repeat": [1, 4], "layers": [CONV, POOL]}]}
    result = invoke("search", config(tmp_path, space), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "cannot be built as written (block4.pool: pool size 2 is larger than the 1x1" in result.output
    assert "INVALID (cannot run): block4.pool: pool size 2 is larger" in result.output


# --------------------------------------------------------------------------- whole searches


def test_dry_run_lists_each_structure_with_its_size_and_parameters(tmp_path):
    result = invoke("search", config(tmp_path), "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "4 structures (drawn one per candidate, then their values):" in out
    assert "structure 1: conv 2 3x3 relu > pool max 2\n" in out
    assert "structure 4: conv 2 3x3 relu > pool max 2 > conv 2 3x3 relu > pool max 2 > dense 8 relu" in out
    assert "draws block1.conv.filters, block2.conv.kernel, block2.pool.kind, hidden.units" in out
    assert "parameters 273, multiply-accumulates per image 9,240 as written; draws block1.conv.filters" in out
    assert "candidate 1 conv " in out


def test_a_structural_search_ranks_architectures_and_feeds_evaluate_and_compare(finished, folder):
    rows = read_cv(finished)
    cands = read_json(finished / "candidates.json")
    assert [r["status"] for r in rows] == ["completed"] * 4
    layers = [[layer["name"] for layer in c["params"]["model.layers"]] for c in cands]
    assert [r["param_model.layers"] for r in rows] == [" > ".join(n) for n in layers]
    for r, c in zip(rows, cands, strict=True):  # a parameter its layer lacks stays blank
        assert (r["param_hidden.units"] != "") == ("hidden" in layers[int(r["candidate"]) - 1])
        assert r["param_hidden.units"] == str(c["params"].get("hidden.units", ""))
    ranking = (finished / "ranking.txt").read_text().splitlines()
    assert all(line.startswith("candidate ") and " for conv " in line for line in ranking[1:5]), ranking
    best = read_json(finished / "best.json")
    winner = f"candidate {best['best_candidate']}: {best['best_score']:0.4f}"
    assert ranking[1].startswith(winner)
    assert [layer["name"] for layer in best["config"]["model"]["layers"]] == layers[
        best["best_candidate"] - 1
    ]
    # the winner's config, as best.json holds it, is what evaluate --best trains
    ev = invoke(
        "evaluate", "--best", "--results-dir", folder / "reference", "--epochs", "1", cache=folder / "cache"
    )
    assert ev.exit_code == 0, ev.output
    other = next(int(r["candidate"]) for r in rows if int(r["candidate"]) != best["best_candidate"])
    cmp = invoke(
        "compare", f"{finished}:{best['best_candidate']}", f"{finished}:{other}", cache=folder / "cache"
    )
    assert cmp.exit_code == 0, cmp.output
    assert f"{finished.name}:{best['best_candidate']}" in cmp.output


def test_scores_match_randomized_search_cv_on_the_list_of_dicts_space(finished, folder):
    from sklearn.model_selection import RandomizedSearchCV

    from cnn_cifar.training.estimator import from_config

    cfg, space = parsed(config(folder))
    ds = dataset(resolve_data(cfg))
    sk = RandomizedSearchCV(
        from_config(cfg),
        space,  # scikit-learn's own form: a list of dicts, a dict drawn first
        n_iter=4,
        cv=cv_splits(ds.y_train, 2, 0.2, 15),
        random_state=0,
        scoring="accuracy",
        refit=False,
        error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(ds.x_train, ds.y_train)
    assert [c["params"] for c in read_json(finished / "candidates.json")] == [
        {k: sp.native(v) for k, v in p.items()} for p in sk.cv_results_["params"]
    ]
    for row, mean in zip(read_cv(finished), sk.cv_results_["mean_test_score"], strict=True):
        assert float(row["mean_test_score"]) == pytest.approx(mean, abs=1e-6)


def test_a_killed_structural_search_resumes_to_the_same_result(finished, folder, tmp_path):
    cmd = cli_command()
    results = tmp_path / "results"
    env = {**os.environ, "CNN_CIFAR_CACHE": str(folder / "cache")}
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(
            [*cmd, "search", str(config(folder)), "--results-dir", str(results)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for_first_fit(proc, results)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    run = list_runs(results, "search")[-1]
    kept = {p.name: p.stat().st_mtime_ns for p in (run / "fits").glob(FIT_RECORDS)}
    assert 1 <= len(kept) < 8
    done = subprocess.run([*cmd, "search", "--resume", str(run)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    after = {p.name: p.stat().st_mtime_ns for p in (run / "fits").glob(FIT_RECORDS)}
    assert {k: v for k, v in after.items() if k in kept} == kept
    same_search(run, finished)


def test_racing_with_pruning_and_two_jobs_runs_a_structural_space(folder, tmp_path):
    path = config(
        folder,
        name="racing.yaml",
        train={"validation_split": 0.2},
        strategy="racing",
        n_iter=4,
        prune={"rule": "median", "min_fits": 2},
    )
    track = ["--track", "mlflow"] if importlib.util.find_spec("mlflow") else []
    result = invoke("search", path, "--results-dir", tmp_path, "--jobs", "2", *track, cache=folder / "cache")
    assert result.exit_code == 0, result.output
    run = list_runs(tmp_path, "search")[-1]
    assert all(r["param_model.layers"] for r in read_cv(run))
    assert read_json(run / "run.json")["status"] == "finished"
    if track:  # each fit's tracked run names its structure in one readable parameter
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        fits = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        names = {
            c["candidate"]: " > ".join(layer["name"] for layer in c["params"]["model.layers"])
            for c in read_json(run / "candidates.json")
        }
        assert fits and all(
            r.data.params["model.layers"] == names[int(r.data.params["candidate"])] for r in fits
        )


def test_config_names_are_saved_as_their_layers_so_resume_needs_no_files(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nmodel:\n  layers:\n    - {type: conv, filters: 2, kernel: 3}\n    - {type: pool}\n"
    )
    path = config(tmp_path, {"model.layers": [{"choice": ["mine.yaml", [CONV, POOL]]}]})
    cfg = structures.inline_config_names(load_config(path), str(path))
    (tmp_path / "mine.yaml").unlink()
    assert cfg.search.space["model.layers"][0]["choice"][0] == [
        {"type": "conv", "filters": 2, "kernel": 3, "name": "conv1"},
        {"type": "pool", "name": "pool1"},
    ]
    assert len(sp.parse_space(cfg, "elsewhere/search.json")) == 2


def test_an_attribute_space_is_unchanged(tmp_path):
    """Without model.layers the space is the dict RandomizedSearchCV took before."""
    space = {"conv1.filters": [2, 4], "hidden.units": {"randint": [4, 16]}}
    _cfg, parsed_space = parsed(config(tmp_path, space))
    assert isinstance(parsed_space, dict) and sorted(parsed_space) == sorted(space)
    with pytest.raises(ConfigError):
        sp.parse_space(load_config(config(tmp_path, {"conv9.filters": [2]})), "x")


def test_a_set_of_the_configs_own_layers_is_refused_in_a_structural_search(tmp_path):
    result = invoke(
        "search", config(tmp_path), "--set", "conv1.filters=64", "--dry-run", catch_exceptions=True
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "Error: --set: conv1.filters: this search draws its layers (search.space's model.layers), so a "
        "layer's setting goes into the space: --set 'search.space.conv1.filters=[VALUE]' (the config's own "
        "layers are not searched); the structures' layers: block1.conv, block1.pool, block2.conv, "
        "block2.pool, hidden"
    )
    ok = invoke("search", config(tmp_path), "--set", "search.space.hidden.units=[5]", "--dry-run")
    assert ok.exit_code == 0 and "'hidden.units': 5" in ok.output, ok.output


def test_a_set_of_an_unknown_layer_in_a_structural_search_points_to_the_space(tmp_path):
    """Before, `--set c1.filters=8` suggested the config's own layers (conv1, pool1, hidden),
    which the search replaces, as the names to use. Now it says a layer's setting goes into
    the space; there the structures' own names are listed."""
    path = config(tmp_path)
    result = invoke("search", path, "--set", "c1.filters=8", "--dry-run", catch_exceptions=True)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith(
        "Error: --set: c1.filters: no such setting; this search draws its layers (search.space's "
        "model.layers), so a layer's setting goes into the space: --set 'search.space.c1.filters=[VALUE]'; "
        "other settings start with model, train, name, "
    ), line
    assert line.endswith("(the config's own layers, which its search replaces: conv1, pool1, hidden)"), line
    assert "a parameter starts with a layer name" not in line
    there = invoke("search", path, "--set", "search.space.c1.filters=[8]", "--dry-run", catch_exceptions=True)
    assert there.exit_code == 2, there.output
    assert there.output.strip() == (
        f"Error: {path}: search.space.c1.filters: no structure has a layer 'c1'; their layers: "
        "block1.conv, block1.pool, block2.conv, block2.pool, hidden"
    )


def test_without_a_structural_entry_an_unknown_layer_lists_the_configs_layers(tmp_path):
    path = config(tmp_path, {"conv1.filters": [2, 3]})
    result = invoke("search", path, "--set", "c1.filters=8", "--dry-run", catch_exceptions=True)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        "Error: --set: c1.filters: no such setting; a parameter starts with a layer name (conv1, pool1, "
        "hidden), model or train; a config setting (--set) also with name, "
    ), result.output


def test_a_choice_of_a_config_by_name_and_an_inline_stack_trains_both(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nmodel:\n  layers:\n    - {type: conv, filters: 2, kernel: 3, activation: relu}\n"
        "    - {type: pool, kind: average}\n"
    )
    space = {"model.layers": [{"choice": ["mine.yaml", [CONV, POOL]]}], "conv1.filters": [2, 3]}
    result = invoke("search", config(tmp_path, space), "--results-dir", tmp_path / "results")
    assert result.exit_code == 0, result.output
    rows = read_cv(list_runs(tmp_path / "results", "search")[-1])
    assert {r["param_model.layers"] for r in rows} == {"conv1 > pool1", "conv > pool"}
    assert all(r["status"] == "completed" for r in rows)
    assert all((r["param_conv1.filters"] != "") == (r["param_model.layers"] == "conv1 > pool1") for r in rows)


def test_the_shipped_study_searches_the_tutorials_architectures():
    cfg = structures.inline_config_names(load_config("study"), "study")  # by name, as an install runs it
    space = sp.parse_space(cfg, "study")
    assert [structures.structure_names(d["model.layers"][0]) for d in space] == [
        "conv1 > pool1",
        "conv1 > pool1 > hidden",
        "conv1 > pool1 > conv2 > pool2",
        "conv1 > pool1 > conv2 > pool2 > hidden",
    ]
    assert space[0]["model.layers"][0][0]["activation"] is None  # one_conv: no rectifier
    assert space[2]["model.layers"][0][0]["activation"] == "relu"  # two_conv's
    assert "hidden.units" in space[1] and "hidden.units" not in space[2]


def same_search(a: Path, b: Path) -> None:
    """Same candidates (structure and values) and, within float noise, the same scores."""
    for ra, rb in zip(read_cv(a), read_cv(b), strict=True):
        assert {k: v for k, v in ra.items() if k.startswith("param_")} == {
            k: v for k, v in rb.items() if k.startswith("param_")
        }
        assert float(ra["mean_test_score"]) == pytest.approx(float(rb["mean_test_score"]), abs=1e-6)


def test_a_structural_search_on_a_local_dask_cluster_is_the_same_search(finished, folder, tmp_path):
    with local_dask_cluster() as scheduler:
        result = invoke(
            "search",
            config(folder),
            "--results-dir",
            tmp_path,
            "--backend",
            "dask",
            "--scheduler",
            scheduler,
            cache=folder / "cache",
        )
    assert result.exit_code == 0, result.output
    same_search(list_runs(tmp_path, "search")[-1], finished)


def test_halving_keeps_the_best_structures_rung_by_rung(folder, tmp_path):
    path = config(folder, name="halving.yaml", strategy="halving", factor=2, n_iter=4, prune={"rule": "none"})
    result = invoke("search", path, "--results-dir", tmp_path, cache=folder / "cache")
    assert result.exit_code == 0, result.output
    rows = read_cv(list_runs(tmp_path, "search")[-1])
    assert sorted(r["rung"] for r in rows) == ["0", "0", "1", "2"]  # 4, then the best 2, then 1
    assert all(r["param_model.layers"] for r in rows)

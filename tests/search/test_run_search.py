"""`cnn_cifar.search.run_search`, the search as one Python call: docs/configs.md's example run
as written, on a generated 8x8 data set with a two-candidate space, against what
`cnn-cifar search` writes for the same config."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO, invoke, tiny_raw, write_npz

from cnn_cifar import load_config
from cnn_cifar.core.files import BEST_FILE, CV_RESULTS_FILE, RANKING_FILE, SPEC_FILE, read_json
from cnn_cifar.search import BestCandidate, SearchSummary, run_search
from cnn_cifar.search.errors import SearchError

SEARCH = {
    "strategy": "random",
    "n_iter": 2,
    "random_state": 1,
    "space": {"conv1__filters": [2, 4], "hidden__units": [4, 8]},
}


def documented_example() -> str:
    """The Python block under docs/configs.md's "A search from Python"."""
    text = (REPO / "docs" / "configs.md").read_text(encoding="utf-8")
    section = text.split("### A search from Python", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no python example under the heading"
    return found.group(1)


@pytest.fixture
def search_folder(tmp_path, monkeypatch):
    """A folder laid out as the example expects it: configs/search.yaml (the tiny model on a
    generated npz, with a search: block), as the current folder."""
    data = write_npz(tmp_path / "tiny.npz")
    (tmp_path / "configs").mkdir()
    raw = tiny_raw(data, search=SEARCH)
    (tmp_path / "configs" / "search.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_documented_example_searches_and_returns_its_summary(search_folder, capsys):
    scope: dict = {}
    exec(compile(documented_example(), "docs/configs.md", "exec"), scope)  # trains for real
    summary, best = scope["summary"], scope["best"]
    assert isinstance(summary, SearchSummary) and isinstance(best, BestCandidate)
    run_dir = search_folder / "results" / "my_search"
    assert summary.run_dir.resolve() == run_dir and summary.n_fits == 2 * 2  # 2 candidates x 2 folds
    assert len(summary.rows) == 2 and best.candidate in (1, 2) and 0 <= best.score <= 1
    assert best.params in ({"conv1__filters": f, "hidden__units": u} for f in (2, 4) for u in (4, 8))
    assert best.scoring == "accuracy" and best.strategy == "random" and best.config["name"] == "tiny_best"
    assert read_json(run_dir / BEST_FILE) == best.to_json()
    assert list(best.to_json())[:5] == ["best_params", "best_score", "best_std", "best_ci", "best_candidate"]
    assert (run_dir / RANKING_FILE).read_text() == summary.ranking + "\n"
    assert (run_dir / CV_RESULTS_FILE).is_file() and (run_dir / SPEC_FILE).is_file()
    assert summary.ranking in capsys.readouterr().out


def test_it_scores_as_the_command_does_and_its_folder_feeds_evaluate_best(search_folder):
    summary = run_search(_config(), search_folder / "api")
    result = invoke("search", "configs/search.yaml", "--results-dir", search_folder / "cli")
    assert result.exit_code == 0, result.output
    (command_run,) = (search_folder / "cli").iterdir()
    from_command = read_json(command_run / BEST_FILE)
    assert summary.best is not None
    assert summary.best.to_json() == from_command  # same candidates, same scores, same file
    assert read_json(command_run / "run.json")["best_score"] == summary.best.score
    evaluated = invoke("evaluate", "--best", search_folder / "api", "--results-dir", search_folder / "ev")
    assert evaluated.exit_code == 0, evaluated.output


def test_a_folder_that_holds_a_search_is_refused(search_folder):
    (search_folder / "used").mkdir()
    (search_folder / "used" / SPEC_FILE).write_text("{}")
    with pytest.raises(SearchError, match="holds a search already"):
        run_search(_config(), search_folder / "used")


def _config():
    return load_config("configs/search.yaml")

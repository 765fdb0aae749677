"""A search stopped by an earlier layout of the package resumes: its journal (search.json,
candidates.json, fits/) is data the new code reads as the old code wrote it."""

import csv
import json

from conftest import FIXTURES, invoke, search_before_move, write_npz


def test_a_search_interrupted_before_the_package_layout_changed_resumes(tmp_path):
    # fixtures/search_before_move: `cnn-cifar search fixtures/search_tiny.yaml` (3
    # candidates x 2 folds) by the flat layout, then two fits removed and run.json marked
    # interrupted; the _cv_results.csv beside it is that search's own complete result
    data = write_npz(tmp_path / "tiny.npz")
    run = search_before_move(tmp_path / "results", data)
    kept = {p.name: p.read_text() for p in (run / "fits").iterdir()}
    assert len(kept) == 4

    result = invoke("search", "--resume", run, "--no-tensorboard")
    assert result.exit_code == 0, result.output

    fits = sorted(p.name for p in (run / "fits").iterdir())
    assert fits == [f"c00{c}_f{f}.json" for c in range(3) for f in range(2)]
    assert all((run / "fits" / name).read_text() == text for name, text in kept.items())  # not rerun
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and "signal" not in record and "error" not in record
    assert record["earlier_outcomes"] == [
        {"status": "interrupted", "ended": "2026-12-04T08:53:10", "signal": "SIGINT"}
    ]
    rows = list(csv.DictReader((run / "cv_results.csv").open()))
    before = list(csv.DictReader((FIXTURES / "search_before_move_cv_results.csv").open()))
    columns = ("candidate", "param_conv1__filters", "param_hidden__units", "split0_test_score", "status")
    assert [{k: r[k] for k in columns} for r in rows] == [{k: r[k] for k in columns} for r in before]
    # the refitted folds are seeded: the same scores as the search that was not interrupted
    assert [r["split1_test_score"] for r in rows] == [r["split1_test_score"] for r in before]

import ast
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from cnn_cifar.results import plots
from cnn_cifar.search import plots as search_plots

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def class_names(n):
    return CIFAR[:n] if n <= 10 else [f"{c}_{i}" for i, c in enumerate(CIFAR * 2)][:n]


def fake_cm(n, seed=0):
    rng = np.random.default_rng(seed)
    cm = rng.integers(0, 40, (n, n))
    np.fill_diagonal(cm, rng.integers(500, 1000, n))
    return cm


def history(epochs=12, val=True):
    e = np.arange(epochs)
    h = {"loss": list(2 * np.exp(-e / 4) + 0.3), "accuracy": list(0.9 - 0.6 * np.exp(-e / 4))}
    if val:
        h["val_loss"] = list(1.8 * np.exp(-e / 4) + 0.7 + 0.01 * np.clip(e - 7, 0, None) ** 2)
        h["val_accuracy"] = list(0.7 - 0.4 * np.exp(-e / 4))
    return h


def cv_results(n=10, failed=(6,)):
    rng = np.random.default_rng(1)
    rows = []
    for c in range(n):
        params = {
            "learning_rate": float(10 ** rng.uniform(-4, -1)),
            "dropout": [0.0, 0.25, 0.5][c % 3],
            "optimizer": ["adam", "sgd"][c % 2],
            "filters": [[32, 64], [64, 128]][c % 2],
        }
        if c in failed:
            rows.append(
                {
                    "candidate": c,
                    "mean_score": float("nan"),
                    "std_score": float("nan"),
                    "status": "failed",
                    "fold_scores": [],
                    "params": params,
                }
            )
            continue
        folds = list(rng.normal(0.6 + 0.02 * c, 0.02, 3))
        rows.append(
            {
                "candidate": c,
                "mean_score": float(np.mean(folds)),
                "std_score": float(np.std(folds)),
                "status": "completed",
                "fold_scores": folds,
                "params": params,
            }
        )
    return rows


@pytest.fixture
def captured(monkeypatch):
    """Record what each figure contains just before plots.save writes (and clears) it."""
    figs = []
    real_save = plots.save

    def spy(fig, path):
        figs.append(
            {
                "suptitle": fig._suptitle.get_text() if fig._suptitle else "",
                "figure_legend": [t.get_text() for legend in fig.legends for t in legend.get_texts()],
                "axes": [
                    {
                        "title": ax.get_title(),
                        "xlabel": ax.get_xlabel(),
                        "ylabel": ax.get_ylabel(),
                        "xticklabels": [t.get_text() for t in ax.get_xticklabels()],
                        "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
                        "texts": [(t.get_text(), t.get_color()) for t in ax.texts],
                        "images": [im.get_cmap().name for im in ax.images],
                        "lines": list(ax.get_lines()),
                        "legend": [t.get_text() for t in ax.get_legend().get_texts()]
                        if ax.get_legend()
                        else [],
                    }
                    for ax in fig.axes
                ],
            }
        )
        real_save(fig, path)

    monkeypatch.setattr(plots, "save", spy)
    return figs


def check_png(path, min_width=800):
    path = Path(path)
    assert path.is_file()
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        width, height = im.size
    assert width >= min_width and height >= 300
    assert [p.name for p in path.parent.iterdir()] == [path.name], "temporary files left behind"
    return width, height


@pytest.fixture(autouse=True)
def no_leaked_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


@pytest.mark.parametrize("n", [2, 10, 20])
def test_confusion_matrix(tmp_path, captured, n):
    names = class_names(n)
    plots.plot_confusion_matrix(fake_cm(n), names, tmp_path / "cm.png")
    check_png(tmp_path / "cm.png")
    panels = [a for a in captured[0]["axes"] if a["images"]]
    assert len(panels) == 2
    for panel in panels:
        assert panel["xticklabels"] == names and panel["yticklabels"] == names
        assert panel["xlabel"] == "Predicted class" and panel["ylabel"] == "True class"
        assert len(panel["texts"]) == n * n
        assert panel["images"][0] != "jet"
        # Contrast: the darkest cell (a diagonal one) is written in white, an empty one in black.
        colours = {c for _, c in panel["texts"]}
        assert colours <= {"white", "black"}
    counts = panels[0]["texts"]
    assert counts[0][0] == str(fake_cm(n)[0, 0])
    colorbars = [a for a in captured[0]["axes"] if not a["images"]]
    assert len(colorbars) == 2 and all(a["ylabel"] for a in colorbars)


def test_confusion_matrix_text_contrast():
    assert plots._text_colour((0.03, 0.19, 0.42, 1.0)) == "white"  # dark blue
    assert plots._text_colour((0.97, 0.98, 1.0, 1.0)) == "black"  # near white


def test_confusion_matrix_shape_mismatch(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_confusion_matrix(fake_cm(3), CIFAR, tmp_path / "cm.png")


def test_training_curves(tmp_path, captured):
    plots.plot_training_curves(history(), tmp_path / "curves.png", title="run 1")
    check_png(tmp_path / "curves.png")
    loss, acc = captured[0]["axes"]
    assert loss["title"] == "Loss" and acc["title"] == "Accuracy"
    assert loss["legend"] == ["training", "validation", "best val. loss (epoch 10)"]
    first_epoch = loss["lines"][0].get_xdata()[0]
    assert first_epoch == 1


def test_training_curves_without_validation(tmp_path, captured):
    plots.plot_training_curves(history(val=False), tmp_path / "curves.png")
    check_png(tmp_path / "curves.png")
    assert all(a["legend"] == ["training"] for a in captured[0]["axes"])


def test_training_curves_loss_only_and_empty(tmp_path):
    plots.plot_training_curves({"loss": [1.0, 0.5]}, tmp_path / "c.png")
    check_png(tmp_path / "c.png", min_width=500)
    with pytest.raises(ValueError):
        plots.plot_training_curves({}, tmp_path / "d.png")


def test_misclassified_grid(tmp_path, captured):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (25, 32, 32, 3), dtype=np.uint8)
    conf = np.linspace(0.99, 0.5, 25)
    plots.plot_misclassified(images, ["cat"] * 25, ["dog"] * 25, conf, tmp_path / "mis.png")
    _width, height = check_png(tmp_path / "mis.png")
    assert height >= 800  # 5 rows of enlarged 32x32 images
    axes = captured[0]["axes"]
    assert len(axes) == 25
    assert axes[0]["title"] == "true: cat\npred: dog (99.00%)"
    assert axes[0]["xticklabels"] == [] and axes[0]["yticklabels"] == []


def test_misclassified_grayscale_float_and_empty(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    plots.plot_misclassified(gray, list("abc"), list("bca"), [0.9, 0.8, 0.7], tmp_path / "g.png")
    check_png(tmp_path / "g.png")
    floats = np.random.default_rng(0).random((2, 32, 32, 3)) * 255
    plots.plot_misclassified(floats, ["a", "b"], ["b", "a"], [0.6, 0.9], tmp_path / "f" / "f.png")
    check_png(tmp_path / "f" / "f.png")
    plots.plot_misclassified(np.zeros((0, 32, 32, 3), np.uint8), [], [], [], tmp_path / "e" / "e.png")
    check_png(tmp_path / "e" / "e.png")


def test_search_scores(tmp_path, captured):
    rows = cv_results()
    search_plots.plot_search_scores(rows, tmp_path / "search.png")
    check_png(tmp_path / "search.png")
    ax = captured[0]["axes"][0]
    ok = sorted((r for r in rows if r["status"] == "completed"), key=lambda r: r["mean_score"])
    assert ax["yticklabels"] == ["c6"] + [f"c{r['candidate']}" for r in ok]
    assert ("failed", "0.5") in ax["texts"]
    legend = captured[0]["figure_legend"]  # below the axes, where it covers no candidate
    assert ax["legend"] == [] and any(t.startswith(f"best: c{ok[-1]['candidate']}") for t in legend)


def test_search_scores_with_candidates_dropped_by_racing(tmp_path, captured):
    rows = cv_results()
    for r in rows:
        r["n_resources"] = 4000  # same for all: not worth a label
    for r in rows[:3]:  # the three weakest left the race after one fold
        r.update(
            status="dropped",
            fold_scores=[r["fold_scores"][0], None, None],
            mean_score=r["fold_scores"][0],
            std_score=0.0,
        )
    search_plots.plot_search_scores(rows, tmp_path / "race.png")
    check_png(tmp_path / "race.png")
    ax = captured[0]["axes"][0]
    dropped = sorted(rows[:3], key=lambda r: r["mean_score"])
    assert ax["yticklabels"][:4] == ["c6"] + [f"c{r['candidate']} (1 fold)" for r in dropped]
    legend = captured[0]["figure_legend"]
    assert "dropped early (mean of its folds)" in legend
    assert any(t.startswith("best: c9") for t in legend)
    search_plots.plot_score_vs_params(rows, ["dropout"], tmp_path / "p.png")
    assert "(1 failed and 3 dropped early candidates not shown)" in captured[1]["suptitle"]
    rows[9]["n_resources"] = 12000  # halving: rows trained on different numbers of images
    search_plots.plot_search_scores(rows, tmp_path / "halving.png")
    assert captured[2]["axes"][0]["yticklabels"][-1] == "c9 (12,000 img)"


def test_search_scores_tell_invalid_from_failed_candidates(tmp_path, captured):
    rows = cv_results(failed=(2, 6))
    rows[2]["status"] = "invalid"  # could not run at all (shapes), found before training
    search_plots.plot_search_scores(rows, tmp_path / "s.png")
    ax = captured[0]["axes"][0]
    assert ax["yticklabels"][:2] == ["c2", "c6"]
    assert [t for t, _ in ax["texts"]] == ["invalid", "failed"]
    search_plots.plot_score_vs_params(rows, ["dropout"], tmp_path / "p.png")
    assert "(1 failed and 1 invalid candidates not shown)" in captured[1]["suptitle"]


def test_search_scores_all_failed_and_empty(tmp_path):
    search_plots.plot_search_scores(cv_results(3, failed=(0, 1, 2)), tmp_path / "a" / "s.png")
    check_png(tmp_path / "a" / "s.png")
    search_plots.plot_search_scores([], tmp_path / "b" / "s.png")
    check_png(tmp_path / "b" / "s.png")


def test_score_vs_params(tmp_path, captured):
    names = ["learning_rate", "dropout", "optimizer", "filters"]
    search_plots.plot_score_vs_params(cv_results(), names, tmp_path / "params.png")
    check_png(tmp_path / "params.png")
    axes = captured[0]["axes"]
    assert [a["title"] for a in axes[:4]] == names
    assert axes[2]["xticklabels"] == ["adam", "sgd"]  # categorical axis
    assert "1 failed candidate not shown" in captured[0]["suptitle"]
    # Failed candidate skipped: 9 points + the highlighted best in each panel.
    assert len(axes[0]["lines"][0].get_xdata()) == 9


def test_score_vs_params_single_param(tmp_path):
    search_plots.plot_score_vs_params(cv_results(4, failed=()), ["dropout"], tmp_path / "p.png")
    check_png(tmp_path / "p.png", min_width=600)


def test_failed_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "cm.png"
    target.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        plots.plot_confusion_matrix(fake_cm(2), CIFAR[:2], target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]


@pytest.mark.parametrize("module", ["plots.py", "metrics.py"])
def test_no_tensorflow_import(module):
    src = Path(plots.__file__).with_name(module).read_text()
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"tensorflow", "keras"}


def test_figures_are_freed(tmp_path, monkeypatch):
    import gc
    import weakref

    refs, real_save = [], plots.save
    monkeypatch.setattr(
        plots, "save", lambda fig, path: (refs.append(weakref.ref(fig)), real_save(fig, path))
    )
    plots.plot_confusion_matrix(fake_cm(3), CIFAR[:3], tmp_path / "a.png")
    plots.plot_training_curves(history(), tmp_path / "b.png")
    gc.collect()
    assert len(refs) == 2 and all(r() is None for r in refs)


def completed(params: list[dict]) -> list[dict]:
    """Rows of completed candidates with these parameters, scores rising with the index."""
    return [
        {
            "candidate": i,
            "status": "completed",
            "mean_score": 0.5 + i / 100,
            "std_score": float("nan"),
            "fold_scores": [0.5],
            "params": p,
        }
        for i, p in enumerate(params)
    ]


def test_score_vs_params_draws_choices_as_categories(tmp_path, captured):
    """A list of choices gets one tick per value drawn (no 15.2-16.8 filters); a randint
    distribution gets integer ticks."""
    rows = completed([{"filters": f, "units": u} for f, u in [(16, 101), (16, 340), (64, 707)]])
    search_plots.plot_score_vs_params(rows, ["filters", "units"], tmp_path / "p.png", categorical={"filters"})
    filters, units = captured[0]["axes"][:2]
    assert filters["xticklabels"] == ["16", "64"]
    assert all(t.lstrip("\N{MINUS SIGN}-").isdigit() for t in units["xticklabels"] if t)


def test_a_parameter_some_candidates_lack_is_ticked_not_set_then_numbers_in_order(tmp_path, captured):
    """A structure search draws hidden.units only for the candidates with a hidden layer:
    the others are '(not set)', first, and the numbers follow by value (not as text)."""
    rows = completed([{} if u is None else {"units": u} for u in [980, None, 51, 207]])
    search_plots.plot_score_vs_params(rows, ["units"], tmp_path / "p.png")
    assert captured[0]["axes"][0]["xticklabels"] == ["(not set)", "51", "207", "980"]


def test_short_training_times_are_labelled_in_seconds():
    from cnn_cifar.results.plots import _duration

    assert [_duration(m) for m in (0.004, 0.5, 1.99, 2, 58.3)] == ["0 s", "30 s", "119 s", "2 min", "58 min"]


def _timed_runs(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "name": f"run_{i}",
            "minutes": float(rng.uniform(1, 30)),
            "test_accuracy": float(rng.uniform(0.4, 0.75)),
            "val_accuracy": list(rng.uniform(0.3, 0.7, 5)),
            "reference": i == 3,
        }
        for i in range(n)
    ]


def test_accuracy_vs_time_names_every_run_of_a_few(tmp_path, captured):
    runs = _timed_runs(4)
    plots.plot_accuracy_vs_time(runs, tmp_path / "t.png")
    check_png(tmp_path / "t.png")
    by_time = [r["name"] for r in sorted(runs, key=lambda r: r["minutes"])]
    assert [t.split(":")[0] for t in captured[0]["axes"][0]["legend"]] == by_time


def test_accuracy_vs_time_of_300_runs_names_the_best_and_the_reference_and_fits(tmp_path, captured):
    runs = _timed_runs(300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied" when the legend overflowed
        plots.plot_accuracy_vs_time(runs, tmp_path / "t.png")
    check_png(tmp_path / "t.png")
    legend = captured[0]["axes"][0]["legend"]
    best = sorted((r for r in runs if not r["reference"]), key=lambda r: -r["test_accuracy"])[:9]
    assert {t.split(":")[0] for t in legend[:-1]} == {"run_3"} | {r["name"] for r in best}
    assert legend[-1] == "290 other runs"

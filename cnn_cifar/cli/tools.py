"""The commands that read what runs left: predict, report and compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..commands.compare import compare as run_compare, format_text
from ..commands.fold_scores import load
from ..commands.predict import format_predictions, predict_files
from ..commands.report import screen_table, write_report
from ..core.console import show
from ..core.files import MODEL_FILE
from ..core.vocabulary import ALPHA, UserError
from .common import json_option, outcomes, results_dir_option, start_backend


@click.command()
@click.argument("model", metavar="MODEL | RUN_DIR", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option(
    "--top-k",
    "-k",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many classes to show per image.",
)
@json_option
@outcomes
def predict(model, images, top_k, as_json):
    """Classify IMAGES (PNG or JPEG, any size) with a MODEL saved by `evaluate`.

    Each image is decoded as training decodes an image folder's file, then converted to
    the model's channels and resized to its input. Its pixels are used as stored: a JPEG's
    EXIF orientation is not applied, in training or here (rotate a photo's pixels first,
    e.g. `exiftran -ai`). GIF, WebP and other formats, animated PNGs, CMYK images and
    images with transparent pixels are refused, as training refuses them. A missing,
    unreadable or refused image is reported on stderr in one line naming it and the
    others are still classified; the exit status is then 1.

    \b
    Examples:
      cnn-cifar predict results/RUN/model.keras cat.jpg truck.png
      cnn-cifar predict results/RUN/model.keras photos/*.jpg --top-k 1 --json
    """
    if Path(model).is_dir():  # an evaluate run folder: its model
        if not (Path(model) / MODEL_FILE).is_file():
            raise UserError(f"{model}: no {MODEL_FILE} here (an evaluate run folder has one)")
        model = str(Path(model) / MODEL_FILE)
    if not Path(model).is_file():  # before TensorFlow starts (seconds)
        raise UserError(f"{model}: no such model file")
    start_backend()
    result = predict_files(model, images, top_k)
    for failure in result["errors"]:
        click.echo(f"Error: {failure['error']}", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif result["predictions"]:
        click.echo(format_predictions(result))
    if result["errors"]:
        sys.exit(1)


@click.command()
@results_dir_option("The folder of run folders.")
@outcomes
def report(results_dir):
    """Tabulate every run under --results-dir: what it ran on (data file, --subset, --set
    overrides), CV mean +/- std (cv, search) or test accuracy and macro F1 (evaluate),
    epochs, wall time, date and status (finished, failed, interrupted, running, stale:
    recorded as running by a process that is gone, or unreadable).

    Writes report.md and report.csv into --results-dir and prints the table; with finished
    evaluate runs, also accuracy_vs_time.png (test accuracy against training minutes).

    \b
    Examples:
      cnn-cifar report
      cnn-cifar report --results-dir ~/experiments/results
    """
    if not Path(results_dir).is_dir():
        raise UserError(f"{results_dir}: no such folder (no runs yet)")
    rows, written = write_report(results_dir)
    show(
        screen_table(rows) if rows else f"no runs under {results_dir} yet",
        "written: " + ", ".join(map(str, written)),
    )


@click.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN_A RUN_B [RUN_C ...]")
@click.option(
    "--top",
    type=click.IntRange(min=2),
    metavar="N",
    help="Compare the N best candidates of the one search run given (those that scored "
    "every fold, at the last rung of a halving search).",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=ALPHA,
    show_default=True,
    help="Significance level; the intervals are at 1 - alpha.",
)
@json_option
@outcomes
def compare(runs, top, alpha, as_json):
    """Is one cross-validated score really better than another? Pairs the fold scores of
    cv runs (or search candidates) split by split and tests each pair's difference with
    the corrected resampled t-test of Nadeau & Bengio (2003), which allows for the
    overlap of the folds' training sets; more than two runs: every pair, Holm-corrected.

    Prints per pair the mean difference, its confidence interval, t, p and a verdict,
    with the number of folds (cv.n_repeats) that would settle an open question. Runs on
    other splits (data, subset, cv block or seed) are refused. A search candidate is
    RUN:ID, the id the search's ranking, cv_results.csv and best.json show.

    \b
    Examples:
      cnn-cifar compare results/*_cv_two_conv results/*_cv_two_conv_hidden
      cnn-cifar compare results/RUN_A results/RUN_B results/RUN_C --json
      cnn-cifar compare results/SEARCH_RUN:3 results/SEARCH_RUN:7
      cnn-cifar compare results/SEARCH_RUN --top 3
    """
    doc = run_compare(load(list(runs), top), alpha)
    if as_json:
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
    else:
        show(*format_text(doc))

"""The `cnn-cifar` command line. Each command validates everything it can (config schema,
data path, layer shapes) before loading data or training, and reports a user mistake as
one line with exit status 2."""
from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import click

from .config import Config, ConfigError, dump_yaml, load_config

RESULTS_ENV = "CNN_CIFAR_RESULTS"


class UserError(click.ClickException):
    """A mistake in the user's input: `Error: <one line>`, exit status 2."""
    exit_code = 2


def user_errors(fn):
    """Turn config and data errors into one-line UserErrors (no traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .data import DataError
        try:
            return fn(*args, **kwargs)
        except (ConfigError, DataError) as e:
            raise UserError(str(e)) from None
    return wrapper


def common_options(fn):
    """--data, --subset, --set, --results-dir, --threads, shared by the training commands."""
    options = [
        click.option("--data", "data_path", metavar="PATH", envvar="CNN_CIFAR_DATA",
                     help="Data set to use instead of the config's: a cifar-10-python.tar.gz or "
                          "cifar-10-batches-py/ folder, an image folder or .tar/.tar.gz/.tar.xz of one "
                          "(train/<class>/*, test/<class>/*), or an .npz. Env: CNN_CIFAR_DATA."),
        click.option("--subset", type=click.IntRange(min=10), metavar="N",
                     help="Use a stratified, seeded sample of N training images (the test set "
                          "is cut in the same proportion). For smoke runs."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a setting, e.g. --set conv2.kernel=9 --set train.epochs=5. "
                          "Repeatable; KEY must exist (a layer name or data/model/train/cv/search)."),
        click.option("--results-dir", type=click.Path(file_okay=False), envvar=RESULTS_ENV,
                     default="results", show_default=True,
                     help="Where run folders are created. Env: CNN_CIFAR_RESULTS."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Compute threads for training (default: all cores)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnn-cifar")
def main():
    """Declare CNNs in YAML, cross-validate them, search their hyperparameters and
    evaluate the winner on the CIFAR-10 test set.

    \b
    Examples:
      cnn-cifar cv configs/two_conv.yaml
      cnn-cifar cv configs/two_conv.yaml --data cifar10-jpeg.tar.xz --subset 5000
      cnn-cifar search configs/search.yaml
      cnn-cifar evaluate --best
    """


def prepare(config_path: str, overrides, data_path, subset):
    """Load and validate the config, resolve the data and check the layer shapes on it;
    nothing is decoded or trained yet."""
    from .experiment import check_layers, probe, resolve_data
    cfg = load_config(config_path, list(overrides))
    data = resolve_data(cfg, data_path, subset)
    input_shape, class_names = probe(data)
    check_layers(cfg, input_shape, len(class_names), config_path)
    return cfg, data


def start_run(results_dir, command: str, cfg: Config, overrides) -> Path:
    from .runs import attach_log, new_run, write_text_atomic
    run_dir = new_run(results_dir, command, cfg.name)
    write_text_atomic(run_dir / "config.yaml", dump_yaml(cfg))
    write_text_atomic(run_dir / "overrides.txt", "".join(f"{o}\n" for o in overrides))
    attach_log(run_dir)
    return run_dir


def quiet_tensorflow() -> None:
    import logging
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@common_options
@user_errors
def cv(config, data_path, subset, overrides, results_dir, threads):
    """Cross-validate the model in CONFIG (StratifiedShuffleSplit on the training set).

    Writes a new run folder with the resolved config, per-fold accuracy, epochs and fit
    time (cv.json) and a log, and prints a summary table.

    \b
    Examples:
      cnn-cifar cv configs/two_conv.yaml
      cnn-cifar cv configs/one_conv.yaml --set cv.n_splits=5 --set train.epochs=10
      cnn-cifar cv configs/two_conv.yaml --data cifar10-jpeg.tar.xz --subset 5000
    """
    from .cv import run_cv, summary_table
    from .runs import finish_run
    cfg, data = prepare(config, overrides, data_path, subset)
    quiet_tensorflow()
    run_dir = start_run(results_dir, "cv", cfg, overrides)
    started = time.time()
    click.echo(f"run folder: {run_dir}", err=True)
    try:
        summary = run_cv(cfg, data, run_dir, threads=threads)
    except KeyboardInterrupt:
        finish_run(run_dir, "interrupted", started)
        raise UserError(f"interrupted; partial log in {run_dir}") from None
    finish_run(run_dir, "ok", started, mean_accuracy=summary["mean_accuracy"],
               std_accuracy=summary["std_accuracy"])
    click.echo(summary_table(summary))
    click.echo(f"results: {run_dir}")


if __name__ == "__main__":
    main()

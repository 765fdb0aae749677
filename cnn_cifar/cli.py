"""The `cnn-cifar` command line. Each command validates everything it can (config schema,
data path, layer shapes) before loading data or training, and reports a user mistake as
one line with exit status 2."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from . import __version__
from .config import ConfigError, dump_yaml, find_config, load_config
from .files import BEST_FILE, CV_RESULTS_FILE, one_line
from .runs import Run

RESULTS_ENV = "CNN_CIFAR_RESULTS"


class UserError(click.ClickException):
    """A mistake in the user's input: `Error: <one line>`, exit status 2."""

    exit_code = 2


class Stopped(click.ClickException):
    """Ctrl-C or SIGTERM: the run is recorded interrupted; exit status 130 as for SIGINT."""

    exit_code = 130


def outcomes(fn):
    """One line and one exit status per way a command ends: 0 done, 2 a user's mistake
    (config, data, options), 130 Ctrl-C or SIGTERM, 1 anything else (a machine's limit
    such as a full disk, or a failure inside a run, whose traceback is in its log.txt)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .data import DataError
        from .search import SearchError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, DataError, SearchError) as e:
            raise UserError(str(e)) from None
        except KeyboardInterrupt:
            raise Stopped("interrupted") from None
        except OSError as e:
            raise click.ClickException(_os_error(e)) from None
        except Exception as e:
            log_file = getattr(e, "run_log", None)
            if log_file is None:
                raise  # a bug before any run: show where
            raise click.ClickException(f"{one_line(e)} (traceback in {log_file})") from None

    return wrapper


def _os_error(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or one_line(e)}"


def common_options(fn):
    """--data, --subset, --set, --results-dir, --threads, shared by the training commands."""
    options = [
        click.option(
            "--data",
            "data_path",
            metavar="PATH",
            envvar="CNN_CIFAR_DATA",
            help="Data set to use instead of the config's: a cifar-10-python.tar.gz or "
            "cifar-10-batches-py/ folder, an image folder or .tar/.tar.gz/.tar.xz of one "
            "(train/<class>/*, test/<class>/*), or an .npz. Env: CNN_CIFAR_DATA.",
        ),
        click.option(
            "--subset",
            type=click.IntRange(min=10),
            metavar="N",
            help="Use a stratified, seeded sample of N training images (the test set "
            "is cut in the same proportion). For smoke runs.",
        ),
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a setting, e.g. --set conv2.kernel=9 --set train.epochs=5. "
            "Repeatable; KEY must exist (a layer name or data/model/train/cv/search).",
        ),
        click.option(
            "--results-dir",
            type=click.Path(file_okay=False),
            envvar=RESULTS_ENV,
            default="results",
            show_default=True,
            help="Where run folders are created. Env: CNN_CIFAR_RESULTS.",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            default=None,
            help="Compute threads for training (default: all cores).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cnn-cifar")
def main():
    """Declare CNNs in YAML, cross-validate them, search their hyperparameters and
    evaluate the winner on the CIFAR-10 test set.

    Every training command reads CIFAR-10 from --data PATH (or CNN_CIFAR_DATA): the
    official cifar-10-python.tar.gz, its extracted folder, an image folder or archive, or
    an .npz. Without it, Keras downloads CIFAR-10 (needs internet).

    CONFIG is a YAML file, or the name of a config shipped with the package (two_conv,
    two_conv_hidden, final, search, ...; any install has them, e.g. `cnn-cifar cv two_conv`).

    \b
    Examples:
      export CNN_CIFAR_DATA=~/data/cifar-10-python.tar.gz
      cnn-cifar cv configs/two_conv.yaml --subset 5000
      cnn-cifar cv configs/two_conv.yaml --data ~/data/cifar-10-python.tar.gz
      cnn-cifar search configs/search.yaml --jobs 2
      cnn-cifar evaluate --best
      cnn-cifar compare results/RUN_A results/RUN_B
      cnn-cifar report
    """


def prepare(config_path: str, overrides, data_path, subset, search: bool = False):
    """Load and validate the config (with `search`, its search block too), resolve the
    data and check the layer shapes on it; nothing is decoded or trained yet. The config
    returned carries the data it runs on, so its saved copy repeats the run."""
    from .experiment import check_layers, probe, resolve_data

    cfg = load_config(config_path, list(overrides))
    if search:
        from .space import parse_space

        if cfg.search is None:
            raise UserError(f"{config_path}: no search: block to run (see configs/search.yaml)")
        parse_space(cfg, config_path)  # before the data, which may take a while
    data = resolve_data(cfg, data_path, subset, source=config_path)
    input_shape, class_names = probe(data)
    check_layers(cfg, input_shape, len(class_names), config_path)
    return cfg.model_copy(update={"data": data}), data


def new_run(results_dir, command: str, cfg, overrides, hint: str | None = None) -> Run:
    return Run(results_dir, command, cfg.name, dump_yaml(cfg), overrides, hint=hint)


def start_backend(threads: int | None = None) -> None:
    """Start Keras' backend quietly, with --threads applied (see runtime.configure_threads)."""
    from .runtime import configure_threads

    configure_threads(threads)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Folds fitted at once, each in its own process with cores // N threads.",
)
@common_options
@outcomes
def cv(config, jobs, data_path, subset, overrides, results_dir, threads):
    """Cross-validate the model in CONFIG (StratifiedShuffleSplit on the training set).

    Writes a new run folder with the resolved config, per-fold accuracy, epochs and fit
    time (cv.json) and a log, and prints a summary table.

    \b
    Examples:
      cnn-cifar cv configs/two_conv.yaml
      cnn-cifar cv configs/one_conv.yaml --set cv.n_splits=5 --set train.epochs=10
      cnn-cifar cv configs/two_conv.yaml --data cifar10-jpeg.tar.xz --subset 5000
    """
    cfg, data = prepare(config, overrides, data_path, subset)
    start_backend(threads if jobs == 1 else None)
    from .cv import run_cv, summary_table  # imports Keras: after the checks

    with new_run(results_dir, "cv", cfg, overrides) as run:
        click.echo(f"run folder: {run.dir}", err=True)
        summary = run_cv(cfg, data, run.dir, threads=threads, jobs=jobs)
        run.record(mean_accuracy=summary["mean_accuracy"], std_accuracy=summary["std_accuracy"])
    click.echo(summary_table(summary))
    click.echo(f"results: {run.dir}")


@main.command()
@click.argument("target", required=False, metavar="[CONFIG | SEARCH_RUN]")
@click.option(
    "--best",
    is_flag=True,
    help="Evaluate the best candidate of a search: of SEARCH_RUN if given, else of "
    "the latest search run under --results-dir.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Train exactly N epochs, early stopping off (default: the config's epochs with its early stopping).",
)
@common_options
@outcomes
def evaluate(target, best, epochs, data_path, subset, overrides, results_dir, threads):
    """Train CONFIG (or a search's best candidate) on the whole training set and score it
    once on the test set.

    Writes a new run folder: metrics.json, classification_report.txt, confusion_matrix.png
    and .csv, training_curves.png, misclassified.png, model.keras (for `predict`) and
    summary.md. The test set is used for nothing else, anywhere.

    \b
    Examples:
      cnn-cifar evaluate configs/final.yaml
      cnn-cifar evaluate --best
      cnn-cifar evaluate --best results/2025-01-01_10-00-00_search_search
      cnn-cifar evaluate configs/final.yaml --epochs 5 --subset 2000
    """
    cfg, data, search = prepare_evaluate(target, best, overrides, data_path, subset, results_dir)
    from .evaluate import fixed_epochs

    cfg = fixed_epochs(cfg, epochs)
    start_backend(threads)
    from .evaluate import evaluate as run_evaluate, headline
    from .progress import EpochProgress, Progress  # imports Keras: after the checks

    with new_run(results_dir, "evaluate", cfg, overrides) as run:
        click.echo(f"run folder: {run.dir}" + (f" (best of {search['run']})" if search else ""), err=True)
        progress = Progress(1, label="training")
        result = run_evaluate(
            cfg,
            data,
            run.dir,
            search=search,
            threads=threads,
            callbacks=[EpochProgress(progress, cfg.name, cfg.train.epochs)],
        )
        progress.update()
        run.record(accuracy=result["accuracy"], macro_f1=result["macro_f1"], search_run=result["search_run"])
    click.echo(headline(result))
    click.echo(f"results: {run.dir}")


def prepare_evaluate(target, best, overrides, data_path, subset, results_dir):
    """(config, data, search facts or None), all checked before anything is trained."""
    if not best:
        if target is None:
            raise click.UsageError("give a CONFIG file, or --best [SEARCH_RUN]")
        try:
            find_config(target)
        except ConfigError as e:
            raise UserError(f"{e}; for a search run folder use --best") from None
        return (*prepare(target, overrides, data_path, subset), None)
    from .evaluate import best_config, find_search_run
    from .experiment import check_layers, probe, resolve_data

    folder = find_search_run(results_dir, target)
    cfg, search = best_config(folder, overrides)
    data = resolve_data(cfg, data_path, subset, source=str(folder / BEST_FILE))
    input_shape, class_names = probe(data)
    check_layers(cfg, input_shape, len(class_names), str(folder / BEST_FILE))
    return cfg.model_copy(update={"data": data}), data, search


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option(
    "--top-k",
    "-k",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many classes to show per image.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@outcomes
def predict(model, images, top_k, as_json):
    """Classify IMAGES (PNG or JPEG, any size) with a MODEL saved by `evaluate`.

    Each image is converted to the model's channels and resized to its input. A missing
    or unreadable image is reported on stderr and the others are still classified; the
    exit status is then 1.

    \b
    Examples:
      cnn-cifar predict results/RUN/model.keras cat.jpg truck.png
      cnn-cifar predict results/RUN/model.keras photos/*.jpg --top-k 1 --json
    """
    import json

    if not Path(model).is_file():  # before TensorFlow starts (seconds)
        raise UserError(f"{model}: no such model file")
    from .predict import PredictError, format_predictions, predict_files

    start_backend()
    try:
        result = predict_files(model, images, top_k)
    except PredictError as e:
        raise UserError(str(e)) from None
    for failure in result["errors"]:
        click.echo(f"Error: {failure['error']}", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif result["predictions"]:
        click.echo(format_predictions(result))
    if result["errors"]:
        sys.exit(1)


@main.command()
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False),
    envvar=RESULTS_ENV,
    default="results",
    show_default=True,
    help="The folder of run folders. Env: CNN_CIFAR_RESULTS.",
)
@outcomes
def report(results_dir):
    """Tabulate every run under --results-dir: CV mean +/- std (cv, search) or test accuracy
    and macro F1 (evaluate), epochs, wall time, date and status (finished, failed,
    interrupted, running, or stale: recorded as running by a process that is gone).

    Writes report.md and report.csv into --results-dir and prints the table.

    \b
    Examples:
      cnn-cifar report
      cnn-cifar report --results-dir ~/experiments/results
    """
    from .report import text_table, write_report

    if not Path(results_dir).is_dir():
        raise UserError(f"{results_dir}: no such folder (no runs yet)")
    rows, md_path, csv_path = write_report(results_dir)
    click.echo(text_table(rows) if rows else f"no runs under {results_dir} yet")
    click.echo(f"written: {md_path}, {csv_path}")


@main.command()
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
    default=0.05,
    show_default=True,
    help="Significance level; the intervals are at 1 - alpha.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@outcomes
def compare(runs, top, alpha, as_json):
    """Is one cross-validated score really better than another? Pairs the fold scores of
    cv runs (or search candidates) split by split and tests each pair's difference with
    the corrected resampled t-test of Nadeau & Bengio (2003), which allows for the
    overlap of the folds' training sets; more than two runs: every pair, Holm-corrected.

    Prints per pair the mean difference, its confidence interval, t, p and a verdict,
    with the number of folds (cv.n_repeats) that would settle an open question. Runs on
    other splits (data, subset, cv block or seed) are refused. A search candidate is
    RUN:N, numbered from 1 as the search prints it (cv_results.csv's candidate + 1).

    \b
    Examples:
      cnn-cifar compare results/*_cv_two_conv results/*_cv_two_conv_hidden
      cnn-cifar compare results/RUN_A results/RUN_B results/RUN_C --json
      cnn-cifar compare results/SEARCH_RUN:3 results/SEARCH_RUN:7
      cnn-cifar compare results/SEARCH_RUN --top 3
    """
    import json

    from .compare import CompareError, compare as run_compare, format_text, load

    try:
        doc = run_compare(load(list(runs), top), alpha)
    except CompareError as e:
        raise UserError(str(e)) from None
    click.echo(json.dumps(doc, indent=2, allow_nan=False) if as_json else format_text(doc))


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--resume",
    "resume_dir",
    metavar="RUN_DIR",
    type=click.Path(exists=True, file_okay=False),
    help="Finish a stopped search: skip its finished fits and run the rest with the run's "
    "saved config and data (no CONFIG, --set, --data or --subset).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="List every candidate with its parameter count, multiply-accumulates per image "
    "and each layer's output shape; train nothing.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Fits run at once. Default 1 (in this process, with all cores). N > 1: N loky "
    "worker processes with max(1, cores // N) threads each, unless --threads. "
    "With --backend dask the default is every worker thread of the cluster.",
)
@click.option(
    "--backend",
    type=click.Choice(["loky", "dask"]),
    default="loky",
    show_default=True,
    help="loky: processes on this machine. dask: a dask.distributed cluster (--scheduler); "
    "workers need only this package and the data path. "
    "Install with: pip install 'cnn-cifar[dask]'.",
)
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="The dask scheduler for --backend dask.")
@common_options
@click.pass_context
@outcomes
def search(
    ctx,
    config,
    resume_dir,
    dry_run,
    jobs,
    backend,
    scheduler,
    data_path,
    subset,
    overrides,
    results_dir,
    threads,
):
    """Search the hyperparameters of CONFIG's search: block (racing, random or halving).

    Space entries are estimator parameters (conv2__kernel, hidden__units, train__batch_size,
    train__optimizer__learning_rate): a list of choices, {randint: [low, high]} (integers,
    high excluded, as scipy), {uniform: [low, high]} or {loguniform: [low, high]} (floats,
    both ends included). strategy: random fits RandomizedSearchCV's candidates on the cv
    block's splits; strategy: racing (the default) fits the same candidates and splits fold
    by fold, dropping a candidate once its mean score is more than search.margin (0.03)
    below the best; strategy: halving trains every candidate on min_resources images of each
    fold, keeps the best 1/factor and multiplies the images by factor per rung, the last rung
    on the full fold. Each candidate ends completed, dropped (racing), failed (a fit raised) or
    invalid (its shapes or settings cannot work, found before training), with the reason.
    Every finished fit is saved at once: a killed search resumes with --resume. Writes
    cv_results.csv, ranking.txt, best.json (for evaluate --best), scores.png and
    score_vs_params.png. Threads per fit: --threads, default all cores
    (cores // N with --jobs N).

    \b
    Examples:
      cnn-cifar search configs/search.yaml --dry-run
      cnn-cifar search configs/search.yaml --subset 5000 --set search.n_iter=4 --jobs 2
      cnn-cifar search configs/search.yaml --set search.strategy=random
      cnn-cifar search --resume results/2024-05-01_10-00-00_search_search
      cnn-cifar search configs/search.yaml --backend dask --scheduler tcp://10.0.0.5:8786
    """
    from . import search as S

    if (backend == "dask") != bool(scheduler):
        raise UserError("--backend dask and --scheduler tcp://HOST:PORT go together")
    S.require_backend(backend)
    cfg, data, source, candidates = _search_inputs(ctx, config, resume_dir, data_path, subset, overrides)
    if dry_run:
        click.echo(S.dry_run_report(cfg, candidates))
        return
    start_backend(S.fit_threads(jobs, backend, threads))
    plan = S.plan_search(cfg, data, candidates, source)
    with S.backend_context(backend, scheduler):  # dask: connect before a run folder exists
        if resume_dir:
            S.check_candidates(Path(resume_dir), plan.candidates)
        run = Run(results_dir, "search", cfg.name, dump_yaml(cfg), overrides, resume=resume_dir)
        with run:
            run.hint = "finished fits are saved. Resume with:\n  " + S.resume_command(
                run.dir, jobs, backend, scheduler
            )
            click.echo(f"run folder: {run.dir}", err=True)
            if not resume_dir:
                S.save_spec(run.dir, plan.cfg, plan.data, source, plan.candidates)
            summary = S.run_search(plan, run.dir, jobs=jobs, threads=threads, backend=backend)
            best = summary["best"]
            if best is None:
                raise RuntimeError(f"every candidate failed (reasons in {run.dir / CV_RESULTS_FILE})")
            run.record(
                best_score=best["best_score"],
                best_params=best["best_params"],
                best_candidate=best["best_candidate"],
                n_fits=summary["n_fits"],
            )
    click.echo(summary["ranking"])
    click.echo(
        f"best: candidate {best['best_candidate'] + 1}, {best['scoring']} {best['best_score']:.4f} "
        f"+/- {best['best_std']:.4f} (one std over the folds) for {best['best_params']!r}"
    )
    click.echo(f"results: {run.dir}")


def _search_inputs(ctx, config, resume_dir, data_path, subset, overrides):
    """(config, data, source, candidates) of a new search, or of the run being resumed."""
    from click.core import ParameterSource

    from . import search as S
    from .experiment import probe

    given = [
        name
        for name in ("data_path", "subset", "overrides")
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    ]
    if resume_dir:
        if config or given:
            raise UserError(
                "--resume RUN_DIR continues with the run's saved config and data; "
                "drop CONFIG, --set, --data and --subset"
            )
        cfg, data, source = S.load_spec(resume_dir)
    elif not config:
        raise UserError("give a CONFIG to search, or --resume RUN_DIR")
    else:
        cfg, data = prepare(config, overrides, data_path, subset, search=True)
        cfg = S.pin(cfg)
        source = config
    input_shape, class_names = probe(data)
    return cfg, data, source, S.make_candidates(cfg, input_shape, len(class_names), source)


if __name__ == "__main__":
    main()

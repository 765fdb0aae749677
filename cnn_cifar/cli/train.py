"""The training commands: cv, evaluate and search. Each checks everything it can (config,
data path, layer shapes) before it decodes data or trains, then runs inside one `Run`."""

from __future__ import annotations

import click
from click.core import ParameterSource

from ..commands import evaluate as evaluating, search as searching
from ..commands.cv import run_cv, summary_lines
from ..config.errors import ConfigError
from ..config.loader import find_config, load_config
from ..core import console
from ..core.files import BEST_FILE
from ..core.vocabulary import UserError
from ..data.dataset import load_checked
from ..tracking import evaluated
from .common import checked, common_options, new_run, outcomes, prepare, start_backend, tracked_config


@click.command()
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
    ds = load_checked(data, test_size=cfg.cv.test_size)  # a data mistake: no run folder
    start_backend(threads if jobs == 1 else None)
    with new_run(results_dir, "cv", cfg, overrides) as run:
        click.echo(f"run folder: {run.dir}", err=True)
        summary = run_cv(cfg, data, ds, run.dir, threads=threads, jobs=jobs, tracker=run.tracker)
        run.record(mean_accuracy=summary["mean_accuracy"], std_accuracy=summary["std_accuracy"])
    console.show(*summary_lines(summary))
    click.echo(f"results: {run.dir}")


@click.command()
@click.argument("target", required=False, metavar="[CONFIG | SEARCH_RUN]")
@click.option(
    "--best",
    is_flag=True,
    help="Evaluate the best candidate of a search: of SEARCH_RUN if given, else of "
    "the latest search run under --results-dir. It runs as the search did: on its data "
    "and --subset, with its --set settings (printed at the start).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Train exactly N epochs, early stopping off (default: the config's epochs with its early stopping).",
)
@click.option(
    "--full-data",
    is_flag=True,
    help="Train and test on the whole data set: no subset, neither a --best search's nor the config's.",
)
@common_options
@outcomes
def evaluate(target, best, epochs, full_data, data_path, subset, overrides, results_dir, threads):
    """Train CONFIG (or a search's best candidate) on the whole training set and score it
    once on the test set.

    --best takes the search's data set, its --subset (the test set cut to match) and its
    --set settings (those evaluate uses: not search.* or cv.*), and says so before it starts;
    --full-data, --subset, --epochs and --set change them.

    Writes a new run folder: metrics.json, classification_report.txt, confusion_matrix.png
    and .csv, training_curves.png, misclassified.png, model.keras (for `predict`) and
    summary.md. The test set is used for nothing else, anywhere.

    \b
    Examples:
      cnn-cifar evaluate configs/final.yaml
      cnn-cifar evaluate --best
      cnn-cifar evaluate --best results/2025-01-01_10-00-00_search_search
      cnn-cifar evaluate --best --full-data    # all the images, after a --subset search
      cnn-cifar evaluate configs/final.yaml --epochs 5 --subset 2000
    """
    if full_data and subset is not None:
        raise UserError("--full-data and --subset N contradict each other: give one of them")
    overrides = (*overrides, *evaluating.epochs_overrides(epochs))
    cfg, data, search = prepare_evaluate(target, best, overrides, data_path, subset, results_dir, full_data)
    for line in evaluating.inherited_lines(search, full_data):
        click.echo(line, err=True)
    ds = load_checked(data)  # a data mistake: no run folder
    start_backend(threads)
    with new_run(results_dir, "evaluate", cfg, overrides) as run:
        click.echo(f"run folder: {run.dir}" + (f" (best of {search['run']})" if search else ""), err=True)
        if search:  # what it takes from the search: recorded however the run ends
            run.record(inherited=search["inherited"])
        with console.progress(1, "training") as progress:
            callback = console.epoch_callback(progress, cfg.name, cfg.train.epochs)
            result = evaluating.evaluate(
                cfg, data, ds, run.dir, search=search, threads=threads, callbacks=[callback]
            )
            progress.advance()
        run.tracker.log_fit("final", {"config": cfg.name}, evaluated(result))
        run.record(accuracy=result["accuracy"], macro_f1=result["macro_f1"], search_run=result["search_run"])
    click.echo(evaluating.headline(result))
    click.echo(f"results: {run.dir}")


def prepare_evaluate(target, best, overrides, data_path, subset, results_dir, full_data=False):
    """(config, data, search facts or None), all checked before anything is trained;
    `full_data` drops the subset (the search's or the config's)."""
    if not best:
        if target is None:
            raise click.UsageError("give a CONFIG file, or --best [SEARCH_RUN]")
        try:
            find_config(target)
        except ConfigError as e:
            raise UserError(f"{e}; for a search run folder use --best") from None
        if not full_data:
            return (*prepare(target, overrides, data_path, subset), None)
        cfg = load_config(target, list(overrides))
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"subset": None})})
        return (*checked(cfg, data_path, subset, target), None)
    folder = evaluating.find_search_run(results_dir, target)
    cfg, search = evaluating.best_config(folder, overrides, subset, full_data)
    return (*checked(cfg, data_path, subset, str(folder / BEST_FILE)), search)


@click.command()
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
    both ends included). A model.layers entry varies the layers themselves: the layer list
    with {optional: ...}, {choice: [...]} (stacks inline or configs by name) and {repeat:
    [1, 2], name: block, layers: [...]} parts, each layer's entries drawn only for the
    candidates that have it (configs/study.yaml). strategy: random fits RandomizedSearchCV's
    candidates on the cv block's splits; strategy: racing (the default) fits the same
    candidates and splits fold by fold, dropping a candidate once its mean score is more
    than search.margin (0.03) below the best, or with search.race_rule: ttest once a
    corrected resampled t-test on its folds so far finds it worse than the leader at
    search.race_alpha (0.05); strategy: halving trains every candidate on
    min_resources images of each fold, keeps the best 1/factor and multiplies the images by
    factor per rung, the last rung on the full fold. Each candidate ends completed, dropped
    (racing), pruned (stopped within its epochs, search.prune), failed (a fit raised) or
    invalid (its shapes, settings or memory cannot work, found before training), with the
    reason.
    Every finished fit is saved at once: a killed search resumes with --resume. Writes
    cv_results.csv, ranking.txt, best.json (for evaluate --best), scores.png and
    score_vs_params.png. Threads per fit: --threads, default all cores
    (cores // N with --jobs N).

    \b
    Examples:
      cnn-cifar search configs/search.yaml --dry-run
      cnn-cifar search configs/study.yaml --subset 5000
      cnn-cifar search configs/search.yaml --subset 5000 --set search.n_iter=4 --jobs 2
      cnn-cifar search configs/search.yaml --set search.strategy=random
      cnn-cifar search --resume results/2024-05-01_10-00-00_search_search
      cnn-cifar search configs/search.yaml --backend dask --scheduler tcp://10.0.0.5:8786
    """
    searching.check_backend(backend, scheduler)
    inputs = prepare_search(ctx, config, resume_dir, data_path, subset, overrides)
    candidates = searching.draw_candidates(inputs)
    if dry_run:
        console.show(*searching.dry_run_lines(inputs, candidates))
        return
    cfg = tracked_config(inputs.cfg, results_dir)  # before the plan: search.json keeps it for --resume
    start_backend(searching.fit_threads(jobs, backend, threads))
    plan = searching.plan(inputs, cfg, candidates)
    with searching.connected(backend, scheduler):  # dask: connect before a run folder exists
        searching.check_resume(inputs, plan)
        run = new_run(results_dir, "search", cfg, overrides, resume=resume_dir)
        with run:
            run.hint = searching.resume_hint(run.dir, jobs, backend, scheduler)
            click.echo(f"run folder: {run.dir}", err=True)
            summary = searching.search(
                inputs, plan, run.dir, jobs=jobs, threads=threads, backend=backend, tracker=run.tracker
            )
            run.record(**searching.run_facts(summary))
    out = console.stdout()
    console.show(*searching.summary_lines(summary, out.is_terminal), console=out)


def prepare_search(ctx, config, resume_dir, data_path, subset, overrides) -> searching.SearchInputs:
    """What a new search, or the run being resumed, starts from: the config and its space
    checked before the data, which may take a while to probe."""
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
        return searching.resumed_search(resume_dir)
    if not config:
        raise UserError("give a CONFIG to search, or --resume RUN_DIR")
    cfg, space = searching.new_search_config(config, overrides)
    cfg, data = checked(cfg, data_path, subset, config)
    return searching.new_search(cfg, data, config, space)

"""What the commands share: the options of the training commands, loading and checking a
config before anything runs, a run's record, and one line and one exit status per way a
command ends."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import click
from click.core import ParameterSource

from ..config import shapes
from ..config.loader import dump_yaml, load_config
from ..config.schema import Config, Data
from ..core.files import one_line
from ..core.vocabulary import DATA_ENV, UserError
from ..data.dataset import probe, resolve_data
from ..results.runs import Run
from ..tracking import RunTracker, check, default_store
from ..training.runtime import available_memory, configure_threads

RESULTS_ENV = "CNN_CIFAR_RESULTS"


class Refused(click.ClickException):
    """A `UserError`, as the CLI prints it: `Error: <one line>`, exit status 2."""

    exit_code = 2


class Stopped(click.ClickException):
    """Ctrl-C or SIGTERM: the run is recorded interrupted; exit status 130 as for SIGINT."""

    exit_code = 130


def outcomes(fn):
    """One line and one exit status per way a command ends: 0 done, 2 a user's mistake
    found before a run folder exists (every `UserError`: config, data, options, run
    folders), 130 Ctrl-C or SIGTERM, 1 anything else (a machine's limit such as a full
    disk, or a failure inside a run, recorded `failed`, its traceback in its log.txt)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            log_file = getattr(e, "run_log", None)  # set by a Run that it failed
            if log_file is None:  # found before a run folder was made
                raise Refused(str(e)) from None
            raise click.ClickException(_unrecorded(f"{one_line(e)} (traceback in {log_file})", e)) from None
        except KeyboardInterrupt as e:
            raise Stopped(_unrecorded("interrupted", e)) from None
        except OSError as e:
            raise click.ClickException(_unrecorded(_os_error(e), e)) from None
        except Exception as e:
            log_file = getattr(e, "run_log", None)
            if log_file is None:
                raise  # a bug before any run: show where
            raise click.ClickException(_unrecorded(f"{one_line(e)} (traceback in {log_file})", e)) from None

    return wrapper


def _unrecorded(line: str, e: BaseException) -> str:
    """The error's line, and, where its run could not write its outcome (a read-only disk),
    that too: run.json then still says running, and the user must hear why."""
    unrecorded = getattr(e, "unrecorded", None)  # set by a Run that could not record it
    return line if unrecorded is None else f"{line}; {unrecorded}"


def _os_error(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or one_line(e)}"


def results_dir_option(what: str):
    return click.option(
        "--results-dir",
        type=click.Path(file_okay=False),
        envvar=RESULTS_ENV,
        default="results",
        show_default=True,
        help=f"{what} Env: {RESULTS_ENV}.",
    )


def writable_results_dir(fn):
    """Refuse a --results-dir that cannot hold run folders (`check_results_dir`) before the
    command starts, so before any data is decoded; not for a command that makes no run
    folder there (search --resume writes into its own, --dry-run writes nothing)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        results_dir = kwargs.get("results_dir")
        if results_dir is not None and not (kwargs.get("resume_dir") or kwargs.get("dry_run")):
            problem = check_results_dir(results_dir)
            if problem:
                ctx = click.get_current_context(silent=True)
                from_env = (
                    ctx is not None and ctx.get_parameter_source("results_dir") == ParameterSource.ENVIRONMENT
                )
                where = f"{RESULTS_ENV}={results_dir}" if from_env else f"--results-dir {results_dir}"
                raise Refused(f"{where}: {problem}")
        return fn(*args, **kwargs)

    return wrapper


def check_results_dir(path: str | Path) -> str | None:
    """Why run folders cannot be made under `path`, or None: a file where a folder must be
    (`FILE/sub`), or a folder this process may not write in (permissions, a read-only
    disk), tried for real on the nearest folder that exists, as root ignores the modes."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a link to nowhere: mkdir would fail on it
            return f"{existing} is a broken link"
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".cnn-cifar-probe."):
            pass
    except OSError as e:
        return f"cannot write in {existing}: {e.strerror or one_line(e)}"
    return None


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")


def _remember(ctx: click.Context, param: click.Parameter, value):
    ctx.meta[f"cnn_cifar.{param.name}"] = value
    return value


# --track and --no-tensorboard: read by new_run (tracked_config), not passed to the commands
track_options = [
    click.option(
        "--track",
        type=click.Choice(["mlflow"]),
        expose_value=False,
        callback=_remember,
        help="Also track the run in MLflow: a parent run for the command, a nested run per "
        "fit, the result files as artifacts; the store is the config's track.mlflow, else "
        "sqlite:///<results dir>/mlflow.db. Install with: pip install 'cnn-cifar[mlflow]'.",
    ),
    click.option(
        "--no-tensorboard",
        is_flag=True,
        expose_value=False,
        callback=_remember,
        help="Write no TensorBoard event files (<run>/tensorboard/, on by default; "
        "the config's track.tensorboard).",
    ),
]


def common_options(fn):
    """--data, --subset, --set, --results-dir, --threads, --track, --no-tensorboard,
    shared by the training commands."""
    options = [
        click.option(
            "--data",
            "data_path",
            metavar="PATH",
            help="Data set to use instead of the config's: a cifar-10-python.tar.gz or "
            "cifar-10-batches-py/ folder, an image folder or .tar/.tar.gz/.tar.xz of one "
            f"(train/<class>/*, test/<class>/*), or an .npz. Env: {DATA_ENV}.",
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
        results_dir_option("Where run folders are created."),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            default=None,
            help="Compute threads for training (default: all cores).",
        ),
        *track_options,
    ]
    fn = writable_results_dir(fn)
    for option in reversed(options):
        fn = option(fn)
    return fn


def prepare(config_path: str, overrides, data_path, subset) -> tuple[Config, Data]:
    """Load and validate the config, resolve the data and check the layer shapes on it;
    nothing is decoded or trained yet."""
    return checked(load_config(config_path, list(overrides)), data_path, subset, config_path)


def checked(cfg: Config, data_path, subset, source: str) -> tuple[Config, Data]:
    """The config with its data resolved (--data, $CNN_CIFAR_DATA, --subset) and its layer
    shapes checked on that data's images; `source` names the config in messages. The
    config returned carries the data it runs on, so its saved copy repeats the run. A model
    that cannot fit in this machine's memory is refused here too (`shapes.fit_memory`)."""
    data = resolve_data(cfg, data_path, subset, source=source)
    input_shape, class_names = probe(data)
    layers = shapes.check(cfg, input_shape, len(class_names), source)
    shapes.check_memory(cfg, layers, input_shape, available_memory(), source)
    return cfg.model_copy(update={"data": data}), data


def tracked_config(cfg, results_dir):
    """The config with --track and --no-tensorboard applied to its track: block, checked
    (MLflow without its extra is a TrackingError, before anything trains)."""
    meta = click.get_current_context(silent=True)
    options = meta.meta if meta is not None else {}
    track = cfg.track
    if options.get("cnn_cifar.track") == "mlflow" and not track.mlflow:
        track = track.model_copy(update={"mlflow": default_store(results_dir)})
    if options.get("cnn_cifar.no_tensorboard"):
        track = track.model_copy(update={"tensorboard": False})
    check(track)
    return cfg.model_copy(update={"track": track})


def new_run(results_dir, command: str, cfg, overrides, hint: str | None = None, resume=None) -> Run:
    """The command's Run, tracked as its config's track: block (with the options) says."""
    cfg = tracked_config(cfg, results_dir)
    return Run(
        results_dir,
        command,
        cfg.name,
        dump_yaml(cfg),
        overrides,
        hint=hint,
        resume=resume,
        tracker=RunTracker(cfg.track),
    )


def start_backend(threads: int | None = None) -> None:
    """Start Keras' backend quietly, with --threads applied (see runtime.configure_threads)."""
    configure_threads(threads)

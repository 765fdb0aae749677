"""`cnn-cifar search`: a new search or the rest of a stopped one, each step checked before the
next costs more (the config and its space, then the data, then the plan), and the run
folder filled by `search.runner`. The CLI makes the run folder and its tracker and passes
them in; this module only drives the search package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config.loader import load_config
from ..config.schema import Config, Data
from ..core.files import CV_RESULTS_FILE
from ..core.tracking import Tracker
from ..core.vocabulary import UserError
from ..data.dataset import probe
from ..results.run_record import check_free
from ..search import executors, journal, runner
from ..search.candidates import FIRST_ID, Candidate, dry_run_report, make_candidates, structure_report
from ..search.runner import Plan
from ..search.space import Space, parse_space
from ..search.structures import inline_config_names, refuse_layer_overrides, shown_params
from ..search.summary import BestCandidate, SearchSummary


@dataclass(frozen=True)
class SearchInputs:
    """What a search starts from, checked: its config (seeds pinned), the data it runs on,
    the config's file (`source`, for messages), its parsed space and the first candidate's
    id; `resume_dir` where it finishes a stopped run."""

    cfg: Config
    data: Data
    source: str
    space: Space
    first_id: int = FIRST_ID
    resume_dir: Path | None = None


def check_backend(backend: str, scheduler: str | None) -> None:
    """--backend dask needs --scheduler (and the other way round) and dask installed."""
    if (backend == "dask") != bool(scheduler):
        raise UserError("--backend dask and --scheduler tcp://HOST:PORT go together")
    executors.require_backend(backend)


def new_search_config(config: str, overrides) -> tuple[Config, Space]:
    """CONFIG with --set applied and its space parsed: every mistake in them is found here,
    before the data, which may take a while to probe, is looked at."""
    cfg = load_config(config, list(overrides))
    if cfg.search is None:
        raise UserError(f"{config}: no search: block to run (see configs/search.yaml)")
    refuse_layer_overrides(cfg, overrides, config)
    cfg = inline_config_names(cfg, config)  # search.json resumes without those files
    return cfg, parse_space(cfg, config)


def new_search(cfg: Config, data: Data, source: str, space: Space) -> SearchInputs:
    """A new search's inputs, once its data is checked: seeds drawn where none are given."""
    return SearchInputs(runner.pin(cfg), data, source, space)


def resumed_search(resume_dir: str | Path) -> SearchInputs:
    """The inputs of the stopped search in `resume_dir`, as its search.json saved them."""
    folder = Path(resume_dir)
    cfg, data, source = journal.load_spec(folder)  # a search run folder, or refused
    check_free(folder)  # a live run's folder: refused before anything slow
    return SearchInputs(cfg, data, source, parse_space(cfg, source), journal.first_id(folder), folder)


def draw_candidates(inputs: SearchInputs) -> list[Candidate]:
    """The search's candidates, each shape-checked on the data's images; nothing decoded."""
    input_shape, class_names = probe(inputs.data)
    return make_candidates(
        inputs.cfg, inputs.space, input_shape, len(class_names), inputs.source, inputs.first_id
    )


def dry_run_lines(inputs: SearchInputs, candidates: list[Candidate]) -> list:
    """What --dry-run prints: every candidate's layers and costs, then the space's structures."""
    input_shape, class_names = probe(inputs.data)
    structures = structure_report(inputs.cfg, inputs.space, input_shape, len(class_names), inputs.source)
    return [*dry_run_report(inputs.cfg, candidates), *structures]


def fit_threads(jobs: int | None, backend: str, threads: int | None) -> int | None:
    """Threads per fit (`search.executors.fit_threads`), for starting the backend."""
    return executors.fit_threads(jobs, backend, threads)


def plan(inputs: SearchInputs, tracked: Config, candidates: list[Candidate]) -> Plan:
    """The folds and the oracle, with the data decoded; `tracked` is the inputs' config with
    its tracking options applied, which search.json keeps for --resume. A budget that
    cannot work is refused here, before a run folder exists."""
    return runner.plan_search(tracked, inputs.data, candidates, inputs.source)


def check_resume(inputs: SearchInputs, planned: Plan) -> None:
    """A resume must draw the candidates its run started with: refused before the run reopens."""
    if inputs.resume_dir is not None:
        journal.check_candidates(inputs.resume_dir, planned.candidates)


def connected(backend: str, scheduler: str | None):
    """Where the fits run: a context to hold open around the run (dask: the cluster)."""
    return executors.backend_context(backend, scheduler)


def resume_hint(run_dir: Path, jobs: int | None, backend: str, scheduler: str | None) -> str:
    """What a search that stops early prints: the command that finishes it."""
    return "finished fits are saved. Resume with:\n  " + runner.resume_command(
        run_dir, jobs, backend, scheduler
    )


def search(
    inputs: SearchInputs,
    planned: Plan,
    run_dir: Path,
    *,
    jobs: int | None = None,
    threads: int | None = None,
    backend: str = "loky",
    tracker: Tracker | None = None,
) -> SearchSummary:
    """Run the planned search in `run_dir` (saving its spec first, unless it is resumed) and
    write its outputs. A search whose every candidate failed is an error of the run."""
    if inputs.resume_dir is None:
        journal.save_spec(run_dir, planned.cfg, planned.data, inputs.source, planned.candidates)
    summary = runner.run_plan(planned, run_dir, jobs=jobs, threads=threads, backend=backend, tracker=tracker)
    best_of(summary)
    return summary


def best_of(summary: SearchSummary) -> BestCandidate:
    """The winner; a search without one failed."""
    if summary.best is None:
        raise RuntimeError(f"every candidate failed (reasons in {summary.run_dir / CV_RESULTS_FILE})")
    return summary.best


def run_facts(summary: SearchSummary) -> dict:
    """What run.json records of a finished search."""
    best = best_of(summary)
    return {
        "best_score": best.score,
        "best_params": best.params,
        "best_candidate": best.candidate,
        "n_fits": summary.n_fits,
    }


def summary_lines(summary: SearchSummary, terminal: bool) -> list:
    """What `cnn-cifar search` prints at the end: the ranking (a table on a terminal), the
    best candidate and the run folder."""
    best = best_of(summary)
    return [
        *(summary.ranking_screen if terminal else [summary.ranking]),
        f"best: candidate {best.candidate}, {best.scoring} {best.score:.4f} "
        f"+/- {best.std:.4f} (one std over the folds) for {shown_params(best.params)!r}",
        f"results: {summary.run_dir}",
    ]

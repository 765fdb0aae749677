"""Candidates: ParameterSampler's draws (what RandomizedSearchCV fits), each resolved into a
config and shape-checked before anything trains; and the --dry-run listing of them."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import shapes
from ..config.errors import ConfigError
from ..config.layers import architecture
from ..config.loader import to_dict
from ..config.names import is_layer_list
from ..config.schema import Config
from ..training.runtime import available_memory
from .oracles import RacingOracle, halving_counts, make_oracle, n_folds
from .space import Space, candidate_config, sample
from .structures import structure_names, structure_of


@dataclass
class Candidate:
    id: int
    params: dict
    config: Config | None = None
    layers: list | None = None  # shapes.infer output
    memory: int | None = None  # bytes one fit needs at least (shapes.fit_memory)
    reason: str | None = None  # why it cannot run, found before training

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def architecture(self) -> str | None:
        """The candidate's layers in one line with their drawn values where it has a drawn
        structure (`conv 64 3x3 relu > pool max 2 > dense 417 relu`); the layer names
        where its config could not be built; None without a structure in the space."""
        found = structure_of(self.params)
        if found is None:
            return None
        return structure_names(found[1]) if self.config is None else architecture(self.config.model.layers)


FIRST_ID = 1  # a candidate's id, the one number every output, file and `compare RUN:ID` uses


def make_candidates(
    cfg: Config, space: Space, input_shape, n_classes: int, source: str, first_id: int = FIRST_ID
) -> list[Candidate]:
    """Sample the parsed space (`space.parse_space`) and check each draw's config and layer
    shapes (nothing trains). Ids count from `first_id`: 1, or what a resumed search's
    candidates.json starts from (searches before ids were shown as they are stored: 0)."""
    base = to_dict(cfg)
    base.pop("search")  # no candidate has one: not copied once per candidate
    draws = sample(space, cfg.search_block().n_iter, cfg.search_block().random_state)
    memory = available_memory()  # once: the same for every candidate of one plan
    return [
        _checked(Candidate(i, params), base, input_shape, n_classes, source, memory)
        for i, params in enumerate(draws, start=first_id)
    ]


def _checked(cand: Candidate, base: dict, input_shape, n_classes: int, source: str, memory: int) -> Candidate:
    try:
        cand.config = candidate_config(base, cand.params, source)
        cand.layers = shapes.infer(cand.config.model, input_shape, n_classes)
        cand.memory = shapes.check_memory(cand.config, cand.layers, input_shape, memory, source)
    except ConfigError as e:
        cand.reason = f"{e.field}: {e.message}"
    except shapes.ShapeError as e:
        cand.reason = str(e)
    return cand


LISTED_IN_FULL = 20  # --dry-run shows this many candidates with their layer tables, then sums up


def dry_run_report(cfg: Config, candidates: list[Candidate]) -> list:
    """The plan (strategy, folds, fits), the first `LISTED_IN_FULL` candidates' layers (a
    table each) or why they cannot run, then, for a longer list, all of them summed up:
    what --dry-run prints, lines and tables for `console.show`, in a size that does not
    grow with the count past the full listing."""
    out: list = _plan_lines(cfg, candidates)
    for c in candidates[:LISTED_IN_FULL]:
        out += ["", f"candidate {c.id} {c.architecture + ' | ' if c.architecture else ''}{_attributes(c)!r}"]
        if c.ok:
            assert c.layers is not None  # a runnable candidate has its shapes
            params, macs = shapes.totals(c.layers)
            assert c.memory is not None  # and its memory
            out += [
                f"  parameters {params:,}, multiply-accumulates per image {macs:,}, "
                f"memory per fit at least {shapes.gigabytes(c.memory)}",
                shapes.describe(c.layers),
            ]
        else:
            out.append(f"  INVALID (cannot run): {c.reason}")
    if len(candidates) > LISTED_IN_FULL:
        out += ["", *candidates_summary(candidates)]
    return out


SHOWN_REASONS = 10  # the summary's most frequent reasons a candidate cannot run
SHOWN_IDS = 5  # candidate ids shown per reason


def candidates_summary(candidates: list[Candidate]) -> list[str]:
    """All the candidates in a few lines: how many can run, with their parameter,
    multiply-accumulate and memory ranges (and the candidates at each end), and how many
    cannot, grouped by reason, the most frequent first."""
    ok = [c for c in candidates if c.ok]
    out = [
        f"all {len(candidates):,} candidates (the first {LISTED_IN_FULL} are listed above): "
        f"{len(ok):,} can run, {len(candidates) - len(ok):,} cannot"
    ]
    if ok:
        sizes = {c.id: shapes.totals(c.layers or []) for c in ok}
        params = {i: p for i, (p, _) in sizes.items()}
        macs = {i: m for i, (_, m) in sizes.items()}
        out += [
            f"  parameters {_span(params, '{:,}'.format)}",
            f"  multiply-accumulates per image {_span(macs, '{:,}'.format)}",
            f"  memory per fit at least {_span({c.id: c.memory or 0 for c in ok}, shapes.gigabytes)}",
        ]
    by_reason: dict[str, list[int]] = {}
    for c in candidates:
        if not c.ok:
            by_reason.setdefault(str(c.reason), []).append(c.id)
    ranked = sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[1][0]))
    if ranked:
        out.append("  cannot run, by reason (most frequent first):")
    for reason, ids in ranked[:SHOWN_REASONS]:
        shown = ", ".join(map(str, ids[:SHOWN_IDS])) + (", ..." if len(ids) > SHOWN_IDS else "")
        out.append(f"    {len(ids):,} (candidate{'s' if len(ids) > 1 else ''} {shown}): {reason}")
    rest = ranked[SHOWN_REASONS:]
    if rest:
        n = sum(len(ids) for _, ids in rest)
        out.append(f"    {n:,} more candidates for {len(rest):,} other reasons")
    return out


def _span(values: dict[int, int], fmt) -> str:
    """`low (candidate i) to high (candidate j)` of {candidate id: value}."""
    low, high = min(values, key=values.__getitem__), max(values, key=values.__getitem__)
    return f"{fmt(values[low])} (candidate {low}) to {fmt(values[high])} (candidate {high})"


def _attributes(c: Candidate) -> dict:
    """The drawn values beside the structure, which `architecture` shows."""
    return {k: v for k, v in c.params.items() if not is_layer_list(k)}


def structure_report(cfg: Config, space, input_shape, n_classes: int, source: str) -> list:
    """`--dry-run`'s list of the structures a space allows (none for attributes only): each
    one's layers, parameters and multiply-accumulates as written, and what is drawn for it."""
    if not isinstance(space, list):
        return []
    base = to_dict(cfg)
    out: list = ["", f"{len(space)} structures (drawn one per candidate, then their values):"]
    for i, dist in enumerate(space, start=1):
        found = structure_of(dist)
        assert found is not None  # a list of dicts is a space with structure, one per dict
        key, (layers,) = found
        drawn = ", ".join(k for k in dist if k != key) or "nothing"
        one = candidate_config(base, {key: layers}, source)
        try:
            params, macs = shapes.totals(shapes.infer(one.model, input_shape, n_classes))
            size = f"parameters {params:,}, multiply-accumulates per image {macs:,} as written"
        except shapes.ShapeError as e:
            size = f"cannot be built as written ({e}); each candidate is checked with its values"
        out += [f"structure {i}: {architecture(one.model.layers)}", f"  {size}; draws {drawn}"]
    return out


def _plan_lines(cfg: Config, candidates: list[Candidate]) -> list[str]:
    n_ok = sum(c.ok for c in candidates)
    k, s = n_folds(cfg), cfg.search_block()
    head = (
        f"search {cfg.name}: strategy {s.strategy}, {len(candidates)} candidates "
        f"({len(candidates) - n_ok} cannot run), {k} folds, scoring {s.scoring}"
    )
    if s.strategy == "halving":
        counts = halving_counts(n_ok, s.factor)
        return [
            head,
            f"halving: candidates per rung {' -> '.join(map(str, counts))}, training images "
            f"x{s.factor:g} per rung, the last rung on the full fold; at most "
            f"{sum(counts) * k} fits",
        ]
    if s.strategy == "racing":
        oracle = make_oracle(cfg, [c.id for c in candidates if c.ok], 0, "")
        assert isinstance(oracle, RacingOracle)
        probes, entrants = len(oracle.probes()), oracle.n_entrants
        start = (
            f"a probe of {oracle.probe} epoch{'s' if oracle.probe != 1 else ''} on fold 0 for every "
            f"candidate ({probes} fits), then the best {entrants} race on fold 0"
            if probes
            else "every candidate on fold 0"
        )
        if s.race_rule == "ttest":
            looks = f", Bonferroni-corrected for {oracle.looks} looks" if oracle.looks > 1 else ""
            rule = (
                f"only those that a corrected resampled t-test on the folds so far (two or more) "
                f"does not find worse than the leader at level {s.race_alpha:g} (two-sided{looks})"
            )
        else:
            rule = f"only those within {s.margin:g} of the best mean so far"
        return [
            head,
            f"racing: {start}, then fold by fold {rule}; {oracle.fewest()} to {oracle.planned({})} fits",
        ]
    return [head, f"{n_ok * k} fits"]

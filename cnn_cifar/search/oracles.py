"""Oracles: given the fits finished so far, which fits run next, and how each candidate ended.

An oracle holds no state but its settings, so a resumed search asks it again and gets the
same answer. `done` is always the finished fit records by key (`FitJournal.load`).

Random (`strategy: random`) is RandomizedSearchCV: every runnable candidate on every fold,
on the fold's full training rows.

Racing (`strategy: racing`, the default) fits RandomizedSearchCV's candidates on the same
folds, one fold at a time: every candidate on fold 0, then only those still in the race go
on to the next fold; the leader (the best mean so far) runs all its remaining folds first,
so its full score is known early. Who stays is the rule's (`search.race_rule`): `margin`
keeps those whose mean so far is within `margin` of the leader's (in the scorer's units,
accuracy: 0.03 = three points); `ttest` keeps everyone after fold 0 (one fold has no
spread to test) and from the second fold on drops those the corrected resampled t-test on
the folds so far finds worse than the leader at `race_alpha`, Bonferroni-corrected over
the looks a candidate can get. A clearly worse candidate costs fewer fits than one per
fold; the leaders are fitted exactly as a random search fits them, so their scores are a
random search's scores. With a probe (`search.prune` asha, `probe: true`),
the race starts with one: every candidate's fold 0 trains its first `epochs` epochs, and
only the best ceil(n / factor) of those scores enter the race, best first; the others
end `pruned`. A probe is the start of the full fit (stopped, not shortened), and the
entrants' fold 0 trains again from scratch, so their scores stay a random search's.

Successive halving (`strategy: halving`) budgets training images, like
HalvingRandomSearchCV with resource="n_samples": rung 0 trains every candidate on the
first `min_resources` of each fold's (shuffled) training rows; each next rung keeps the
best ceil(n / factor) candidates by mean score and multiplies the images by `factor`;
the last rung trains on the full fold. The number of rungs is 1 + floor(log_factor(n
candidates)), fewer if min_resources * factor**k would pass the fold size. The default
min_resources is fold size // factor**(rungs - 1), so the last rung uses the whole fold
(sklearn's "exhaust"). Test rows are always the whole fold's.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..config.errors import ConfigError
from ..config.schema import Config
from ..core.vocabulary import ALPHA, CandidateStatus, FitStatus
from ..results.stats import corrected_ttest, fmt_p
from . import pruning


@dataclass(frozen=True)
class Fit:
    """One unit of work: a candidate on a fold (at a rung, with n_train images)."""

    candidate: int
    fold: int
    rung: int | None = None  # None: plain random search
    n_train: int | None = None  # None: the fold's full training rows
    probe: int | None = None  # racing's probe: stop after this many epochs

    @property
    def key(self) -> str:
        base = f"c{self.candidate:03d}_f{self.fold}"
        if self.probe is not None:
            return f"p{self.probe}_{base}"
        return base if self.rung is None else f"r{self.rung}_{base}"


def n_splits(cfg: Config) -> int:
    """Splits per repeat: search.cv, else the cv block's."""
    return cfg.search_block().cv or cfg.cv.n_splits


def n_folds(cfg: Config) -> int:
    """Folds in all: the splits of every repeat (cv.n_repeats)."""
    return n_splits(cfg) * cfg.cv.n_repeats


def fit_score(record: dict | None) -> float:
    """A fit record's score; NaN if the fit did not run or did not end ok."""
    return float(record["score"]) if record is not None and record["status"] == FitStatus.OK else float("nan")


def rung_score(done: dict, candidate: int, folds: int, rung: int | None = None) -> float:
    """Mean score of a candidate over all folds of a rung; NaN if any fold is missing or failed."""
    return float(np.mean([fit_score(done.get(Fit(candidate, f, rung).key)) for f in range(folds)]))


def ranked(candidates: list[int], scores: dict[int, float]) -> list[int]:
    """The candidates with a score, best first (ties: the lower id); NaN ones (failed) are left out."""
    return sorted((c for c in candidates if np.isfinite(scores[c])), key=lambda c: (-scores[c], c))


def last_rung(done: dict, candidate: int, folds: int) -> tuple[int | None, list[dict | None]]:
    """A candidate's highest rung (0 without rungs, None if nothing ran) and its records
    there, fold by fold (None: that fold did not run)."""
    mine = [r for r in done.values() if r["candidate"] == candidate and not r.get("probe")]
    rung = max((r.get("rung") or 0 for r in mine), default=None)
    last = {r["fold"]: r for r in mine if (r.get("rung") or 0) == rung}
    return rung, [last.get(f) for f in range(folds)]


class Oracle(ABC):
    """What a search asks of a strategy. `candidates`: the ids of the runnable candidates."""

    def __init__(self, candidates: list[int], folds: int):
        self.candidates, self.folds = list(candidates), folds

    @abstractmethod
    def next_fits(self, done: dict) -> list[Fit]:
        """The fits to run now; [] when the search is over."""

    @abstractmethod
    def planned(self, done: dict) -> int:
        """Fits this search runs at most, knowing what `done` holds so far."""

    def status(self, candidate: int, done: dict) -> tuple[CandidateStatus, str]:
        """How a runnable candidate ended, and why if not completed: judged at its last rung."""
        _, fits = last_rung(done, candidate, self.folds)
        pruned = next((r for r in fits if r is not None and r["status"] == FitStatus.PRUNED), None)
        if pruned is not None:
            return CandidateStatus.PRUNED, f"fold {pruned['fold'] + 1} of {self.folds}: {pruned['pruned']}"
        failed = next((r for r in fits if r is not None and r["status"] != FitStatus.OK), None)
        if failed is not None:
            return CandidateStatus.FAILED, f"fold {failed['fold']}: {failed['error']}"
        if any(r is None for r in fits):
            return CandidateStatus.FAILED, "not finished"
        return CandidateStatus.COMPLETED, ""


class RandomOracle(Oracle):
    """RandomizedSearchCV: every runnable candidate on every fold, full training rows."""

    def next_fits(self, done: dict) -> list[Fit]:
        fits = (Fit(c, f) for c in self.candidates for f in range(self.folds))
        return [fit for fit in fits if fit.key not in done]

    def planned(self, done: dict) -> int:
        return len(self.candidates) * self.folds


class RacingOracle(Oracle):
    """Racing over folds: fold k runs for the candidates still in the race after fold k-1;
    the leader runs all its remaining folds first, so its full CV score comes early."""

    def __init__(
        self,
        candidates: list[int],
        folds: int,
        margin: float,
        probe: int | None = None,
        factor: float = 3.0,
        min_fits: int = 3,
        rule: str = "margin",
        alpha: float = ALPHA,
        ratio: float = 0.25,
    ):
        super().__init__(candidates, folds)
        self.margin = margin
        # ttest: the level, and n_test / n_train for fits journaled without n_test
        self.rule, self.alpha, self.ratio = rule, alpha, ratio
        # no probe where there are too few candidates to compare (asha's min_fits)
        self.probe = probe if len(self.candidates) >= min_fits else None
        self.factor = factor

    def probes(self) -> list[Fit]:
        return [Fit(c, 0, probe=self.probe) for c in self.candidates] if self.probe else []

    def probe_scores(self, done: dict) -> dict[int, float] | None:
        """Every candidate's probe score (NaN: failed) once all probes are done; None
        without a probe or while it runs."""
        probes = self.probes()
        if not probes or any(p.key not in done for p in probes):
            return None
        return {p.candidate: fit_score(done[p.key]) for p in probes}

    def entrants(self, done: dict) -> list[int]:
        """The candidates that race, best probe first; all of them without a probe (or
        while it runs)."""
        scores = self.probe_scores(done)
        return self.candidates if scores is None else ranked(self.candidates, scores)[: self.n_entrants]

    @property
    def n_entrants(self) -> int:
        return math.ceil(len(self.candidates) / self.factor) if self.probe else len(self.candidates)

    def stages(self, done: dict) -> Iterator[tuple[int, list[int], list[Fit]]]:
        """(fold, the candidates that run it, its fits not yet in `done`), fold by fold up to
        the first one not finished: the single walk the other methods read."""
        alive = self.entrants(done)
        for fold in range(self.folds):
            todo = [Fit(c, fold) for c in alive if Fit(c, fold).key not in done]
            yield fold, alive, todo
            if todo:
                return
            alive = self.survivors(alive, fold, done)[0]

    def next_fits(self, done: dict) -> list[Fit]:
        probes = [p for p in self.probes() if p.key not in done]
        if probes:
            return probes
        for fold, alive, todo in self.stages(done):
            if todo:
                if fold == 0:
                    return todo
                leader = [Fit(alive[0], f) for f in range(fold, self.folds)]
                return [f for f in leader if f.key not in done] + [f for f in todo if f.candidate != alive[0]]
        return []

    def survivors(self, alive: list[int], fold: int, done: dict) -> tuple[list[int], float]:
        """The candidates still in the race after folds 0..fold, best mean first (the
        leader first): those within `margin` of the best mean, or (ttest) those the test
        does not find worse than the leader; failed ones drop out. Also returns that best
        mean."""
        scores = {c: rung_score(done, c, fold + 1) for c in alive}
        order = ranked(alive, scores)
        best = scores[order[0]] if order else float("nan")
        if self.rule == "ttest":
            return [c for c in order if not self.worse(order[0], c, fold, done)], best
        return [c for c in order if scores[c] >= best - self.margin - 1e-12], best

    @property
    def looks(self) -> int:
        """How often the ttest rule may test one candidate: after folds 2 to folds - 1 (after
        the last fold there is nothing left to save)."""
        return max(1, self.folds - 2)

    def p_vs_leader(self, leader: int, candidate: int, fold: int, done: dict) -> float | None:
        """Two-sided p of the corrected resampled t-test of the leader's scores minus the
        candidate's over folds 0..fold, paired fold by fold; None on one fold (no spread).

        Two-sided, as `compare` and the ranking's verdicts print it, although the question
        (is it worse?) is one-sided: the leader has the best mean, so t >= 0 and this p is
        twice the one-sided one, a test at race_alpha / 2. The halving is deliberate: the
        leader is the best of many means (picked after looking, which biases the
        difference upwards), and a wrongly dropped candidate never comes back."""
        if fold < 1:
            return None
        keys = [(Fit(leader, f).key, Fit(candidate, f).key) for f in range(fold + 1)]
        d = [fit_score(done.get(a)) - fit_score(done.get(b)) for a, b in keys]
        if not np.all(np.isfinite(d)) or np.ptp(d) == 0:
            return None  # a failed fold; or no spread to measure the noise by (a test would say p = 0)
        first = done[keys[0][0]]
        ratio = (
            first["n_test"] / first["n_train"] if first.get("n_test") and first.get("n_train") else self.ratio
        )
        return float(corrected_ttest(d, ratio)[1])

    def worse(self, leader: int, candidate: int, fold: int, done: dict) -> bool:
        """The ttest rule: the test's p, times the looks (Bonferroni), is below alpha."""
        p = self.p_vs_leader(leader, candidate, fold, done)
        return p is not None and min(1.0, p * self.looks) < self.alpha

    def status(self, candidate: int, done: dict) -> tuple[CandidateStatus, str]:
        probed = self.not_entered(candidate, done)
        if probed:
            return probed
        reason = self.dropped(candidate, done)
        return (CandidateStatus.DROPPED, reason) if reason else super().status(candidate, done)

    def not_entered(self, candidate: int, done: dict) -> tuple[CandidateStatus, str] | None:
        """How a candidate ended at the probe, if it did not enter the race."""
        scores = self.probe_scores(done)
        if scores is None:
            return None
        entrants = self.entrants(done)
        if candidate in entrants:
            return None
        mine = done[Fit(candidate, 0, probe=self.probe).key]
        if mine["status"] != FitStatus.OK:
            return CandidateStatus.FAILED, f"fold 1 (probe): {mine.get('error', mine['status'])}"
        cutoff = min(scores[c] for c in entrants)
        return CandidateStatus.PRUNED, (
            f"pruned at epoch {self.probe} of fold 1: score {mine['score']:.4f} not in the best "
            f"{self.n_entrants} of the {len(scores)} candidates' probes (cutoff {cutoff:.4f})"
        )

    def dropped(self, candidate: int, done: dict) -> str | None:
        """Why a candidate left the race early; None if it did not, failed, or is a leader
        that fell behind after it had already run every fold."""
        for fold, alive, todo in self.stages(done):
            if todo or fold == self.folds - 1:
                return None
            keep, best = self.survivors(alive, fold, done)
            if candidate in alive and candidate not in keep:
                mean = rung_score(done, candidate, fold + 1)
                if np.isfinite(mean) and not np.isfinite(rung_score(done, candidate, self.folds)):
                    return self._why_dropped(keep[0], candidate, fold, done, mean, best)
                return None
        return None

    def _why_dropped(
        self, leader: int, candidate: int, fold: int, done: dict, mean: float, best: float
    ) -> str:
        """The reason a dropped candidate carries: the rule that dropped it, and the test
        against the leader on the folds it ran where there are two or more."""
        k, p = fold + 1, self.p_vs_leader(leader, candidate, fold, done)
        if self.rule == "ttest" and p is not None:
            looks = f", Bonferroni-corrected for {self.looks} looks" if self.looks > 1 else ""
            return (
                f"worse than the leader, candidate {leader}, at {fmt_p(min(1.0, p * self.looks))} "
                f"after {k} of {self.folds} folds: mean {mean:.4f} against {best:.4f} (corrected "
                f"resampled t-test on those {k} folds, level {self.alpha:g}{looks})"
            )
        test = ""  # zero spread over two folds or more: no test
        if p is not None:
            test = f"; against it on those {k} folds, {fmt_p(p)} (corrected resampled t-test)"
        elif k == 1:
            test = "; one fold: too few for a test"
        return (
            f"dropped after {k} of {self.folds} folds: mean {mean:.4f} is more than "
            f"{self.margin:g} below the leader's {best:.4f}{test}"
        )

    def fewest(self) -> int:
        """The fits before anyone can leave the race: the probes and every entrant's folds up
        to its first look (fold 0 with margin, folds 0 and 1 with ttest); the leader's
        later folds come on top."""
        return len(self.probes()) + self.n_entrants * min(self.folds, 2 if self.rule == "ttest" else 1)

    def planned(self, done: dict) -> int:
        probes = len(self.probes())
        if probes and self.probe_scores(done) is None:
            return probes + self.n_entrants * self.folds
        fits = (Fit(c, f) for c in self.candidates for f in range(self.folds))
        finished = probes + sum(fit.key in done for fit in fits)
        for fold, alive, todo in self.stages(done):
            if todo:
                return finished + sum(
                    Fit(c, f).key not in done for c in alive for f in range(fold, self.folds)
                )
        return finished


class HalvingOracle(Oracle):
    """Successive halving: a rung's fits run only once the previous rung has finished.
    Candidates left at a lower rung are completed there (ranked by the rung they reached)."""

    def __init__(self, candidates: list[int], folds: int, resources: list[int], factor: float):
        super().__init__(candidates, folds)
        self.resources, self.factor = resources, factor

    def next_fits(self, done: dict) -> list[Fit]:
        alive = self.candidates
        for rung, n_train in enumerate(self.resources):
            fits = [Fit(c, f, rung, n_train) for c in alive for f in range(self.folds)]
            todo = [fit for fit in fits if fit.key not in done]
            if todo:
                return todo
            alive = self.survivors(alive, rung, done)
        return []

    def survivors(self, alive: list[int], rung: int, done: dict) -> list[int]:
        """The best ceil(n / factor) by mean score (ties: lower id); failed ones never go on."""
        scores = {c: rung_score(done, c, self.folds, rung) for c in alive}
        return sorted(ranked(alive, scores)[: math.ceil(len(alive) / self.factor)])

    def planned(self, done: dict) -> int:
        return sum(halving_counts(len(self.candidates), self.factor, len(self.resources))) * self.folds


def halving_counts(n_candidates: int, factor: float, n_rungs: int | None = None) -> list[int]:
    n_rungs = n_rungs or required_rungs(n_candidates, factor)
    counts = [n_candidates]
    for _ in range(n_rungs - 1):
        counts.append(math.ceil(counts[-1] / factor))
    return counts


def required_rungs(n_candidates: int, factor: float) -> int:
    """1 + floor(log_factor(n)), as HalvingRandomSearchCV: the last rung holds < factor candidates."""
    if n_candidates <= 1:
        return 1
    return 1 + math.floor(math.log(n_candidates) / math.log(factor) + 1e-9)


def rung_resources(
    n_candidates: int, max_resources: int, factor: float, min_resources: int | None = None
) -> list[int]:
    """Training images per fit at each rung (see the module docstring)."""
    n_rungs = required_rungs(n_candidates, factor)
    if min_resources is None:
        min_resources = max(1, int(max_resources // factor ** (n_rungs - 1)))
    elif min_resources > max_resources:
        raise ValueError(f"{min_resources} is more than the {max_resources} training images of a fold")
    possible = 1 + math.floor(math.log(max_resources / min_resources) / math.log(factor) + 1e-9)
    n_rungs = max(1, min(n_rungs, possible))
    return [int(min_resources * factor**i) for i in range(n_rungs - 1)] + [max_resources]


def make_oracle(cfg: Config, ids: list[int], fold_size: int, source: str) -> Oracle:
    """The config's strategy over its runnable candidates (`ids`); a halving budget that
    cannot work is a ConfigError."""
    s = cfg.search_block()
    if s.strategy == "random":
        return RandomOracle(ids, n_folds(cfg))
    if s.strategy == "racing":
        probe = s.prune.min_epochs if pruning.probes(cfg) else None
        if probe is not None and probe >= cfg.train.epochs:
            probe = None  # it would be the whole fit
        ratio = cfg.cv.test_size / (1 - cfg.cv.test_size)
        return RacingOracle(
            ids,
            n_folds(cfg),
            s.margin,
            probe,
            s.prune.factor,
            s.prune.min_fits,
            s.race_rule,
            s.race_alpha,
            ratio,
        )
    try:
        resources = rung_resources(len(ids), fold_size, s.factor, s.min_resources)
    except ValueError as e:
        raise ConfigError(source, "search.min_resources", str(e)) from None
    return HalvingOracle(ids, n_folds(cfg), resources, s.factor)

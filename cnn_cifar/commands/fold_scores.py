"""The fold scores `cnn-cifar compare` pairs: of a cv run, or of a search candidate (by
number, or the top N of a search), with what defines their splits, so that runs scored
on other splits are refused in one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config.schema import Config, Data
from ..core.files import CANDIDATES_FILE, CV_FILE, RUN_FILE, read_json
from ..core.vocabulary import FitStatus, UserError
from ..search.journal import FitJournal, load_spec
from ..search.oracles import Oracle, RandomOracle, last_rung, make_oracle, n_folds, n_splits
from ..search.structures import shown_params


class CompareError(UserError):
    """A user's mistake (a folder that is not a finished cv run or search, runs on other
    splits): one line, exit status 2."""


# --------------------------------------------------------------------------- statistics


@dataclass
class Scored:
    """One side of a comparison: a cv run, or a search candidate, with its fold scores and
    everything that fixes its splits."""

    source: str  # the run folder, or RUN:ID for a search candidate
    name: str  # the config's name, or "candidate N"
    kind: str  # "cv" or "search candidate"
    scores: list[float]
    n_train: list[int]
    n_test: list[int]
    scoring: str
    splits: dict  # data, n_splits, n_repeats, test_size, random_state
    label: str = ""  # what verdicts call it (name, made unique)
    params: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def load(specs: list[str], top: int | None = None) -> list[Scored]:
    """The runs named on the command line: cv run folders, RUN:N for candidate N of a
    search run (the id every output of the search shows), or with `top` the `top` best
    candidates of the one search run given."""
    if top is not None:
        if len(specs) != 1:
            raise CompareError(f"--top {top} takes one search run folder, not {len(specs)} arguments")
        items = top_candidates(Path(specs[0]), top)
    else:
        items = [_load_one(spec) for spec in specs]
    seen: dict[tuple, str] = {}
    for item in items:
        key = _identity(item.source)
        if key in seen:
            other = seen[key]
            raise CompareError(
                f"{item.source}: named twice"
                if other == item.source
                else f"{item.source} and {other}: one run named twice"
            )
        seen[key] = item.source
    if len(items) < 2:
        raise CompareError("compare needs two runs or more (cv run folders, or RUN:N for search candidate N)")
    names = [i.name for i in items]
    for item in items:
        item.label = item.name if names.count(item.name) == 1 else item.source
    return items


def _identity(source: str) -> tuple:
    """What a run or candidate is, whatever it was called: its real folder and candidate
    (RUN/ and /abs/path/RUN, or a link to it, are one run)."""
    head, sep, tail = source.rpartition(":")
    if sep and tail.isdigit() and not Path(source).exists():
        return Path(head).resolve(), int(tail)
    return Path(source).resolve(), None


def _load_one(spec: str) -> Scored:
    folder, candidate = Path(spec), None
    if not folder.exists() and ":" in spec:
        head, _, tail = spec.rpartition(":")
        if not tail.isdigit():
            raise CompareError(f"{spec}: a candidate is RUN:ID with ID its number in the search's ranking")
        folder, candidate = Path(head), int(tail)
    command = _command(folder)
    if candidate is not None:
        if command != "search":
            raise CompareError(
                f"{spec}: {folder} is {_a(command)} run; RUN:N names a candidate of a search run"
            )
        return search_candidate(folder, candidate)
    if command == "cv":
        return cv_run(folder)
    if command == "search":
        raise CompareError(
            f"{folder}: a search run; name its candidates as {folder}:ID (the ids of its ranking, "
            "as the search prints them), or give --top N"
        )
    raise CompareError(f"{folder}: {_a(command)} run; compare takes cv runs and search candidates")


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _command(folder: Path) -> str:
    if not folder.is_dir():
        raise CompareError(f"{folder}: no such run folder")
    try:
        info = read_json(folder / RUN_FILE)
    except (OSError, ValueError):
        raise CompareError(f"{folder}: not a run folder (no readable {RUN_FILE})") from None
    return str(info.get("command")) if isinstance(info, dict) else "unknown"


def cv_run(folder: Path) -> Scored:
    """A finished cv run, from its cv.json."""
    try:
        cv = read_json(folder / CV_FILE)
        folds = sorted(cv["folds"], key=lambda f: f["fold"])
        block = cv["cv"]
        return Scored(
            source=str(folder),
            name=cv["name"],
            kind="cv",
            scores=[float(f["accuracy"]) for f in folds],
            n_train=[int(f["n_train"]) for f in folds],
            n_test=[int(f["n_test"]) for f in folds],
            scoring="accuracy",
            splits=_splits(
                cv["data"],
                block["n_splits"],
                block.get("n_repeats", 1),
                block["test_size"],
                block["random_state"],
            ),
        )
    except FileNotFoundError:
        raise CompareError(f"{folder}: no {CV_FILE} (the cv run did not finish)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"{folder / CV_FILE}: not a readable cv result ({e!r})") from None


def _splits(data: dict, n_splits: int, n_repeats: int, test_size: float, random_state) -> dict:
    data = {k: data.get(k) for k in ("source", "path", "subset")}
    return {
        "data": data,
        "n_splits": n_splits,
        "n_repeats": n_repeats,
        "test_size": test_size,
        "random_state": random_state,
    }


@dataclass
class SearchState:
    """A search run as compare reads it: config, data, each candidate's last rung (its
    rung and fold records), params and why it cannot run (None: it could), and the fits."""

    cfg: Config
    data: Data
    fits: dict
    params: dict
    invalid: dict
    done: dict

    def oracle(self) -> Oracle:
        """The search's strategy over its runnable candidates, to say how each ended.
        Racing is the one whose candidates end early by its own rule (a probe, a margin);
        every other strategy's candidates end as a random search's do (pruned or failed)."""
        ids = [c for c in self.params if self.invalid.get(c) is None]
        if self.cfg.search_block().strategy == "racing":
            return make_oracle(self.cfg, ids, 0, "")
        return RandomOracle(ids, n_folds(self.cfg))

    def why_not_whole(self, cid: int) -> str:
        """Why candidate `cid` has not scored every fold, as the search's ranking says it."""
        if self.invalid.get(cid):
            return f"could not run: {self.invalid[cid]}"
        status, reason = self.oracle().status(cid, self.done)
        return f"{status}: {reason}" if reason else str(status)


def _search_state(folder: Path) -> SearchState:
    try:
        cfg, data, _ = load_spec(folder)
        saved = read_json(folder / CANDIDATES_FILE)
        params = {c["candidate"]: c["params"] for c in saved}
        invalid = {c["candidate"]: c.get("reason") for c in saved}
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"{folder}: not a readable search run ({e!r})") from None
    done = FitJournal(folder).load()
    folds = n_folds(cfg)
    return SearchState(cfg, data, {c: last_rung(done, c, folds) for c in params}, params, invalid, done)


# how to get every candidate scored on every fold, for a comparison of any two
EVERY_FOLD_HINT = "a search scores every candidate on every fold with --set search.strategy=random"


def _candidate(folder: Path, state: SearchState, cid: int) -> Scored:
    cfg, data = state.cfg, state.data
    _rung, fits = state.fits[cid]
    ok = [r for r in fits if r is not None and r["status"] == FitStatus.OK]
    if len(ok) < len(fits):
        raise CompareError(
            f"{folder}:{cid}: candidate {cid} has {len(ok)} of {len(fits)} folds scored "
            f"({state.why_not_whole(cid)}); compare needs every fold: {EVERY_FOLD_HINT}"
        )
    # fits journaled before records carried n_test: the fold's ratio from test_size (a
    # halving rung below the last one then looks less test-heavy than it was)
    test_share = cfg.cv.test_size
    n_test = [int(r.get("n_test") or round(r["n_train"] * test_share / (1 - test_share))) for r in ok]
    return Scored(
        source=f"{folder}:{cid}",
        name=f"candidate {cid}",
        kind="search candidate",
        scores=[float(r["score"]) for r in ok],
        n_train=[int(r["n_train"]) for r in ok],
        n_test=n_test,
        scoring=cfg.search_block().scoring,
        splits=_splits(
            data.model_dump(), n_splits(cfg), cfg.cv.n_repeats, cfg.cv.test_size, cfg.cv.random_state
        ),
        params=shown_params(state.params[cid]),  # a drawn structure by its layers' names
    )


def search_candidate(folder: Path, cid: int) -> Scored:
    """Candidate `cid` of a search run (its id, as every output of the search shows it),
    from its fits journal."""
    state = _search_state(folder)
    if cid not in state.fits:
        raise CompareError(
            f"{folder}:{cid}: the search has candidates {min(state.fits)} to {max(state.fits)}"
        )
    return _candidate(folder, state, cid)


def top_candidates(folder: Path, n: int) -> list[Scored]:
    """The n best candidates by mean score among those that scored every fold at the
    highest rung any candidate finished (halving: the last rung; otherwise rung 0)."""
    if _command(folder) != "search":
        raise CompareError(f"{folder}: --top takes a search run folder")
    state = _search_state(folder)
    whole = {
        c: rf
        for c, rf in state.fits.items()
        if rf[0] is not None and all(r is not None and r["status"] == FitStatus.OK for r in rf[1])
    }
    if whole:
        rung = max(rf[0] for rf in whole.values())
        whole = {c: rf for c, rf in whole.items() if rf[0] == rung}
    ranked = sorted(whole, key=lambda c: (-np.mean([r["score"] for r in whole[c][1]]), c))
    if len(ranked) < 2:
        raise CompareError(
            f"{folder}: {len(ranked)} candidate{'' if len(ranked) == 1 else 's'} scored every fold "
            f"({_how_the_others_ended(state, set(whole))}); compare needs two or more: {EVERY_FOLD_HINT}"
        )
    return [_candidate(folder, state, c) for c in ranked[:n]]


def _how_the_others_ended(state: SearchState, whole: set) -> str:
    """`2 dropped, 1 pruned`: the candidates that did not score every fold, by how they ended."""
    oracle = state.oracle()
    ended = [
        "invalid" if state.invalid.get(c) else str(oracle.status(c, state.done)[0])
        for c in state.params
        if c not in whole
    ]
    counts = {status: ended.count(status) for status in dict.fromkeys(ended)}
    return ", ".join(f"{k} {status}" for status, k in counts.items()) or "no others"


def check_same_splits(a: Scored, b: Scored) -> None:
    """Refuse (one line) to pair runs whose splits are not the same rows."""

    def refuse(why: str):
        raise CompareError(
            f"cannot pair {a.source} with {b.source}: {why}; compare runs of the same data, "
            "subset and cv block (cv.n_splits, cv.n_repeats, cv.test_size, cv.random_state)"
        )

    if a.scoring != b.scoring:
        refuse(f"one is scored by {a.scoring}, the other by {b.scoring}")
    for key in ("source", "path", "subset"):
        if a.splits["data"].get(key) != b.splits["data"].get(key):
            refuse(f"other data (data.{key} {a.splits['data'].get(key)!r} vs {b.splits['data'].get(key)!r})")
    for key in ("n_splits", "n_repeats", "test_size", "random_state"):
        if a.splits[key] != b.splits[key]:
            refuse(f"other splits (cv.{key} {a.splits[key]!r} vs {b.splits[key]!r})")
    if a.splits["random_state"] is None:
        refuse("cv.random_state is null, so each run drew its own random splits")
    if a.n_train != b.n_train or a.n_test != b.n_test:
        refuse(
            f"other training sets per fold ({_sizes(a.n_train)} vs {_sizes(b.n_train)} images: "
            "a different halving rung?)"
        )
    if len(a.scores) < 2:
        raise CompareError(
            f"{a.source} and {b.source} have 1 fold each: a difference needs 2 folds "
            "or more to be tested (--set cv.n_splits=3, or cv.n_repeats)"
        )


def _sizes(counts: list[int]) -> str:
    return ", ".join(f"{c:,}" for c in sorted(set(counts)))


# --------------------------------------------------------------------------- the verdicts

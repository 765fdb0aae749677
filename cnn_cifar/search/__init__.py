"""`cnn-cifar search`: racing, random search and successive halving over a config's space.

From Python, one call does a whole search into a folder and returns its summary:

    from cnn_cifar import load_config
    from cnn_cifar.search import run_search

    summary = run_search(load_config("configs/search.yaml"), "results/my_search")
    summary.best.score, summary.best.params  # the winner (None if no candidate completed)

One module per part: `space` (a config's search.space read as scipy distributions),
`structures` (a space that draws the layers themselves: stacks to choose from, optional
layers, repeated blocks), `candidates` (ParameterSampler's draws, shape-checked before
anything trains), `oracles` (which fits run next, how each candidate ended), `pruning`
(stopping fits within their epochs), `journal` (the run folder: spec and fits/),
`executors` (in-process, loky, dask), `runner` (the loop: ask the oracle, execute,
journal, repeat; and `run_search`), `render` (cv_results.csv, ranking, best.json),
`summary` (what a search returns: `SearchSummary`, `BestCandidate`), `plots`, and
`errors` (`SearchError`, its one user-facing error).

Imports `training`, `data`, `results`, `config` and `core`; never a command.
"""

from .runner import run_search
from .summary import BestCandidate, SearchSummary

__all__ = ["BestCandidate", "SearchSummary", "run_search"]

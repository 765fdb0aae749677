"""`cnn-cifar search`: racing, random search and successive halving over a config's space.

One module per part: `space` (a config's search.space read as scipy distributions),
`candidates` (ParameterSampler's draws, shape-checked before anything trains), `oracles`
(which fits run next, how each candidate ended), `pruning` (stopping fits within their
epochs), `journal` (the run folder: spec and fits/), `executors` (in-process, loky, dask),
`runner` (the loop: ask the oracle, execute, journal, repeat), `render` (cv_results.csv,
ranking, best.json) and `plots`.

Imports `training`, `data`, `results`, `config` and `core`; never a command.
"""

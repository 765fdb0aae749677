"""Each command's logic, the Click side being in `cli`: `cv`, `evaluate`, `predict`,
`report` and `compare` (with `fold_scores`, the runs it pairs). `search`'s logic is the
`search` package.

Imports every package below it but `tracking` (the CLI hands a command its tracker).
"""

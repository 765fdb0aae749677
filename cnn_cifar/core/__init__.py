"""What every other package shares: the project's words (`vocabulary`: statuses, `UserError`,
the significance level, the fold spread, where the data comes from), the records of a fit
(`records`: `FitResult`, `FitRecord`), the interface tracking satisfies (`tracking`:
`Tracker`), the one atomic file writer and every result file's name (`files`), the terminal
(`console`), CSV and markdown tables (`tables`) and lazily loaded submodules (`lazy`).

Imports nothing of the project.
"""

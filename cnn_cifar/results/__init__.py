"""Run folders and what is computed from results: the one run lifecycle (`runs`),
classification metrics (`metrics`), the corrected resampled t-test, its intervals and
Holm's correction (`stats`), and the figures (`plots`).

Imports `core` only.
"""

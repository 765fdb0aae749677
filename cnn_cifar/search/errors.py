"""The search's one user-facing error, shared by its modules."""


class SearchError(Exception):
    """A user-facing problem running a search (bad run folder, missing dask, no scheduler)."""

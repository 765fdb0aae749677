"""The search's one user-facing error, shared by its modules."""

from ..core.vocabulary import UserError


class SearchError(UserError):
    """A user-facing problem running a search (bad run folder, missing dask, no scheduler)."""

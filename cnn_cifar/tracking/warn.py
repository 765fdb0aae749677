"""The one way a tracking store's failure is told: a warning line, and the run goes on."""

from __future__ import annotations

import logging
import sys

from ..core.files import one_line

log = logging.getLogger("cnn_cifar")


def warn(what: str, where: str, e: BaseException) -> None:
    """One line on stderr and in log.txt; the run goes on without this tracking."""
    line = f"warning: {what} tracking failed ({where}: {one_line(e, 300)}); the run goes on without it"
    log.warning(line)
    print(line, file=sys.stderr)

"""`python -m benchmarks ...` from the checkout's root: see the package's docstring."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())

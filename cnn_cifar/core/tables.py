"""Tables written into files: one markdown writer, one CSV writer (the csv module), for
report.md/.csv, cv_results.csv, confusion_matrix.csv and summary.md's per-class table.
Files go through `files.write_text` (atomic). Tables on screen are `console.table`."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from .files import write_text


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence], right: Iterable[str] = ()) -> str:
    """A GitHub markdown table; the columns named in `right` are right-aligned. A `|` in a
    cell is escaped."""
    right = set(right)
    lines = [
        _md_row(headers),
        "|" + "|".join("---:" if h in right else "---" for h in headers) + "|",
    ]
    lines += [_md_row(r) for r in rows]
    return "\n".join(lines) + "\n"


def _md_row(cells: Sequence) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def csv_cell(value):
    """A CSV cell: empty for None or a non-finite float (a statistic that does not exist),
    JSON for a list or dict, the full repr of a float, anything else as it is."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return repr(float(value)) if isinstance(value, float) else value  # numpy's repr adds np.float64(


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([csv_cell(c) for c in r] for r in rows)
    return buf.getvalue()


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    write_text(path, csv_text(header, rows))

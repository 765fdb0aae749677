"""Terminal output (console.py) in both modes, and the file tables (tables.py)."""

import csv
import io
import math
import re

from conftest import invoke
from rich.console import Console

from cnn_cifar.core import console, tables

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False), buf


def terminal_console(width=120) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=width, color_system="standard"), buf


# --------------------------------------------------------------------------- progress


def run_folds(con: Console, scores=(0.5, 0.7)) -> None:
    with console.progress(len(scores), "folds", stat="mean", console=con) as p:
        for i, score in enumerate(scores, 1):
            p.fit_started(f"fold {i}/{len(scores)}", 2)
            p.epoch(f"fold {i}/{len(scores)}", 1, 2, {"loss": 1.0, "val_accuracy": 0.25})
            p.epoch(f"fold {i}/{len(scores)}", 2, 2, {"loss": 0.5, "val_accuracy": 0.5})
            if p.live is not None:
                p.live.refresh()  # draw now, not at the next tick
            p.advance(score=score)


def test_piped_progress_is_one_plain_line_per_event():
    con, buf = plain_console()
    run_folds(con)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 6  # two epochs and one fold, twice
    assert lines[0].startswith("folds 0/2 | elapsed 0s | ETA ")
    assert lines[0].endswith("| fold 1/2 epoch 1/2 loss 1.000 val_accuracy 0.250")
    assert lines[2].startswith("folds 1/2") and lines[2].endswith("| mean 0.5000")
    assert lines[5].startswith("folds 2/2") and lines[5].endswith("| ETA 0s | mean 0.6000")
    assert "\x1b" not in buf.getvalue() and "\r" not in buf.getvalue()


def test_search_progress_shows_the_best_score_so_far_and_a_shrinking_total():
    con, buf = plain_console()
    with console.progress(6, "fits", done=2, console=con) as p:
        p.advance()
        p.set_total(4)  # racing dropped candidates
        p.advance(score=0.6)
        p.advance(score=0.4)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("fits 3/6") and "best" not in lines[0]
    assert lines[1].startswith("fits 4/4") and lines[1].endswith("best 0.6000")
    assert lines[2].startswith("fits 5/4") and lines[2].endswith("best 0.6000")


def test_eta_is_the_mean_time_per_unit_done_in_this_process():
    t = console.FitProgress(10, "fits", done=4)
    assert t.eta() is None and "ETA ?" in t.line()
    t.start -= 6.0  # one fit took 6 s: 5 left, 30 s
    t.advance()
    assert math.isclose(t.eta() or 0, 30.0, rel_tol=0.01)


def test_terminal_progress_draws_a_rich_bar_with_the_same_facts():
    con, buf = terminal_console()
    run_folds(con)
    out = ANSI.sub("", buf.getvalue())
    assert "━" in out  # the bar
    last = [line for line in out.replace("\r", "\n").splitlines() if line.startswith("folds")][-1]
    assert "2/2" in last and "ETA 0s" in last and "mean 0.6000" in last
    assert "fold 2/2 epoch" in out and "loss 0.500 val_accuracy 0.500" in out
    assert "|" not in last  # not the plain line


def test_an_epoch_callback_reports_to_the_tracker():
    con, buf = plain_console()
    with console.progress(1, "training", console=con) as p:
        cb = console.epoch_callback(p, "tiny", 3)
        cb.on_train_begin()
        cb.on_epoch_end(0, {"loss": 0.25, "accuracy": 0.75})
        p.advance()
    first, last = buf.getvalue().splitlines()
    assert first.endswith("| tiny epoch 1/3 loss 0.250 accuracy 0.750")
    assert last.startswith("training 1/1")


# --------------------------------------------------------------------------- tables on screen


def test_a_piped_table_is_aligned_plain_text():
    con, buf = plain_console()
    t = console.table(["name", "score"], [["a", "0.5"], ["longer", "12.25"]], right=["score"])
    console.show(t, "a line", console=con)
    assert buf.getvalue().splitlines() == [
        "name    score",
        "a         0.5",
        "longer  12.25",
        "a line",
    ]


def test_a_terminal_table_is_a_rich_table():
    con, buf = terminal_console()
    console.show(console.table(["name", "score"], [["a", "0.5"]]), "a line", console=con)
    out = ANSI.sub("", buf.getvalue())
    assert "┃ name ┃ score ┃" in out and "│ a    │ 0.5   │" in out and "a line" in out


def test_plain_tables_never_wrap():
    row = ["x" * 300, "y" * 300]
    assert console.plain(console.table(["a", "b"], [row])).splitlines()[1] == "x" * 300 + "  " + "y" * 300


def test_fmt_seconds():
    assert [console.fmt_seconds(s) for s in (None, 9.4, 255, 3723)] == ["?", "9s", "4m15s", "1h02m03s"]


# --------------------------------------------------------------------------- tables in files


def test_markdown_table_aligns_and_escapes():
    text = tables.markdown_table(["name", "score"], [["a|b", 0.5]], right=["score"])
    assert text == "| name | score |\n|---|---:|\n| a\\|b | 0.5 |\n"


def test_csv_round_trips_through_the_csv_module(tmp_path):
    header = ["name", "score", "missing", "nan", "params", "count"]
    rows = [['a, quoted "x"', 0.1 + 0.2, None, float("nan"), {"k": [1, 2]}, 3]]
    path = tmp_path / "t.csv"
    tables.write_csv(path, header, rows)
    back = list(csv.reader(path.open(newline="")))
    assert back[0] == header
    assert back[1] == ['a, quoted "x"', repr(0.1 + 0.2), "", "", '{"k": [1, 2]}', "3"]
    assert float(back[1][1]) == 0.1 + 0.2  # full precision
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary file left


def test_numpy_floats_are_written_as_numbers():
    import numpy as np

    assert tables.csv_text(["x"], [[np.float64(0.25)]]) == "x\n0.25\n"


# --------------------------------------------------------------------------- a command, both modes


def test_report_prints_a_rich_table_on_a_terminal_and_columns_when_piped(tmp_path):
    import json

    run = tmp_path / "2020-01-01_10-00-00_cv_fake"
    run.mkdir()
    info = {"command": "cv", "name": "fake", "status": "finished", "started": "2020-01-01T10:00:00"}
    (run / "run.json").write_text(json.dumps({**info, "wall_time_s": 75}))
    (run / "cv.json").write_text(json.dumps({"mean_accuracy": 0.61, "std_accuracy": 0.02, "epochs": [3, 4]}))
    args = ["report", "--results-dir", str(tmp_path)]
    piped = invoke(*args)  # conftest clears FORCE_COLOR and the like
    tty = invoke(*args, env={"FORCE_COLOR": "1", "COLUMNS": "200"})
    assert piped.exit_code == 0 and tty.exit_code == 0, piped.output + tty.output
    header, row, written = piped.output.splitlines()
    assert header.split()[:3] == ["run", "command", "config"] and "┃" not in piped.output
    cells = "2020-01-01_10-00-00_cv_fake cv fake 0.6100 ± 0.0200 3-4 1m15s 2020-01-01 10:00 finished"
    assert row.split() == cells.split()
    assert written.startswith("written: ")
    text = ANSI.sub("", tty.output)
    assert "┃ run " in text and "│ 2020-01-01_10-00-00_cv_fake │" in text and "│ 0.6100 ± 0.0200 │" in text


def test_at_80_columns_the_bar_keeps_its_epoch_counter_and_times():
    import io

    from rich.console import Console

    buf = io.StringIO()
    narrow = Console(width=80, force_terminal=True, file=buf, color_system=None)
    with console.progress(10, "fits", console=narrow) as tracker:
        tracker.advance(0.61)
        tracker.fit_started("candidate 3 fold 2/3 probe", 20)
        logs = {"loss": 1.234, "accuracy": 0.5, "val_loss": 1.3, "val_accuracy": 0.48}
        tracker.epoch("candidate 3 fold 2/3 probe", 5, 20, logs)
        tracker.live.refresh()
        frame = buf.getvalue().split("\x1b[2K")[-2:]
    fits, fit = (line.strip("\n") for line in "".join(frame).split("\n")[-2:])
    assert "1/10" in fits and "ETA" in fits and "best 0.6100" in fits
    assert "5/20" in fit and "0:00:0" in fit and "loss 1.2" in fit
    assert max(len(fits), len(fit)) <= 80

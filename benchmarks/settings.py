"""What the bench runs and what it aims at: the parts, the throughput models, the budgets
of each size (default, --quick, --smoke), the targets, and the checkout whose configs it
reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the checkout this package sits in: its configs/, and results/ for the JSON
ROOT = Path(__file__).resolve().parents[1]
PARTS = ("throughput", "memory", "search", "speedrun")
# speedrun is two hours and more on two cores: run it by name (--only speedrun); --smoke runs it too
DEFAULT_PARTS = ("throughput", "memory", "search")
MODELS = ("two_conv_hidden", "final")
TARGETS: dict[str, Any] = {
    "final": {"ratio": 2.0, "cpu_ratio": 2.0, "peak_fraction": 0.60},
    "two_conv_hidden": {"ratio": 1.5},
    "memory_growth_mb": 100.0,
    "search_time_fraction": 0.10,
    "search_score_points": 1.0,
    "tensorboard_fraction": 0.03,  # of a search's wall time
}
# default / --quick / --smoke budgets
BUDGETS: dict[str, dict[str, Any]] = {
    # slices sized so a timed epoch lasts several seconds even on a quiet machine
    "default": {
        "slice": {"two_conv_hidden": 15000, "final": 8000},
        "epochs": 3,
        "rounds": 4,  # a median of at least 4 alternated rounds: one noisy round cannot decide
        "memory_fits": 20,
        "memory_images": 1000,
        # room for pruning: enough images and epochs that the candidates' curves part
        "search": {"subset": 10000, "n_iter": 10, "cv": 3, "epochs": 10},
        # all 50,000 training images, each recipe's own epochs (None), two seeds per side
        "speedrun": {"subset": None, "epochs": None, "seeds": [0, 1]},
    },
    "quick": {
        "slice": {"two_conv_hidden": 3000, "final": 2000},
        "epochs": 3,
        "rounds": 2,
        "memory_fits": 20,
        "memory_images": 500,
        "search": {"subset": 1500, "n_iter": 4, "cv": 2, "epochs": 2},
        "speedrun": {"subset": 12800, "epochs": 2, "seeds": [0]},
    },
    # every code path once, as fast as it goes: one timed epoch, one round, two candidates
    "smoke": {
        "slice": {"two_conv_hidden": 400, "final": 400},
        "epochs": 2,
        "rounds": 1,
        "memory_fits": 3,
        "memory_images": 200,
        "search": {"subset": 400, "n_iter": 3, "cv": 2, "epochs": 2},  # 2 epochs: room for the 1-epoch probe
        "speedrun": {"subset": 2560, "epochs": 1, "seeds": [0]},  # two batches of 1024
    },
}
SMOKE = "smoke"  # the verdict printed for every target in --smoke mode


def config_path(name: str) -> Path:
    """The checkout's configs/<name>.yaml (the shipped configs, linked at the root)."""
    return ROOT / "configs" / f"{name}.yaml"

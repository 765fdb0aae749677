#!/usr/bin/env bash
# Nightly smoke run: a fresh install, then `cv`, `search` (n_iter 2) and `evaluate --best`
# on a stratified subset (2,000 training and 400 test images, 8 epochs), then checks that
# every expected file exists and parses, that accuracy is clearly above chance, and that
# the whole run stays within SMOKE_LIMIT_S seconds (default 900).
#
# Usage: scripts/nightly_smoke.sh DATA
#   DATA: any data path cnn-cifar accepts (cifar-10-batches-py/, an image-folder archive, ...)
#   SMOKE_REUSE_ENV=1 skips the fresh install and uses the active environment (CI, which
#   has just installed the project into a fresh one).
# Exits non-zero with "SMOKE FAILED: <check>" naming the failed check.
set -euo pipefail

fail() { echo "SMOKE FAILED: $*" >&2; exit 1; }
data="${1:-}"
[ -n "$data" ] || fail "usage: scripts/nightly_smoke.sh DATA"
[ -e "$data" ] || fail "data path '$data' does not exist"
data="$(cd "$(dirname "$data")" && pwd)/$(basename "$data")"
limit="${SMOKE_LIMIT_S:-900}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
start=$SECONDS

if [ -z "${SMOKE_REUSE_ENV:-}" ]; then
    echo "== fresh install into $work/venv"
    python3 -m venv "$work/venv"
    . "$work/venv/bin/activate"
    python -m pip install -q --upgrade pip
    python -m pip install -q "$root" || fail "pip install of the project"
fi
export CNN_CIFAR_RESULTS="$work/results"
export CNN_CIFAR_CACHE="${CNN_CIFAR_CACHE:-$work/cache}"
cd "$root"
# 8 epochs and no early stopping, not 2 epochs: with Keras 1's Adadelta epsilon (1e-8)
# the first steps are small, and 2 (4) epochs on 1,600 images left evaluate --best at
# 13.5% (19.5%) test accuracy, too close to chance (10%) for a check that must not flake.
small=(--data "$data" --subset 2000 --set train.epochs=8 --set train.early_stopping=null)

echo "== cv";       cnn-cifar cv configs/two_conv.yaml "${small[@]}" || fail "cnn-cifar cv exited $?"
echo "== search";   cnn-cifar search configs/search.yaml "${small[@]}" --set search.n_iter=2 \
                        || fail "cnn-cifar search exited $?"
echo "== evaluate"; cnn-cifar evaluate --best "${small[@]}" || fail "cnn-cifar evaluate --best exited $?"
echo "== report";   cnn-cifar report || fail "cnn-cifar report exited $?"

echo "== checks"
python - "$CNN_CIFAR_RESULTS" <<'PY' || exit 1
import csv, json, sys
from pathlib import Path
from PIL import Image

def fail(msg):
    print(f"SMOKE FAILED: {msg}", file=sys.stderr)
    sys.exit(1)

def one_run(command):
    runs = [p.parent for p in Path(sys.argv[1]).glob("*/run.json")
            if json.loads(p.read_text())["command"] == command]
    if len(runs) != 1:
        fail(f"expected one {command} run folder, found {len(runs)}")
    if json.loads((runs[0] / "run.json").read_text())["status"] != "finished":
        fail(f"{command} run status is not finished")
    return runs[0]

def need(folder, name):
    path = folder / name
    if not path.is_file() or path.stat().st_size == 0:
        fail(f"{path} is missing or empty")
    if name.endswith(".json"):
        return json.loads(path.read_text())
    if name.endswith(".csv"):
        return list(csv.DictReader(path.open()))
    if name.endswith(".png"):
        with Image.open(path) as im:
            im.verify()
    return path

chance = 0.1        # CIFAR-10's 10 classes
margin = 0.08
cv = need(one_run("cv"), "cv.json")
if cv["mean_accuracy"] < chance + margin:
    fail(f"cv mean accuracy {cv['mean_accuracy']:.3f} is not clearly above chance ({chance})")
search = one_run("search")
rows = need(search, "cv_results.csv")
if len(rows) != 2:
    fail(f"cv_results.csv has {len(rows)} candidates, expected 2")
best = need(search, "best.json")
for name in ("ranking.txt", "scores.png", "score_vs_params.png"):
    need(search, name)
ev = one_run("evaluate")
metrics = need(ev, "metrics.json")
for name in ("classification_report.txt", "confusion_matrix.png", "confusion_matrix.csv",
             "training_curves.png", "misclassified.png", "model.keras", "summary.md"):
    need(ev, name)
if metrics["accuracy"] < chance + margin:
    fail(f"test accuracy {metrics['accuracy']:.3f} is not clearly above chance ({chance})")
report = Path(sys.argv[1]) / "report.md"
if not report.is_file() or report.read_text().count("\n") < 4:
    fail("report.md is missing or has no rows")
print(f"cv {cv['mean_accuracy']:.3f}, search best {best['best_score']:.3f}, "
      f"test accuracy {metrics['accuracy']:.3f}")
PY

elapsed=$((SECONDS - start))
[ "$elapsed" -le "$limit" ] || fail "took ${elapsed}s, over the ${limit}s limit"
echo "SMOKE OK in ${elapsed}s (limit ${limit}s); results in $CNN_CIFAR_RESULTS"

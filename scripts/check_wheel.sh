#!/usr/bin/env bash
# The built wheel on its own: installed into a fresh virtual environment and run from a
# folder outside the checkout, so every module, the shipped configs and the `cnn-cifar`
# entry point must come from the wheel. A file missing from it fails here.
#
# Usage: scripts/check_wheel.sh DIST_DIR   (a folder with one cnn_cifar-*.whl, from `python -m build`)
set -euo pipefail

fail() { echo "WHEEL CHECK FAILED: $*" >&2; exit 1; }
dist="${1:-}"
[ -n "$dist" ] || fail "usage: scripts/check_wheel.sh DIST_DIR"
wheels=("$dist"/cnn_cifar-*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || fail "want one cnn_cifar-*.whl in $dist"
wheel="$(cd "$(dirname "${wheels[0]}")" && pwd)/$(basename "${wheels[0]}")"
work="$(mktemp -d)"
echo "== install $(basename "$wheel") into a fresh venv ($work/venv)"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" || fail "pip install of the wheel"
bin="$work/venv/bin"
cd "$work"                       # no checkout here: nothing can be read from the source tree
export CNN_CIFAR_CACHE="$work/cache" CNN_CIFAR_RESULTS="$work/results"
unset CNN_CIFAR_DATA

echo "== cnn-cifar --version"
"$bin/cnn-cifar" --version | tee "$work/version.txt"
echo "== every module imports from the wheel, every shipped config loads by name"
"$bin/python" - "$work/version.txt" <<'EOF' || fail "modules, configs or version (above)"
import importlib, importlib.metadata, pathlib, pkgutil, sys

import numpy as np

import cnn_cifar
from cnn_cifar.config.loader import load_config, shipped_configs

where = pathlib.Path(cnn_cifar.__file__).resolve()
assert "site-packages" in where.parts, f"cnn_cifar imported from {where}, not the wheel"
version = importlib.metadata.version("cnn-cifar")
assert version == cnn_cifar.__version__, (version, cnn_cifar.__version__)
shown = pathlib.Path(sys.argv[1]).read_text()
assert shown.strip().endswith(f"version {version}"), f"--version printed {shown!r}"
modules = [m.name for m in pkgutil.walk_packages(cnn_cifar.__path__, "cnn_cifar.")]
for name in modules:
    importlib.import_module(name)
names = shipped_configs()
assert {"two_conv", "two_conv_hidden", "final", "search", "fast"} <= set(names), names
for name in names:
    load_config(name)                      # final.yaml and search.yaml: their base: too
# a small data set: 120 train / 40 test 32x32 RGB images, 4 classes
rng = np.random.default_rng(0)
def images(n):
    y = np.arange(n) % 4
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    x[..., y % 3] //= 2                    # a little signal per class
    return x, y
(x_train, y_train), (x_test, y_test) = images(120), images(40)
np.savez("tiny.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
print(f"{len(modules)} modules, {len(names)} configs ({', '.join(names)}), version {version}")
EOF

echo "== cnn-cifar cv two_conv, one epoch, on a generated npz"
"$bin/cnn-cifar" cv two_conv --data tiny.npz --set train.epochs=1 --threads 2 \
    || fail "cnn-cifar cv exited $?"
ls "$work"/results/*_cv_two_conv/cv.json > /dev/null || fail "no cv.json written"
rm -rf "$work"
echo "wheel check passed"

#!/usr/bin/env bash
# Reproduce the tutorial's study on the full data set, in the tutorial's order:
#   cv of one_conv, one_conv_avg, two_conv, two_conv_hidden; search (configs/search.yaml);
#   evaluate --best; evaluate configs/final.yaml (the tutorial's own winner); the study as
#   one search over its architectures (configs/study.yaml); report.
#
# Usage: scripts/reproduce.sh DATA        (or CNN_CIFAR_DATA=DATA scripts/reproduce.sh)
# Environment:
#   CNN_CIFAR_RESULTS  results folder (default: results)
#   SEARCH_ARGS        extra arguments for the search step, e.g. "--jobs 2" or
#                      "--set search.strategy=halving" (say so wherever you quote its figures)
#   CV_ARGS            extra arguments for the cv steps, e.g. "--jobs 3"
#   STUDY_ARGS         arguments for the study step (default "--subset 5000": 60 fits on
#                      the full data would take hours on 2 cores); "" for the full data
#   EXTRA_ARGS         extra arguments for every step; for trying the script out only,
#                      e.g. "--subset 500 --set train.epochs=1"
#
# Each step runs into its own run folder. A step that finished is skipped when the script
# is run again; an interrupted search is resumed (`cnn-cifar search --resume`), so the
# script can be re-run after any interruption.
set -euo pipefail

data="${1:-${CNN_CIFAR_DATA:-}}"
if [ -z "$data" ]; then
    echo "usage: scripts/reproduce.sh DATA (or set CNN_CIFAR_DATA)" >&2; exit 2
fi
if [ ! -e "$data" ]; then
    echo "reproduce.sh: data path '$data' does not exist" >&2; exit 2
fi
cd "$(dirname "$0")/.."
results="${CNN_CIFAR_RESULTS:-results}"
state="$results/.reproduce"
mkdir -p "$state"
read -r -a search_args <<< "${SEARCH_ARGS:-}"
read -r -a cv_args <<< "${CV_ARGS:-}"
read -r -a study_args <<< "${STUDY_ARGS---subset 5000}"
read -r -a extra_args <<< "${EXTRA_ARGS:-}"

run_folder_of() {  # the run folder a command announced on stderr ("run folder: DIR ...")
    sed -n 's/^run folder: \([^ ]*\).*/\1/p' "$1" | tail -n 1
}

step() {  # step NAME cnn-cifar-arguments...
    local name=$1; shift
    if [ -s "$state/$name" ]; then
        echo "== $name: done earlier in $(cat "$state/$name")"; return
    fi
    local log="$state/$name.log" args=("$@")
    local unfinished
    unfinished=$( [ -f "$log" ] && run_folder_of "$log" || true )
    if [ "$1" = search ] && [ -n "$unfinished" ] && [ -d "$unfinished" ]; then
        echo "== $name: resuming $unfinished"
        args=(search --resume "$unfinished")     # the run's saved config, data and budgets
    fi
    echo "== $name: cnn-cifar ${args[*]}"
    cnn-cifar "${args[@]}" 2>&1 | tee "$log"
    run_folder_of "$log" > "$state/$name"
}

common=(--data "$data" --results-dir "$results" "${extra_args[@]}")
for model in one_conv one_conv_avg two_conv two_conv_hidden; do
    step "cv_$model" cv "configs/$model.yaml" "${common[@]}" "${cv_args[@]}"
done
step search search configs/search.yaml "${common[@]}" "${search_args[@]}"
# the winner is trained on every training image, as the tutorial's final model is, even after a
# search on a --subset (SEARCH_ARGS); only EXTRA_ARGS' own --subset, for trying the script out, cuts it
best_data=(--full-data)
[[ " ${extra_args[*]} " == *" --subset "* ]] && best_data=()
step evaluate_best evaluate --best "$(cat "$state/search")" "${common[@]}" "${best_data[@]}"
step evaluate_final evaluate configs/final.yaml "${common[@]}"
step study search configs/study.yaml "${common[@]}" "${study_args[@]}"
cnn-cifar report --results-dir "$results"

#!/usr/bin/env bash
# Cold and no-op `dvc repro` of the default pipeline in a fresh clone of this repo.
#   bash benchmarks/repro_time.sh
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
git clone -q "$repo" "$tmp/x"
cd "$tmp/x"
rm -rf artifacts checkpoints dvclive reports
t0=$(date +%s.%N); dvc repro -q >/dev/null; t1=$(date +%s.%N)
dvc repro -q >/dev/null; t2=$(date +%s.%N)
echo "command: bash benchmarks/repro_time.sh   ($(nproc) cores)"
printf 'cold dvc repro:  %.1f s\n' "$(echo "$t1 - $t0" | bc)"
printf 'no-op dvc repro: %.2f s\n' "$(echo "$t2 - $t1" | bc)"
dvc metrics show
rm -rf "$tmp"

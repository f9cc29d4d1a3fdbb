#!/usr/bin/env bash
# The ECS table benchmarks of docs/benchmarks.md ("ECS tables"): builds
# jkv-bench in release, runs every configuration ROUNDS times (the whole
# list once per round, so configurations alternate), and prints the median
# ops/s and retries per commit of each, as a Markdown table.
#
#   bench/ecs.sh              3 rounds
#   bench/ecs.sh --rounds=N   N rounds
#   bench/ecs.sh --quick      small counts, 1 round (a smoke run)
#
# Work directory: ${TMPDIR:-/tmp}/jkv-ecs-bench (deleted and remade per run).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=3
SCALE=1
for arg in "$@"; do
  case $arg in
    --rounds=*) ROUNDS=${arg#*=} ;;
    --quick) ROUNDS=1; SCALE=20 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "ecs.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
WORK=${TMPDIR:-/tmp}/jkv-ecs-bench
rm -rf "$WORK"; mkdir -p "$WORK"
cargo build --release -q -p jkv-bench --manifest-path "$ROOT/Cargo.toml"
BENCH="$ROOT/target/release/jkv-bench"
CORES=$(nproc)

# name | flags (ops per thread via --num)
CONFIGS=(
  "ecs_get 1t|--benchmarks=ecs_get --num=$((2000000 / SCALE))"
  "ecs_get ${CORES}t|--benchmarks=ecs_get --num=$((1000000 / SCALE)) --threads=$CORES"
  "ecs_get 1t, rows in tables|--benchmarks=ecs_get --num=$((2000000 / SCALE)) --ecs_compact=1"
  "ecs_update 1t|--benchmarks=ecs_update --num=$((1000000 / SCALE))"
  "ecs_update ${CORES}t|--benchmarks=ecs_update --num=$((500000 / SCALE)) --threads=$CORES"
  "ecs_update 1t sync|--benchmarks=ecs_update --num=$((5000 / SCALE)) --sync=1"
  "ecs_update 8t sync|--benchmarks=ecs_update --num=$((2000 / SCALE)) --sync=1 --threads=8"
  "ecs_range 1t (100 rows)|--benchmarks=ecs_range --num=$((100000 / SCALE))"
  "ecs_range ${CORES}t (100 rows)|--benchmarks=ecs_range --num=$((50000 / SCALE)) --threads=$CORES"
  "ecs_upsert 1t|--benchmarks=ecs_upsert --num=$((1000000 / SCALE))"
  "ecs_upsert ${CORES}t|--benchmarks=ecs_upsert --num=$((500000 / SCALE)) --threads=$CORES"
  "ecs_transfer 1t alpha 0|--benchmarks=ecs_transfer --num=$((1000000 / SCALE))"
  "ecs_transfer ${CORES}t alpha 0|--benchmarks=ecs_transfer --num=$((500000 / SCALE)) --threads=$CORES"
  "ecs_transfer 1t alpha 1.5|--benchmarks=ecs_transfer --num=$((1000000 / SCALE)) --zipf_alpha=1.5"
  "ecs_transfer ${CORES}t alpha 1.5|--benchmarks=ecs_transfer --num=$((500000 / SCALE)) --threads=$CORES --zipf_alpha=1.5"
)

for round in $(seq 1 "$ROUNDS"); do
  for i in "${!CONFIGS[@]}"; do
    flags=${CONFIGS[$i]#*|}
    # shellcheck disable=SC2086
    "$BENCH" $flags --db="$WORK/db" 2>/dev/null | grep '^ecs_' > "$WORK/r$round.c$i" || {
      echo "ecs.sh: config ${CONFIGS[$i]%%|*} failed" >&2; exit 1; }
  done
  echo "round $round done" >&2
done

echo "| configuration | ops/s (median of $ROUNDS) | min | max | retries per commit |"
echo "|---|---:|---:|---:|---:|"
for i in "${!CONFIGS[@]}"; do
  name=${CONFIGS[$i]%%|*}
  cat "$WORK"/r*.c"$i" | awk -v name="$name" 'BEGIN { n = 0 }
    { for (f = 1; f <= NF; f++) if ($f == "ops/sec") v[n] = $(f - 1) + 0;
      r = "-";
      if (index($0, "retries per commit")) { t = $0; sub(/ retries per commit.*/, "", t); sub(/.*\(/, "", t); r = t }
      rs[n] = r; n++ }
    END {
      for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      printf "| %s | %d | %d | %d | %s |\n", name, v[int((n - 1) / 2)], v[0], v[n - 1], rs[0] }'
done

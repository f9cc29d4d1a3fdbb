#!/usr/bin/env bash
# How jkv's cost grows with the size of the database: the scale curve.
#
# For each size (keys × 100 B values, 16 B keys) and each engine, in turn:
#   fill       fillrandom --num=KEYS, then waitforcompaction (one process;
#              its bytes written ÷ user bytes is the fill's write amplification)
#   compact    compact (space amplification = du of the database ÷ live user
#              bytes; fillrandom draws keys with replacement, so KEYS × (1 - 1/e)
#              distinct keys are live)
#   read       readrandom --reads=READS (ops/s, peak RSS and peak anonymous
#              RSS, peak open file descriptors)
#   seek       seekrandom --reads=SEEKS --seek_nexts=10
#   overwrite  overwrite --writes=WRITES, then waitforcompaction (write amplification)
#   open       stats: the wall time of a process that opens the database,
#              prints its stats and closes it
# and records ops/s, write amplification, space amplification, peak RSS,
# peak open file descriptors, manifest size and open time in a TSV, a table
# and a chart (scale-chart: each metric against keys, log scales).
#
#   bench/scale.sh [--sizes=1000000,10000000,100000000] [--engines=jkv,rocksdb]
#                  [--release-rocksdb] [--reads=1000000] [--seeks=100000]
#                  [--writes=1000000] [--workdir=DIR] [--write-doc]
#
# Engines: jkv; rocksdb (Debian's db_bench, built with assertions on);
# rocksdb-release (jkv-bench --engine=rocksdb: RocksDB built in release by
# the rocksdb crate; --release-rocksdb adds it and builds that feature, which
# takes about 20 minutes the first time). The 100M-key size writes about
# 11.6 GB of user data per engine and takes about an hour; it is not part of
# any suite. --write-doc replaces the scale section of docs/benchmarks.md
# (between its SCALE markers) and docs/scale.svg.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZES=1000000,10000000,100000000
ENGINES=jkv,rocksdb
READS=1000000
SEEKS=100000
WRITES=1000000
WORK=${TMPDIR:-/tmp}/jkv-scale
WRITE_DOC=0
RELEASE_ROCKSDB=0
for arg in "$@"; do
  case $arg in
    --sizes=*) SIZES=${arg#*=} ;;
    --engines=*) ENGINES=${arg#*=} ;;
    --release-rocksdb) RELEASE_ROCKSDB=1 ;;
    --reads=*) READS=${arg#*=} ;;
    --seeks=*) SEEKS=${arg#*=} ;;
    --writes=*) WRITES=${arg#*=} ;;
    --workdir=*) WORK=${arg#*=} ;;
    --write-doc) WRITE_DOC=1 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "scale.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
FEATURES=chart
if [ "$RELEASE_ROCKSDB" = 1 ]; then
  FEATURES=chart,rocksdb
  case ",$ENGINES," in *,rocksdb-release,*) ;; *) ENGINES=$ENGINES,rocksdb-release ;; esac
fi
IFS=, read -r -a ENGINE_LIST <<< "$ENGINES"
IFS=, read -r -a SIZE_LIST <<< "$SIZES"

for tool in db_bench /usr/bin/time; do
  if ! command -v "$tool" >/dev/null; then
    echo "scale.sh: $tool is missing (Debian packages rocksdb-tools and time)" >&2
    exit 1
  fi
done

echo "== building jkv-bench (release, features $FEATURES)"
(cd "$ROOT" && cargo build --release -p jkv-bench --features "$FEATURES")
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/jkv-bench
CHART=${CARGO_TARGET_DIR:-$ROOT/target}/release/scale-chart

rm -rf "$WORK"
mkdir -p "$WORK/logs"
RESULTS=$WORK/scale.tsv
printf '# keys\tengine\tmetric\tvalue\n' > "$RESULTS"
COMMON=(--key_size=16 --value_size=100 --compression_type=none --bloom_bits=10
        --write_buffer_size=67108864 --cache_size=67108864)

# run ENGINE LOG FLAGS...: runs one process under /usr/bin/time, polling its
# open file descriptors and anonymous resident memory (RssAnon: heap and
# other private memory, without the mapped file pages that RSS also counts);
# leaves "bytes_written peak_rss_kib wall_secs peak_fds peak_anon_kib" in
# LOG.m.
run() {
  local engine=$1 log=$2
  shift 2
  local -a cmd
  case $engine in
    rocksdb) cmd=(db_bench) ;;
    rocksdb-release) cmd=("$BIN" --engine=rocksdb) ;;
    *) cmd=("$BIN" --engine="$engine") ;;
  esac
  /usr/bin/time -f "%O %M %e" -o "$log.time" "${cmd[@]}" --db="$WORK/db-$engine" "${COMMON[@]}" "$@" \
    > "$log" 2> "$log.err" &
  local tpid=$! peak=0 anon=0 child n a
  while kill -0 "$tpid" 2>/dev/null; do
    child=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$child" ]; then
      n=$(find "/proc/$child/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || true)
      if [ "${n:-0}" -gt "$peak" ]; then peak=$n; fi
      a=$(awk '/^RssAnon:/ {print $2}' "/proc/$child/status" 2>/dev/null || true)
      if [ "${a:-0}" -gt "$anon" ]; then anon=$a; fi
    fi
    sleep 0.2
  done
  if ! wait "$tpid"; then
    echo "scale.sh: $engine failed; see $log.err" >&2
    tail -5 "$log.err" >&2
    exit 1
  fi
  read -r blocks rss wall < <(tail -1 "$log.time")
  echo "$((blocks * 512)) $rss $wall $peak $anon" > "$log.m"
}

# ops LOG NAME: the ops/s of benchmark NAME in LOG.
ops() { awk -v b="$2" '$1 == b && $2 == ":" && $4 == "micros/op" {print $5}' "$1"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" | tee -a "$RESULTS"; }
manifest_bytes() {
  local db=$1
  find "$db" -maxdepth 1 \( -name MANIFEST -o -name 'MANIFEST-*' \) -printf '%s\n' | awk '{s += $1} END {print s + 0}'
}

START=$(date +%s)
for keys in "${SIZE_LIST[@]}"; do
  user_fill=$((keys * 116))
  user_over=$((WRITES * 116))
  live=$(awk -v n="$keys" 'BEGIN {printf "%.0f", n * (1 - exp(-1)) * 116}')
  for engine in "${ENGINE_LIST[@]}"; do
    L=$WORK/logs/$keys-$engine
    db=$WORK/db-$engine
    rm -rf "$db"
    echo "== $keys keys, $engine ($(( $(date +%s) - START )) s)"
    run "$engine" "$L-fill.log" --benchmarks=fillrandom,waitforcompaction --num="$keys"
    record "$keys" "$engine" fillrandom "$(ops "$L-fill.log" fillrandom)"
    read -r bytes _ _ _ < "$L-fill.log.m"
    record "$keys" "$engine" write_amp_fill "$(awk -v b="$bytes" -v u="$user_fill" 'BEGIN {printf "%.2f", b / u}')"

    run "$engine" "$L-compact.log" --benchmarks=compact --use_existing_db=1 --num="$keys"
    du_bytes=$(du -sb "$db" | cut -f1)
    record "$keys" "$engine" space_amp "$(awk -v d="$du_bytes" -v u="$live" 'BEGIN {printf "%.2f", d / u}')"
    record "$keys" "$engine" db_mib "$(awk -v d="$du_bytes" 'BEGIN {printf "%.0f", d / 1048576}')"

    run "$engine" "$L-read.log" --benchmarks=readrandom --use_existing_db=1 --num="$keys" --reads="$READS"
    record "$keys" "$engine" readrandom "$(ops "$L-read.log" readrandom)"
    read -r _ rss _ fds anon < "$L-read.log.m"
    record "$keys" "$engine" peak_rss_mib "$(awk -v r="$rss" 'BEGIN {printf "%.0f", r / 1024}')"
    record "$keys" "$engine" peak_anon_mib "$(awk -v r="$anon" 'BEGIN {printf "%.0f", r / 1024}')"
    record "$keys" "$engine" open_files "$fds"

    run "$engine" "$L-seek.log" --benchmarks=seekrandom --use_existing_db=1 --num="$keys" --reads="$SEEKS" --seek_nexts=10
    record "$keys" "$engine" seekrandom "$(ops "$L-seek.log" seekrandom)"

    run "$engine" "$L-over.log" --benchmarks=overwrite,waitforcompaction --use_existing_db=1 --num="$keys" --writes="$WRITES"
    record "$keys" "$engine" overwrite "$(ops "$L-over.log" overwrite)"
    read -r bytes _ _ _ < "$L-over.log.m"
    record "$keys" "$engine" write_amp_overwrite "$(awk -v b="$bytes" -v u="$user_over" 'BEGIN {printf "%.2f", b / u}')"

    run "$engine" "$L-open.log" --benchmarks=stats --use_existing_db=1 --num="$keys"
    read -r _ _ wall _ < "$L-open.log.m"
    record "$keys" "$engine" open_process_secs "$wall"
    inner=$(awk '$1 == "open" && $2 == ":" {print $3 / 1000}' "$L-open.log")
    if [ -n "$inner" ]; then record "$keys" "$engine" open_secs "$inner"; fi
    record "$keys" "$engine" manifest_bytes "$(manifest_bytes "$db")"
    rm -rf "$db"
  done
done
ELAPSED=$(( $(date +%s) - START ))

SVG=$WORK/scale.svg
if [ "$WRITE_DOC" = 1 ]; then SVG=$ROOT/docs/scale.svg; fi
"$CHART" --results="$RESULTS" --svg="$SVG" \
  --title="jkv-bench scale curve: 16 B keys, 100 B values (log scales)"

GENERATED=$WORK/scale.md
{
  echo "<!-- BEGIN SCALE by bench/scale.sh; edits here are overwritten -->"
  echo
  echo "Produced by \`bench/scale.sh --sizes=$SIZES --engines=$ENGINES --reads=$READS --seeks=$SEEKS --writes=$WRITES\` ($ELAPSED s) at jkv commit \`$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\` on $(date -u '+%Y-%m-%d'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo "Flags of every process: \`${COMMON[*]}\`. One run per size and engine."
  echo
  awk -F'\t' -v engines="$ENGINES" '
    /^#/ { next }
    { v[$1 SUBSEP $2 SUBSEP $3] = $4; if (!($1 in seen)) { seen[$1] = 1; sizes[++ns] = $1 } }
    END {
      ne = split(engines, e, ",")
      nm = split("fillrandom readrandom seekrandom overwrite write_amp_fill write_amp_overwrite space_amp db_mib peak_rss_mib peak_anon_mib open_files manifest_bytes open_secs open_process_secs", m, " ")
      printf "| keys | engine |"
      for (j = 1; j <= nm; j++) printf " %s |", m[j]
      printf "\n|---:|---|"
      for (j = 1; j <= nm; j++) printf "---:|"
      printf "\n"
      for (s = 1; s <= ns; s++) for (i = 1; i <= ne; i++) {
        printf "| %s | %s |", sizes[s], e[i]
        for (j = 1; j <= nm; j++) { x = v[sizes[s] SUBSEP e[i] SUBSEP m[j]]; printf " %s |", (x == "" ? "–" : x) }
        printf "\n"
      }
    }' "$RESULTS"
  echo
  echo "![scale curve](scale.svg)"
  echo
  echo "<!-- END SCALE -->"
} > "$GENERATED"

if [ "$WRITE_DOC" = 1 ]; then
  DOC=$ROOT/docs/benchmarks.md
  if grep -q '<!-- BEGIN SCALE' "$DOC"; then
    { sed '/<!-- BEGIN SCALE/,$d' "$DOC"; cat "$GENERATED"; sed '1,/<!-- END SCALE -->/d' "$DOC"; } > "$DOC.new"
  else
    { cat "$DOC"; echo; echo "## Scale curve"; echo; cat "$GENERATED"; } > "$DOC.new"
  fi
  mv "$DOC.new" "$DOC"
  echo "== wrote $DOC and $SVG"
fi
cat "$GENERATED"
echo "== raw: $RESULTS; logs: $WORK/logs"

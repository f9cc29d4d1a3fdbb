#!/usr/bin/env bash
# Compares jkv with RocksDB (Debian's db_bench) and fjall on one machine.
#
# Builds jkv-bench in release with the peer features, runs the suite below on
# each engine with identical db_bench flags, in alternating order (jkv,
# rocksdb, fjall, jkv, rocksdb, fjall, ...) for several rounds, and reports
# the median ops/s per workload and jkv's ratio to the best peer.
#
#   bench/compare.sh            full scale, 3 rounds; rewrites the generated part
#                               of docs/benchmarks.md and docs/benchmarks.svg
#   bench/compare.sh --quick    small scale (a few minutes); writes only to the work dir
#
# Options: --rounds=N, --workdir=DIR (default ${TMPDIR:-/tmp}/jkv-compare),
# --engines=LIST (default jkv,rocksdb,fjall,redb), --write-doc / --no-doc,
# --steps=LIST (run only these steps, by the names listed in STEPS below),
# --release-rocksdb (adds the engine rocksdb-release: RocksDB's C++ library
# built in release by the rocksdb crate, through jkv-bench --engine=rocksdb;
# the first build takes about 20 minutes, later runs reuse it).
# --sections=LIST (default main,compressed; compressed alone runs only the
# compressed section: jkv, rocksdb and fjall), and for the compressed
# section db_bench's --compression_type=none|lz4|zstd (default lz4; fjall
# has none and lz4 only) and --compression_ratio=R (default 0.5).
# redb (a B-tree) runs the steps whose data the read workloads need and
# counts as a peer on read workloads only; it skips the synced-write and
# KV-separation steps.
#
# RocksDB is Debian's rocksdb-tools (RocksDB 7.8), whose db_bench is built
# with assertions enabled (it prints "Assertions are enabled; benchmarks
# unnecessarily slow"): its figures are a floor for RocksDB, not its best.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
ROUNDS=3
WORK=${TMPDIR:-/tmp}/jkv-compare
ENGINES=jkv,rocksdb,fjall,redb
WRITE_DOC=auto
SECTIONS=main,compressed
COMPRESSION_TYPE=lz4
COMPRESSION_RATIO=0.5
ONLY_STEPS=
RELEASE_ROCKSDB=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --rounds=*) ROUNDS=${arg#*=} ;;
    --workdir=*) WORK=${arg#*=} ;;
    --engines=*) ENGINES=${arg#*=} ;;
    --write-doc) WRITE_DOC=1 ;;
    --no-doc) WRITE_DOC=0 ;;
    --sections=*) SECTIONS=${arg#*=} ;;
    --compression_type=*) COMPRESSION_TYPE=${arg#*=} ;;
    --compression_ratio=*) COMPRESSION_RATIO=${arg#*=} ;;
    --steps=*) ONLY_STEPS=${arg#*=} ;;
    --release-rocksdb) RELEASE_ROCKSDB=1 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
[ "$WRITE_DOC" = auto ] && WRITE_DOC=$((1 - QUICK))
IFS=, read -r -a ENGINE_LIST <<< "$ENGINES"
FEATURES=fjall,redb,chart

# --- release-built RocksDB peer (--release-rocksdb) ---------------------------
# jkv-bench's `rocksdb` feature links the crates.io rocksdb crate, which builds
# RocksDB's C++ library from source in release (NDEBUG: no assertions). The
# build is cached in the cargo target directory, so only the first run pays
# for it; CI never builds it (default features do not need it).
release_rocksdb_setup() {
  [ "$RELEASE_ROCKSDB" = 1 ] || return 0
  FEATURES=$FEATURES,rocksdb
  case ",$ENGINES," in *,rocksdb-release,*) ;; *) ENGINES=$ENGINES,rocksdb-release ;; esac
  IFS=, read -r -a ENGINE_LIST <<< "$ENGINES"
}
release_rocksdb_setup

if [ "$QUICK" = 1 ]; then
  SCALE=quick
  N=100000; READS=100000; SEEKS=20000; SYNC=1000; RWW_SECS=3; BIG_N=10000; BIG_READS=10000; DD_MIB=256
  HUGE_N=1000
else
  SCALE=full
  N=2000000; READS=1000000; SEEKS=200000; SYNC=20000; RWW_SECS=20; BIG_N=200000; BIG_READS=100000; DD_MIB=1024
  HUGE_N=25000
fi

# --- tools ------------------------------------------------------------------
if ! command -v db_bench >/dev/null; then
  echo "== installing rocksdb-tools (RocksDB's db_bench)"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "compare.sh: db_bench is missing; install Debian's rocksdb-tools as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y rocksdb-tools || { apt-get update && apt-get install -y rocksdb-tools; }
fi

if [ ! -x /usr/bin/time ]; then
  echo "== installing GNU time (bytes written and peak memory per engine)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y time || { apt-get update && apt-get install -y time; }
fi

echo "== building jkv-bench (release, features $FEATURES)"
(cd "$ROOT" && cargo build --release -p jkv-bench --features "$FEATURES")
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/jkv-bench
CHART=${CARGO_TARGET_DIR:-$ROOT/target}/release/bench-chart

rm -rf "$WORK"
mkdir -p "$WORK/logs"
RESULTS=$WORK/results.tsv
printf '# workload\tengine\tround\tops_per_sec\n' > "$RESULTS"
FOOTPRINT=$WORK/footprint.tsv
printf '# step\tengine\tround\tbytes_written\tpeak_rss_kib\tdb_bytes\n' > "$FOOTPRINT"

# --- machine facts ------------------------------------------------------------
echo "== measuring the machine"
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' || true)
CORES=$(nproc)
MEM_GIB=$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
FS=$(df -T "$WORK" | awk 'NR == 2 {print $2}')
DD=$(dd if=/dev/zero of="$WORK/dd.tmp" bs=1M count="$DD_MIB" conv=fdatasync 2>&1 | tail -1)
rm -f "$WORK/dd.tmp"
DD_RATE=$(echo "$DD" | awk -F', ' '{print $NF}')
FSYNC_LINES=$("$BIN" --benchmarks=fsyncrate,fsyncsized --num=2000 --value_size=100 --db="$WORK/fsync-probe")
FSYNC_RATE=$(echo "$FSYNC_LINES" | awk '$1 == "fsyncrate" && $4 == "micros/op" {print $5}')
FSYNC_SIZED_RATE=$(echo "$FSYNC_LINES" | awk '$1 == "fsyncsized" && $4 == "micros/op" {print $5}')
rm -rf "$WORK/fsync-probe"
ROCKSDB_VERSION=$(dpkg-query -W -f='${Version}' rocksdb-tools 2>/dev/null || echo unknown)
FJALL_VERSION=$(awk '/^name = "fjall"$/ {getline; gsub(/"/, "", $3); print $3}' "$ROOT/Cargo.lock")
REDB_VERSION=$(awk '/^name = "redb"$/ {getline; gsub(/"/, "", $3); print $3}' "$ROOT/Cargo.lock")
# librocksdb-sys's version reads 0.x.y+A.B.C, A.B.C being RocksDB's.
ROCKSDB_RELEASE_VERSION=$(awk '/^name = "librocksdb-sys"$/ {getline; gsub(/"/, "", $3); sub(/.*\+/, "", $3); print $3}' "$ROOT/Cargo.lock")
RUSTC_VERSION=$(rustc --version)
JKV_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "   $CORES cores ($CPU), $MEM_GIB GiB, $FS; dd: $DD_RATE; fdatasync: $FSYNC_RATE appends/s, $FSYNC_SIZED_RATE writes/s into a pre-sized file"

# --- compressed section -------------------------------------------------------
# fillrandom, overwrite, compact, readrandom and seekrandom with
# --compression_type blocks (default LZ4) and values generated to compress to
# --compression_ratio (default half; db_bench's generator), on jkv, RocksDB
# and fjall with the same flags, alternating engines, $ROUNDS rounds. Reports
# median ops/s, the compact step's seconds and `du -sb` of the database after
# compact, with jkv's ratio to the best peer; writes its own part of
# docs/benchmarks.md, between the COMPRESSED markers.
compressed_section() {
  local -a flags=(--key_size=16 --value_size=100 --compression_type="$COMPRESSION_TYPE"
                  --compression_ratio="$COMPRESSION_RATIO"
                  --bloom_bits=10 --write_buffer_size=67108864 --cache_size=67108864)
  local -a engines=()
  local e
  for e in "${ENGINE_LIST[@]}"; do
    case $e in
      jkv|rocksdb) engines+=("$e") ;;
      fjall) case $COMPRESSION_TYPE in none|lz4) engines+=("$e") ;; *) echo "== compressed: fjall has no $COMPRESSION_TYPE; left out" ;; esac ;;
    esac
  done
  local results=$WORK/compressed.tsv
  printf '# workload\tengine\tround\tvalue\n' > "$results"
  local -a steps=(
    "load|--benchmarks=fillrandom,overwrite --num=$N"
    "compact|--benchmarks=compact --use_existing_db=1 --num=$N"
    "read|--benchmarks=readrandom --use_existing_db=1 --num=$N --reads=$READS"
    "seek|--benchmarks=seekrandom --use_existing_db=1 --num=$N --reads=$SEEKS --seek_nexts=10"
  )
  local start round step name step_flags engine log db
  start=$(date +%s)
  for round in $(seq 1 "$ROUNDS"); do
    for step in "${steps[@]}"; do
      IFS='|' read -r name step_flags <<< "$step"
      for engine in "${engines[@]}"; do
        db=$WORK/cdb-$engine
        log=$WORK/logs/compressed-round$round-$name-$engine.log
        echo "== compressed: round $round/$ROUNDS, $name, $engine ($(( $(date +%s) - start )) s)"
        # shellcheck disable=SC2086 # $step_flags is a list of flags
        case $engine in
          rocksdb) db_bench --db="$db" "${flags[@]}" $step_flags > "$log" 2> "$log.err" ;;
          *) "$BIN" --engine="$engine" --db="$db" "${flags[@]}" $step_flags > "$log" 2> "$log.err" ;;
        esac || { echo "compare.sh: $engine failed in compressed step $name; see $log.err" >&2; tail -5 "$log.err" >&2; exit 1; }
        awk -v e="$engine" -v r="$round" '
          $2 == ":" && $4 == "micros/op" && $1 == "compact" {printf "compact_secs\t%s\t%s\t%.3f\n", e, r, $3 / 1e6}
          $2 == ":" && $4 == "micros/op" && $1 != "compact" {printf "%s\t%s\t%s\t%s\n", $1, e, r, $5}' "$log" | tee -a "$results"
        if [ "$name" = compact ]; then
          printf 'disk_mib\t%s\t%s\t%.1f\n' "$engine" "$round" \
            "$(du -sb "$db" | awk '{print $1 / 1048576}')" | tee -a "$results"
        fi
      done
    done
  done
  local elapsed=$(( $(date +%s) - start ))
  local table
  table=$(awk -F'\t' -v engines="$(IFS=,; echo "${engines[*]}")" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      if (n == 0) return ""
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    /^#/ { next }
    { v[$1, $2] = v[$1, $2] " " $4 }
    END {
      ne = split(engines, e, ",")
      head = "| workload |"; rule = "|---|"
      for (i = 1; i <= ne; i++) { head = head " " e[i] " |"; rule = rule "---:|" }
      print head " jkv vs best peer |"; print rule "---:|"
      nw = split("fillrandom overwrite readrandom seekrandom compact_secs disk_mib", w, " ")
      for (k = 1; k <= nw; k++) {
        label = w[k]
        if (label == "compact_secs") label = "compact (s, lower is better)"
        else if (label == "disk_mib") label = "disk after compact (MiB, lower is better)"
        else label = label " (ops/s)"
        row = "| " label " |"; best = ""; mine = ""
        for (i = 1; i <= ne; i++) {
          m = median(v[w[k], e[i]])
          row = row " " (m == "" ? "–" : m) " |"
          if (e[i] == "jkv") mine = m
          else if (m != "" && (best == "" || (w[k] ~ /^(compact_secs|disk_mib)$/ ? m + 0 < best + 0 : m + 0 > best + 0))) best = m
        }
        if (mine == "" || best == "" || mine + 0 == 0) r = "–"
        else if (w[k] ~ /^(compact_secs|disk_mib)$/) r = sprintf("%.2fx of the best peer", mine / best)
        else r = sprintf("%.2fx", mine / best)
        print row " " r " |"
      }
    }' "$results")
  local generated=$WORK/compressed.md
  {
    echo "<!-- BEGIN COMPRESSED by bench/compare.sh; edits here are overwritten -->"
    echo
    echo "Produced by \`bench/compare.sh --sections=compressed$([ "$QUICK" = 1 ] && echo " --quick") --rounds=$ROUNDS --compression_type=$COMPRESSION_TYPE --compression_ratio=$COMPRESSION_RATIO\` (scale: $SCALE, engines alternating, $elapsed s) at jkv commit \`$JKV_COMMIT\` on $(date -u '+%Y-%m-%d'); $CORES cores ($CPU), $FS."
    echo
    echo "**Flags** (every engine): \`${flags[*]}\`. Steps: \`load\` = fillrandom + overwrite of $N keys, \`compact\`, \`readrandom\` ($READS reads), \`seekrandom\` ($SEEKS seeks, 10 nexts each). Disk = \`du -sb\` of the database right after \`compact\`. Medians of $ROUNDS rounds. The RocksDB column is Debian's db_bench $ROCKSDB_VERSION (built with assertions: a floor for RocksDB); fjall $FJALL_VERSION."
    echo
    echo "$table"
    echo
    echo "<!-- END COMPRESSED -->"
  } > "$generated"
  if [ "$WRITE_DOC" = 1 ]; then
    local doc=$ROOT/docs/benchmarks.md
    if grep -q '<!-- BEGIN COMPRESSED' "$doc"; then
      { sed '/<!-- BEGIN COMPRESSED/,$d' "$doc"; cat "$generated"; sed '1,/<!-- END COMPRESSED -->/d' "$doc"; } > "$doc.new"
    else
      { cat "$doc"; echo; cat "$generated"; } > "$doc.new"
    fi
    mv "$doc.new" "$doc"
    echo "== wrote the compressed section of $doc"
  fi
  cat "$generated"
}

if [[ ,$SECTIONS, != *,main,* ]]; then
  [[ ,$SECTIONS, == *,compressed,* ]] && compressed_section
  exit 0
fi

# --- the suite ------------------------------------------------------------------
COMMON=(--key_size=16 --value_size=100 --compression_type=none --bloom_bits=10
        --write_buffer_size=67108864 --cache_size=67108864)

# step name | label suffix | flags
STEPS=(
  "fillseq||--benchmarks=fillseq --num=$N"
  "load||--benchmarks=fillrandom,overwrite --num=$N"
  "compact||--benchmarks=compact --use_existing_db=1 --num=$N"
  "read||--benchmarks=readrandom,readseq --use_existing_db=1 --num=$N --reads=$READS"
  "seek||--benchmarks=seekrandom --use_existing_db=1 --num=$N --reads=$SEEKS --seek_nexts=10"
  "rww| (2 threads)|--benchmarks=readwhilewriting --use_existing_db=1 --num=$N --threads=2 --duration=$RWW_SECS"
  "sync1| (1 thread)|--benchmarks=fillsync --num=$N --writes=$SYNC --threads=1"
  "sync8| (8 threads)|--benchmarks=fillsync --num=$N --writes=$((SYNC / 8)) --threads=8"
  "big| 4 KiB|--benchmarks=fillrandom,readrandom --num=$BIG_N --reads=$BIG_READS --value_size=4096"
  "bigsep| 4 KiB, KV separation|--benchmarks=fillrandom,readrandom --num=$BIG_N --reads=$BIG_READS --value_size=4096 KVSEP"
  "hugesep| 64 KiB, KV separation|--benchmarks=fillrandom --num=$HUGE_N --value_size=65536 KVSEP"
)

# Runs one step on one engine; prints the engine's output into the log and
# the process's bytes written (getrusage block outputs x 512, the kernel's
# write_bytes: what reached the page cache for the disk, all threads) and
# peak RSS in KiB into $3.
run_step() {
  local engine=$1 flags=$2 timing=$3 db=$WORK/db-$1
  local -a extra=()
  if [[ $flags == *KVSEP* ]]; then
    flags=${flags/ KVSEP/}
    case $engine in
      rocksdb) extra=(--enable_blob_files=1 --min_blob_size=1024) ;;
      *) extra=(--value_threshold=1024) ;;
    esac
  fi
  # shellcheck disable=SC2086 # $flags is a list of flags
  case $engine in
    rocksdb) /usr/bin/time -f "%O %M" -o "$timing" db_bench --db="$db" "${COMMON[@]}" $flags "${extra[@]}" ;;
    rocksdb-release) /usr/bin/time -f "%O %M" -o "$timing" "$BIN" --engine=rocksdb --db="$db" "${COMMON[@]}" $flags "${extra[@]}" ;;
    *) /usr/bin/time -f "%O %M" -o "$timing" "$BIN" --engine="$engine" --db="$db" "${COMMON[@]}" $flags "${extra[@]}" ;;
  esac
}

START=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name suffix flags <<< "$step"
    if [ -n "$ONLY_STEPS" ] && [[ ",$ONLY_STEPS," != *",$name,"* ]]; then
      continue
    fi
    for engine in "${ENGINE_LIST[@]}"; do
      if [ "$engine" = redb ] && [[ $name =~ ^(sync1|sync8|bigsep|hugesep)$ ]]; then
        continue
      fi
      log=$WORK/logs/round$round-$name-$engine.log
      echo "== round $round/$ROUNDS, $name, $engine ($(( $(date +%s) - START )) s)"
      if ! run_step "$engine" "$flags" "$log.time" > "$log" 2> "$log.err"; then
        echo "compare.sh: $engine failed in step $name; see $log.err" >&2
        tail -5 "$log.err" >&2
        exit 1
      fi
      awk -v e="$engine" -v r="$round" -v s="$suffix" \
        '$2 == ":" && $4 == "micros/op" && $1 != "compact" {printf "%s%s\t%s\t%s\t%s\n", $1, s, e, r, $5}' \
        "$log" | tee -a "$RESULTS"
      read -r out_blocks peak_kib < <(tail -1 "$log.time")
      db_bytes=$(du -sb "$WORK/db-$engine" 2>/dev/null | cut -f1)
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$engine" "$round" \
        "$((out_blocks * 512))" "$peak_kib" "${db_bytes:-0}" >> "$FOOTPRINT"
    done
  done
done
ELAPSED=$(( $(date +%s) - START ))

# --- large values and synced writes against the disk (issue 14's targets) ------
# Medians from $RESULTS: jkv's large-value fills in MB/s against dd's
# sequential rate measured above, and against the best peer that ran the step;
# fillsync against the fdatasync append rate (fsyncrate) of the same run.
large_value_targets() {
  local dd_mbps
  dd_mbps=$(echo "$DD" | awk -F', ' '{split($1, b, " "); split($(NF-1), t, " "); if (t[1] > 0) printf "%.0f", b[1] / t[1] / 1e6}')
  awk -F'\t' -v engines="$ENGINES" -v dd="${dd_mbps:-0}" -v fsr="${FSYNC_RATE:-0}" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      if (n == 0) return ""
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    /^#/ { next }
    { ops[$1 SUBSEP $2] = ops[$1 SUBSEP $2] " " $4 }
    function best_peer(w,   ne, e, i, m, b, who) {
      ne = split(engines, e, ","); b = 0; who = "–"
      for (i = 1; i <= ne; i++) {
        if (e[i] == "jkv" || (e[i] == "redb" && w !~ /^(read|seek)/)) continue
        m = median(ops[w SUBSEP e[i]])
        if (m != "" && m + 0 > b) { b = m + 0; who = e[i] }
      }
      best = b; best_who = who
    }
    function row(w, value_bytes,   j, mbps) {
      j = median(ops[w SUBSEP "jkv"])
      if (j == "") return
      best_peer(w)
      mbps = j * (16 + value_bytes) / 1e6
      printf "| %s | %.0f | %.0f MB/s | %s | %s | %s |\n", w, j, mbps,
        (dd > 0 ? sprintf("%.0f%%", 100 * mbps / dd) : "–"),
        (best > 0 ? sprintf("%.0f (%s)", best, best_who) : "–"),
        (best > 0 ? sprintf("%.2f×", j / best) : "–")
    }
    END {
      print "| workload | jkv ops/s | jkv MB/s (16 B keys + values) | of dd'"'"'s " dd " MB/s | best peer ops/s | jkv ÷ best peer |"
      print "|---|---:|---:|---:|---:|---:|"
      row("fillrandom 4 KiB, KV separation", 4096)
      row("fillrandom 64 KiB, KV separation", 65536)
      row("fillrandom 4 KiB", 4096)
      one = median(ops["fillsync (1 thread)" SUBSEP "jkv"]); eight = median(ops["fillsync (8 threads)" SUBSEP "jkv"])
      if (one != "") {
        print ""
        printf "fillsync, 1 thread: %.0f ops/s = %s of fsyncrate'"'"'s %s appends/s", one, (fsr > 0 ? sprintf("%.0f%%", 100 * one / fsr) : "–"), fsr
        if (eight != "") printf "; 8 threads: %.0f ops/s = %.2f× one thread", eight, eight / one
        print "."
      }
    }' "$RESULTS"
}

# --- report ---------------------------------------------------------------------
LABELS=""
for engine in "${ENGINE_LIST[@]}"; do
  case $engine in
    rocksdb) label="RocksDB $ROCKSDB_VERSION (db_bench with assertions)" ;;
    rocksdb-release) label="RocksDB $ROCKSDB_RELEASE_VERSION (release build)" ;;
    fjall) label="fjall $FJALL_VERSION" ;;
    redb) label="redb $REDB_VERSION" ;;
    *) label=$engine ;;
  esac
  LABELS=${LABELS:+$LABELS,}$label
done
if [ "$WRITE_DOC" = 1 ]; then SVG=$ROOT/docs/benchmarks.svg; else SVG=$WORK/benchmarks.svg; fi
TABLE=$("$CHART" --results="$RESULTS" --svg="$SVG" --engines="$ENGINES" --labels="$LABELS" --runs=1 \
  --title="jkv-bench suite ($SCALE scale): ops/s relative to the fastest engine, median of $ROUNDS rounds")

# Footprint table: medians per engine of the load step's bytes written and
# peak RSS and of the database size after the compact step.
FOOTPRINT_TABLE=$(awk -F'\t' -v engines="$ENGINES" -v labels="$LABELS" -v user=$((2 * N * 116)) '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    if (n == 0) return ""
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  /^#/ { next }
  $1 == "load" { wa[$2] = wa[$2] " " $4 / user; rss[$2] = rss[$2] " " $5 / 1024 }
  $1 == "compact" { du[$2] = du[$2] " " $6 / 1048576 }
  END {
    ne = split(engines, e, ","); split(labels, l, ",")
    print "| engine | write amplification, fillrandom + overwrite | peak memory, fillrandom + overwrite (MiB) | disk after compact (MiB) |"
    print "|---|---:|---:|---:|"
    for (i = 1; i <= ne; i++) {
      w = median(wa[e[i]]); r = median(rss[e[i]]); d = median(du[e[i]])
      printf "| %s | %s | %s | %s |\n", l[i], (w == "" ? "–" : sprintf("%.2f", w)), (r == "" ? "–" : sprintf("%.0f", r)), (d == "" ? "–" : sprintf("%.1f", d))
    }
  }' "$FOOTPRINT")

GENERATED=$WORK/generated.md
{
  echo "<!-- BEGIN GENERATED by bench/compare.sh; edits here are overwritten -->"
  echo
  echo "Produced by \`bench/compare.sh$([ "$QUICK" = 1 ] && echo " --quick")\` (scale: $SCALE, $ROUNDS rounds, engines in alternating order, $ELAPSED s) at jkv commit \`$JKV_COMMIT\` on $(date -u '+%Y-%m-%d')."
  echo
  echo "**Machine.** $CORES cores ($CPU), $MEM_GIB GiB memory, $FS file system."
  echo "Sequential write with \`dd if=/dev/zero bs=1M count=$DD_MIB conv=fdatasync\`: $DD_RATE."
  echo "Synced writes (\`jkv-bench --benchmarks=fsyncrate,fsyncsized --num=2000 --value_size=100\`: write 100 B, then \`fdatasync\`): $FSYNC_RATE per second appending to a file, $FSYNC_SIZED_RATE per second writing into a file pre-sized with \`set_len\` (no file-size change to make durable)."
  echo "$RUSTC_VERSION; RocksDB from Debian's rocksdb-tools $ROCKSDB_VERSION; fjall $FJALL_VERSION; redb $REDB_VERSION."
  echo
  echo "**Common flags** (every engine): \`${COMMON[*]}\`. Steps, each a separate process per engine:"
  echo
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name suffix flags <<< "$step"
    flags=${flags/ KVSEP/ + KV separation (jkv and fjall: --value_threshold=1024; db_bench: --enable_blob_files=1 --min_blob_size=1024)}
    echo "- \`$name\`: \`$flags\`"
  done
  echo
  echo "Median ops/s (higher is better). *The RocksDB column is Debian's db_bench, built with assertions enabled: a floor for RocksDB, not its best.* redb, a B-tree, is a peer on read workloads only (its write figures are shown, marked, and not counted); it does not run the synced-write and KV-separation steps."
  echo
  echo "$TABLE"
  echo
  echo "**Footprint** (medians of $ROUNDS rounds, measured the same way for every engine with \`/usr/bin/time -f '%O %M'\`: bytes written = the process's block outputs × 512, i.e. the kernel's write_bytes; peak memory = maximum RSS, which counts mapped file pages a process touched). Write amplification = bytes written by the \`load\` step (fillrandom + overwrite) ÷ their user bytes (2 × $N × (16 + 100) B); disk = \`du -sb\` of the database after the \`compact\` step."
  echo
  echo "$FOOTPRINT_TABLE"
  echo
  echo "**Large values and synced writes against the disk** (medians; MB/s counts keys and values as written by the caller):"
  echo
  large_value_targets
  echo
  echo "![ops/s relative to the fastest engine per workload](benchmarks.svg)"
  echo
  echo "<!-- END GENERATED -->"
} > "$GENERATED"

if [ "$WRITE_DOC" = 1 ]; then
  DOC=$ROOT/docs/benchmarks.md
  if [ -f "$DOC" ] && grep -q '<!-- BEGIN GENERATED' "$DOC"; then
    { sed '/<!-- BEGIN GENERATED/,$d' "$DOC"; cat "$GENERATED"; sed '1,/<!-- END GENERATED -->/d' "$DOC"; } > "$DOC.new"
  else
    { echo "# Benchmarks"; echo; cat "$GENERATED"; } > "$DOC.new"
  fi
  mv "$DOC.new" "$DOC"
  echo "== wrote $DOC and $SVG"
fi
cat "$GENERATED"
echo "== raw runs: $RESULTS and $FOOTPRINT; logs: $WORK/logs"
if [[ ,$SECTIONS, == *,compressed,* ]]; then
  compressed_section
fi

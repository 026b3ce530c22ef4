#!/usr/bin/env bash
# Benchmark dropgate's items import against a plain sqlite3 .import.
#
# Usage: scripts/bench-import.sh
#   ITEMS=1000000  number of item lines to generate (default 1000000)
#   RUNS=3         runs per scenario; the table shows the median wall time
#
#   e.g. ITEMS=50000 RUNS=1 scripts/bench-import.sh   # quick smoke run
#
# Scenarios, each run starting from a fresh data dir:
#   a  first import of items_full.csv        (all added)
#   b  re-import of items_full.csv           (all unchanged)
#   c  STOCK import of items_stock.csv       (10% dropped -> cleared,
#                                             10% of the rest modified)
#   ref  sqlite3 .import of items_full.csv into one table with a unique
#        index on the item identity, WAL + synchronous=FULL like dropgate
# Targets: wall time as a ratio of ref's median (a <= 1.0, b <= 0.5,
# c <= 1.2) and peak RSS <= 200 MB for a, b and c.
#
# Needs: cargo, python3, sqlite3 (>= 3.32 for .import --skip) and GNU time
# at /usr/bin/time (Debian/Ubuntu: apt-get install time).
set -euo pipefail

ITEMS=${ITEMS:-1000000}
RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/dropgate

die() { echo "bench-import: $*" >&2; exit 1; }

[[ $ITEMS =~ ^[0-9]+$ && $ITEMS -ge 10 ]] || die "ITEMS must be an integer >= 10"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "RUNS must be an integer >= 1"
# The shell builtin `time` cannot report peak RSS; GNU time can.
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian/Ubuntu: apt-get install time)"
command -v sqlite3 >/dev/null || die "sqlite3 not found (Debian/Ubuntu: apt-get install sqlite3)"
command -v python3 >/dev/null || die "python3 not found"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
clean_environment

echo "== building release binary"
(cd "$ROOT" && cargo build --release --quiet)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-import.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "== generating $ITEMS items into $WORK"
python3 "$ROOT/scripts/gen_items.py" "$WORK" --items "$ITEMS"
STOCK_ROWS=$((ITEMS - ITEMS / 10))
EXPECT_CLEARED=$((ITEMS / 10))
EXPECT_MODIFIED=$((STOCK_ROWS / 10))
stat -c '%n %s' "$WORK"/*.csv | awk '{ sub(/.*\//, "", $1); printf "   %-16s %6.1f MB\n", $1, $2 / 1e6 }'

RESULTS=$WORK/results.tsv   # scenario  run  wall_s  rss_kb
: >"$RESULTS"
COUNT_MISMATCH=0

# timed SCENARIO RUN CMD...: runs CMD under GNU time, stdout to
# $WORK/SCENARIO.out, and appends the wall time and peak RSS to $RESULTS.
# Returns CMD's exit status so the caller can look at the report first.
timed() {
    local scenario=$1 run=$2 rc=0
    shift 2
    /usr/bin/time -v -o "$WORK/$scenario.time" "$@" >"$WORK/$scenario.out" 2>"$WORK/$scenario.err" || rc=$?
    awk -v s="$scenario" -v r="$run" '
        /Elapsed \(wall clock\)/ {
            n = split($NF, p, ":"); wall = 0
            for (i = 1; i <= n; i++) wall = wall * 60 + p[i]
        }
        /Maximum resident set size/ { rss = $NF }
        END { printf "%s\t%s\t%.2f\t%d\n", s, r, wall, rss }
    ' "$WORK/$scenario.time" >>"$RESULTS"
    return "$rc"
}

# check_report LABEL FILE [KEY=EXPECTED]...: dies unless the (one-line JSON)
# report says success; prints the counts; flags counts that differ from
# what the generator guarantees, since then the timings measure something
# else (e.g. a STOCK import that refused to clear).
check_report() {
    local label=$1 file=$2 rc=0
    shift 2
    python3 - "$label" "$file" "$@" <<'EOF' || rc=$?
import json, sys
label, path, expects = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    with open(path) as f:
        r = json.loads(f.readline())
except (OSError, ValueError) as e:
    print(f"   {label}: no readable report ({e})", file=sys.stderr)
    sys.exit(2)
if r.get("success") is not True:
    print(f"   {label}: FAILED {r.get('error_code')}: {r.get('error_description')}",
          file=sys.stderr)
    sys.exit(2)
keys = ["lines_read", "lines_imported", "nb_item_added", "nb_item_modified",
        "nb_item_unchanged", "nb_item_cleared", "nb_exception_lines"]
print(f"   {label}: " + " ".join(f"{k}={r.get(k)}" for k in keys))
for w in r.get("warnings") or []:
    print(f"   {label}: warning: {w}", file=sys.stderr)
bad = False
for e in expects:
    k, v = e.split("=", 1)
    if str(r.get(k)) != v:
        print(f"   {label}: MISMATCH {k}={r.get(k)}, expected {v}", file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
EOF
    case $rc in
        0) ;;
        1) COUNT_MISMATCH=1 ;;
        *) echo "   stderr of the command:" >&2; sed 's/^/     /' "$WORK/$label.err" >&2 2>/dev/null || true
           die "$label: import did not succeed" ;;
    esac
}

for run in $(seq 1 "$RUNS"); do
    echo "== run $run/$RUNS"
    DATA=$WORK/data
    rm -rf "$DATA"
    "$BIN" --data-dir "$DATA" account add bench 2>"$WORK/account.err" >/dev/null \
        || { cat "$WORK/account.err" >&2; die "account add failed"; }
    # Clients are a prerequisite, not a scenario: not timed.
    "$BIN" --data-dir "$DATA" import --account bench "$WORK/clients.csv" \
        >"$WORK/clients.out" 2>"$WORK/clients.err" || true
    check_report clients "$WORK/clients.out" nb_client_added=20000

    timed a "$run" "$BIN" --data-dir "$DATA" import --account bench "$WORK/items_full.csv" || true
    check_report a "$WORK/a.out" nb_item_added="$ITEMS" nb_exception_lines=0

    timed b "$run" "$BIN" --data-dir "$DATA" import --account bench "$WORK/items_full.csv" || true
    check_report b "$WORK/b.out" nb_item_unchanged="$ITEMS" nb_exception_lines=0

    timed c "$run" "$BIN" --data-dir "$DATA" import --account bench \
        --option clear_items_not_modified=true "$WORK/items_stock.csv" || true
    check_report c "$WORK/c.out" nb_item_modified="$EXPECT_MODIFIED" \
        nb_item_cleared="$EXPECT_CLEARED" nb_exception_lines=0

    # The data dir of a full run is large; keep at most one on disk.
    rm -rf "$DATA"

    DB=$WORK/ref.db
    rm -f "$DB" "$DB-wal" "$DB-shm"
    timed ref "$run" sqlite3 -bail "$DB" \
        "PRAGMA journal_mode=WAL;" \
        "PRAGMA synchronous=FULL;" \
        "CREATE TABLE items(client_code TEXT, item_type TEXT, item_number TEXT, item_date_issue TEXT, item_date_due TEXT, item_amount_initial_inc_tax TEXT, item_currency TEXT);" \
        "CREATE UNIQUE INDEX items_key ON items(item_number, item_date_issue);" \
        ".mode csv" \
        ".separator ;" \
        ".import --skip 1 $WORK/items_full.csv items" \
        || { cat "$WORK/ref.err" >&2; die "sqlite3 reference import failed"; }
    ref_rows=$(sqlite3 "$DB" "SELECT count(*) FROM items;")
    echo "   ref: rows=$ref_rows"
    [[ $ref_rows == "$ITEMS" ]] || { echo "   ref: MISMATCH rows=$ref_rows, expected $ITEMS" >&2; COUNT_MISMATCH=1; }
    rm -f "$DB" "$DB-wal" "$DB-shm"
done

echo
echo "== dropgate import benchmark"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GB RAM", $2 / 1048576}' /proc/meminfo)"
echo "sqlite3: $(sqlite3 --version | cut -d' ' -f1); items=$ITEMS runs=$RUNS (median wall time; peak RSS is the max over runs)"
echo
python3 - "$RESULTS" "$ITEMS" "$STOCK_ROWS" <<'EOF'
import statistics, sys
path, items, stock_rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
walls, rss = {}, {}
with open(path) as f:
    for line in f:
        s, _, w, kb = line.split("\t")
        walls.setdefault(s, []).append(float(w))
        rss[s] = max(rss.get(s, 0), int(kb))
ref = statistics.median(walls["ref"])
rows = {"a": items, "b": items, "c": stock_rows, "ref": items}
names = {"a": "a first import", "b": "b re-import (unchanged)",
         "c": "c STOCK import", "ref": "ref sqlite3 .import"}
ratio_target = {"a": 1.0, "b": 0.5, "c": 1.2}
RSS_TARGET_MB = 200
print(f"{'scenario':<24} {'rows':>9} {'wall s':>8} {'rows/s':>9} {'RSS MB':>7} "
      f"{'ratio':>6}  {'target':<22} {'verdict'}")
for s in ("a", "b", "c", "ref"):
    w = statistics.median(walls[s])
    mb = rss[s] / 1024
    ratio = w / ref if ref > 0 else float("inf")
    if s in ratio_target:
        t = ratio_target[s]
        ok = ratio <= t and mb <= RSS_TARGET_MB
        target, verdict = f"ratio<={t:.1f}, RSS<={RSS_TARGET_MB}", "PASS" if ok else "MISS"
    else:
        target, verdict = "-", ""
    rate = rows[s] / w if w > 0 else float("inf")
    print(f"{names[s]:<24} {rows[s]:>9} {w:>8.2f} {rate:>9.0f} {mb:>7.1f} "
          f"{ratio:>6.2f}  {target:<22} {verdict}")
if len(next(iter(walls.values()))) > 1:
    print()
    print("all runs (wall s): " + "; ".join(
        f"{s} " + " ".join(f"{w:.2f}" for w in walls[s]) for s in ("a", "b", "c", "ref")))
EOF
if [[ $COUNT_MISMATCH == 1 ]]; then
    echo
    echo "WARNING: some report counts differed from the generated data (see MISMATCH above)"
fi

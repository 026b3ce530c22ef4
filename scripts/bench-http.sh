#!/usr/bin/env bash
# Benchmark the HTTP door.
#
# Usage: scripts/bench-http.sh
#   REQUESTS=10000    small POSTs in the sustained part (default 10000)
#   CONCURRENCY=16    clients sending them at once (default 16)
#   LINES=100         item lines per small POST (default 100)
#   ITEMS=1000000     lines of the large POST (default 1000000)
#   RUNS=3            runs of the large-POST comparison; medians reported
#
#   e.g. REQUESTS=500 ITEMS=50000 RUNS=1 scripts/bench-http.sh   # smoke run
#
# Part 1, sustained small imports: REQUESTS `POST /api/items` of LINES new
# items each, from CONCURRENCY clients (examples/http_load.rs, hyper's
# client, one keep-alive connection per client, Bearer token), all to one
# account: the account's imports run one at a time, in order, as SPEC §3
# says, so this measures the whole path of an import per request. Reports
# requests/s, p50/p90/p99/max latency and the error count (must be 0).
#
# Part 2, one large import: ITEMS lines in one `POST /api/items`, with
# curl, against `dropgate import` of the same file, each from a fresh data
# folder holding the same clients, runs interleaved. Target: the POST's
# median wall time <= 1.1 x the command's.
#
# Needs: cargo, curl, python3.
set -euo pipefail

REQUESTS=${REQUESTS:-10000}
CONCURRENCY=${CONCURRENCY:-16}
LINES=${LINES:-100}
ITEMS=${ITEMS:-1000000}
RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/dropgate
LOAD=$ROOT/target/release/examples/http_load
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

die() { echo "bench-http: $*" >&2; exit 1; }
for n in REQUESTS CONCURRENCY LINES ITEMS RUNS; do
    [[ ${!n} =~ ^[0-9]+$ && ${!n} -ge 1 ]] || die "$n must be a positive integer"
done
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found"

clean_environment

echo "== building release binaries"
(cd "$ROOT" && cargo build --release --quiet && cargo build --release --quiet --example http_load)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-http.XXXXXX")
SERVER_PID=
cleanup() { stop_pid "$SERVER_PID"; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== generating $ITEMS items into $WORK"
python3 "$ROOT/scripts/gen_items.py" "$WORK" --items "$ITEMS"
CLIENT_COUNT=$(($(wc -l <"$WORK/clients.csv") - 1))

# fresh DIR: a data folder with account `bench`, its clients, and a token
# in DIR/token.
fresh() {
    local dir=$1
    rm -rf "$dir"
    "$BIN" --data-dir "$dir" account add bench 2>/dev/null
    "$BIN" --data-dir "$dir" account token add bench bench >"$dir.token" 2>/dev/null
    "$BIN" --data-dir "$dir" import --account bench "$WORK/clients.csv" >/dev/null
}

# serve DIR: starts the server on free loopback ports; sets SERVER_PID and URL.
serve() {
    local dir=$1 out=$WORK/serve.out
    : >"$out"
    DROPGATE_SFTP_LISTEN=127.0.0.1:0 DROPGATE_SFTP_RSA_HOST_KEY=false \
        DROPGATE_FTP_ENABLED=false DROPGATE_HTTP_LISTEN=127.0.0.1:0 \
        DROPGATE_HTTP_MAX_BODY_MB=4096 \
        "$BIN" --data-dir "$dir" serve >"$out" 2>"$WORK/serve.log" &
    SERVER_PID=$!
    for _ in $(seq 600); do
        grep -q '^dropgate ready' "$out" && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server did not start: $(cat "$WORK/serve.log")"
        sleep 0.05
    done
    URL=http://$(sed -n 's/^http listening on //p' "$out")
    [[ $URL != http:// ]] || die "no HTTP address"
}

echo
echo "== part 1: $REQUESTS POST /api/items x $LINES lines, $CONCURRENCY clients"
fresh "$WORK/small"
serve "$WORK/small"
# Warm-up: 100 requests, not counted.
"$LOAD" "$URL/api/items" "$(cat "$WORK/small.token")" 100 "$CONCURRENCY" "$LINES" "$CLIENT_COUNT" >/dev/null
RSS_BEFORE=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
SMALL=$("$LOAD" "$URL/api/items?encoding=UTF-8" "$(cat "$WORK/small.token")" "$REQUESTS" "$CONCURRENCY" "$LINES" "$CLIENT_COUNT")
RSS_AFTER=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
stop_pid "$SERVER_PID"
SERVER_PID=
echo "   $SMALL"
echo "   server RSS: $((RSS_BEFORE / 1024)) MB before, $((RSS_AFTER / 1024)) MB after"
ERRORS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["errors"])' "$SMALL")

echo
echo "== part 2: one POST of $ITEMS lines vs dropgate import, $RUNS run(s)"
TIMES=$WORK/times.tsv
: >"$TIMES"
check() { # check LABEL REPORT_FILE
    python3 - "$1" "$2" "$ITEMS" <<'EOF'
import json, sys
label, path, items = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(path).read()
try:
    r = json.loads(text)
except ValueError:
    r = json.loads(text.splitlines()[0])
if not r["success"] or r["nb_item_added"] != items:
    sys.exit(f"{label}: unexpected report: success={r['success']} added={r['nb_item_added']}")
EOF
}
for run in $(seq "$RUNS"); do
    fresh "$WORK/cli"
    start=$(date +%s.%N)
    "$BIN" --data-dir "$WORK/cli" import --account bench "$WORK/items_full.csv" >"$WORK/cli.report"
    end=$(date +%s.%N)
    check "import" "$WORK/cli.report"
    printf 'import\t%s\n' "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')" >>"$TIMES"

    fresh "$WORK/http"
    serve "$WORK/http"
    start=$(date +%s.%N)
    curl -sS --fail-with-body -H "Authorization: Bearer $(cat "$WORK/http.token")" \
        -H 'Content-Type: text/csv' --data-binary "@$WORK/items_full.csv" \
        "$URL/api/items" >"$WORK/http.report"
    end=$(date +%s.%N)
    echo "   run $run: server peak RSS $(($(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status") / 1024)) MB" \
        "(the file: $(($(stat -c %s "$WORK/items_full.csv") / 1000000)) MB)"
    stop_pid "$SERVER_PID"
    SERVER_PID=
    check "POST" "$WORK/http.report"
    printf 'post\t%s\n' "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')" >>"$TIMES"
done

python3 - "$TIMES" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
t = {k: [float(v) for kk, v in rows if kk == k] for k in ("import", "post")}
mi, mp = statistics.median(t["import"]), statistics.median(t["post"])
print(f"   dropgate import : median {mi:6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in t['import'])})")
print(f"   POST /api/items : median {mp:6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in t['post'])})")
print(f"   ratio POST/import: {mp / mi:.2f}  (target <= 1.10)")
EOF

[[ $ERRORS == 0 ]] || die "$ERRORS small requests failed"

#!/usr/bin/env bash
# Benchmark dropgate's SFTP door: throughput against OpenSSH's own sshd,
# close -> report latency, and many concurrent sessions.
#
# Usage: scripts/bench-sftp.sh
#   SIZE_MB=1024     size of the throughput upload, MiB (default 1024 = 1 GiB)
#   RUNS=3           throughput runs per server and cipher (median reported)
#   CIPHERS="default aes128-gcm@openssh.com aes256-gcm@openssh.com"
#                    "default" = no -c option (the client's preference list)
#   LAT_FILES=200    small items files for the latency test, one sftp session
#   SESSIONS=200     concurrent SFTP sessions for the sessions test
#   SESSION_FILES=5  items files uploaded by each session
#   ROWS=100         item lines per small items file
#   SESSION_AUTH=key key or password (password = argon2 check per login)
#   MAX_SESSIONS=    dropgate's per-address and per-account session limits
#                    for the sessions test (default: SESSIONS + 10; the
#                    built-in defaults, 50 per address and 20 per account,
#                    would refuse most of 200 sessions from 127.0.0.1 to one
#                    account). MAX_SESSIONS=default keeps the built-in ones.
#
#   e.g. SIZE_MB=64 RUNS=1 SESSIONS=20 scripts/bench-sftp.sh   # quick run
#
# Tests, side by side in one run (everything on 127.0.0.1):
#   1 throughput  SIZE_MB of random data uploaded with OpenSSH `sftp -b`
#                 (key auth) to dropgate and to sshd (internal-sftp, from a
#                 throwaway config on a free port), per cipher. MB/s is
#                 10^6 bytes per second of the whole `sftp` command, its
#                 connection setup included (sshd's, a fork and re-exec per
#                 connection, is the slower; it is timed alone too and a
#                 ratio without it is shown for information, as is one
#                 with a sync of sshd's file added, since dropgate fsyncs
#                 each upload before answering its CLOSE and sshd does not).
#                 Target: dropgate/sshd >= 1.0 for every cipher.
#   2 latency     LAT_FILES items files put one after another in ONE sftp
#                 session; per file processed_at - received_at from the
#                 server's own `imports` rows, i.e. from the upload's CLOSE
#                 processed to the import committed (the report file is
#                 written right after). Target: p99 <= 50 ms.
#   3 sessions    SESSIONS paramiko connections open at once, each putting
#                 SESSION_FILES items files. Every import must succeed with
#                 no exception line; the server's peak RSS (VmHWM) is read
#                 before it stops. Target: 0 failures, peak RSS <= 500 MB.
# Each test runs its own dropgate process (same data dir), so the peak RSS
# of test 3 is not the 1 GiB uploads' peak of test 1.
#
# Needs: cargo, OpenSSH client and server (/usr/sbin/sshd), python3 with
# paramiko, sqlite3. Run as root (sshd) or as a user whose sshd login works.
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
CIPHERS=${CIPHERS:-default aes128-gcm@openssh.com aes256-gcm@openssh.com}
LAT_FILES=${LAT_FILES:-200}
SESSIONS=${SESSIONS:-200}
SESSION_FILES=${SESSION_FILES:-5}
ROWS=${ROWS:-100}
SESSION_AUTH=${SESSION_AUTH:-key}
MAX_SESSIONS=${MAX_SESSIONS:-$((SESSIONS + 10))}
# Targets.
T_RATIO=1.0
T_P99_MS=50
T_RSS_MB=500

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release/dropgate
SSHD=${SSHD:-/usr/sbin/sshd}

die() { echo "bench-sftp: $*" >&2; exit 1; }
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }

is_int "$SIZE_MB" && ((SIZE_MB >= 1)) || die "SIZE_MB must be an integer >= 1"
is_int "$RUNS" && ((RUNS >= 1)) || die "RUNS must be an integer >= 1"
is_int "$LAT_FILES" && ((LAT_FILES >= 1)) || die "LAT_FILES must be an integer >= 1"
is_int "$SESSIONS" && ((SESSIONS >= 1)) || die "SESSIONS must be an integer >= 1"
is_int "$SESSION_FILES" && ((SESSION_FILES >= 1)) || die "SESSION_FILES must be an integer >= 1"
is_int "$ROWS" && ((ROWS >= 1)) || die "ROWS must be an integer >= 1"
[[ $SESSION_AUTH == key || $SESSION_AUTH == password ]] || die "SESSION_AUTH must be key or password"
[[ $MAX_SESSIONS == default ]] || is_int "$MAX_SESSIONS" || die "MAX_SESSIONS must be an integer or default"
[[ -x $SSHD ]] || die "$SSHD not found (Debian/Ubuntu: apt-get install openssh-server)"
for c in sftp ssh-keygen sqlite3 python3; do
    command -v "$c" >/dev/null || die "$c not found"
done
python3 -c 'import paramiko' 2>/dev/null || die "python3 cannot import paramiko (pip install paramiko)"
for c in $CIPHERS; do
    [[ $c == default ]] || ssh -Q cipher | grep -qxF "$c" || die "the ssh client does not know cipher $c"
done

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
clean_environment
# Dates from the DB and `date` are compared as UTC.
export TZ=UTC

echo "== building release binary"
(cd "$ROOT" && cargo build --release --quiet)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-sftp.XXXXXX")
# A private copy of the binary: a rebuild in the tree during the run (other
# work on the machine) must not change the server between tests.
cp "$BIN" "$WORK/dropgate"
BIN=$WORK/dropgate
# What was built: commit, "+changes" if src/ differed from it at build time.
BUILD_INFO="$("$BIN" --version | awk '{print $NF}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+uncommitted src changes'))"
DATA=$WORK/data
DB=$DATA/dropgate.db
DROP=$DATA/drop/bench
DG_PID=""
SSHD_PID=""

cleanup() {
    local rc=$?
    stop_pid "$DG_PID"
    stop_pid "$SSHD_PID"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ns() { date +%s%N; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)

# ---------------------------------------------------------------- setup

echo "== setting up in $WORK"
mkdir -p "$WORK/src" "$WORK/sshd-target" "$WORK/lat"
ssh-keygen -q -t ed25519 -N '' -C bench -f "$WORK/id_bench"
PASSWORD="bench-password-$$"
echo "$PASSWORD" | "$BIN" --data-dir "$DATA" account add bench --password-stdin \
    >"$WORK/account.out" 2>&1 || { cat "$WORK/account.out" >&2; die "account add failed"; }
"$BIN" --data-dir "$DATA" account key add bench "$WORK/id_bench.pub" \
    >>"$WORK/account.out" 2>&1 || { cat "$WORK/account.out" >&2; die "account key add failed"; }

# Random data, generated once: incompressible, so nothing along the way
# (there is no ssh compression here anyway) can make it cheap.
echo "== generating $SIZE_MB MiB of random data"
BIG=$WORK/src/big.bin
head -c "$((SIZE_MB * 1048576))" /dev/urandom >"$BIG"
BYTES=$(stat -c %s "$BIG")

# Same client options for both servers: key only, no agent, no user config
# (-F /dev/null), no known_hosts (throwaway host keys). -v puts the
# negotiated cipher in the log ("kex: client->server cipher: ...").
SFTP_OPTS=(-F /dev/null -i "$WORK/id_bench" -o IdentitiesOnly=yes -o IdentityAgent=none
           -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
           -o LogLevel=ERROR -o ConnectTimeout=30)

# wait_for_line FILE REGEX PID SECONDS: waits until FILE has a line matching
# REGEX, failing early if PID dies.
wait_for_line() {
    local file=$1 re=$2 pid=$3 secs=$4 deadline
    deadline=$((SECONDS + secs))
    while ! grep -qE "$re" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# start_dropgate [VAR=VALUE...]: starts the server on a free loopback port;
# sets DG_PID and DG_PORT.
start_dropgate() {
    local log=$WORK/dropgate.$((++DG_STARTS))
    env DROPGATE_SFTP_LISTEN=127.0.0.1:0 DROPGATE_SFTP_RSA_HOST_KEY=false DROPGATE_FTP_ENABLED=false "$@" \
        "$BIN" --data-dir "$DATA" serve >"$log.out" 2>"$log.err" &
    DG_PID=$!
    if ! wait_for_line "$log.out" '^sftp listening on ' "$DG_PID" 30; then
        cat "$log.err" >&2
        die "dropgate did not start"
    fi
    DG_PORT=$(sed -n 's/^sftp listening on .*:\([0-9]*\)$/\1/p' "$log.out" | head -n1)
    is_int "$DG_PORT" || die "no port in: $(cat "$log.out")"
    DG_LOG=$log
}
DG_STARTS=0

# stop_dropgate: sets RSS_KB to the server's peak RSS (kB) and NOW_INFO to
# "VmRSS_kB threads" at the end (how much of the peak is still held), then
# stops it. Read from /proc before the SIGTERM: afterwards it is gone.
# (Not meant for $(...): a subshell could not wait for the server.)
stop_dropgate() {
    RSS_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$DG_PID/status" 2>/dev/null || true)
    RSS_KB=${RSS_KB:-0}
    NOW_INFO=$(awk '/^VmRSS:/ {r = $2} /^Threads:/ {t = $2} END {print r + 0, t + 0}' \
        "/proc/$DG_PID/status" 2>/dev/null || echo "0 0")
    stop_pid "$DG_PID"
    DG_PID=""
    # Warnings are expected at RUST_LOG=warn (e.g. refused sessions); show
    # them, they may explain a figure.
    if [[ -s $DG_LOG.err ]]; then
        echo "   dropgate log ($(wc -l <"$DG_LOG.err") lines), first lines:" >&2
        head -n 5 "$DG_LOG.err" | cut -c1-300 | sed 's/^/     /' >&2
    fi
}

# sql QUERY: one read of the live DB (WAL: readers do not block the server).
sql() { sqlite3 -cmd '.timeout 5000' "$DB" "$1"; }

# wait_imports LIKE N SECONDS: waits until N imports of files named LIKE have
# processed_at set; prints how many did.
wait_imports() {
    local like=$1 n=$2 secs=$3 deadline done=0
    deadline=$((SECONDS + secs))
    while ((SECONDS < deadline)); do
        done=$(sql "SELECT count(*) FROM imports WHERE file_name LIKE '$like' AND processed_at IS NOT NULL;")
        ((done >= n)) && break
        sleep 0.1
    done
    echo "$done"
}

# ------------------------------------------------------- 1 throughput

echo "== test 1: throughput, $SIZE_MB MiB x $RUNS runs x ciphers: $CIPHERS"
# sshd from a throwaway config: its own host key, the bench key as the only
# authorized key, internal-sftp, no PAM (no system login machinery in the
# path), StrictModes off (the key file lives under /tmp, which is
# world-writable, and sshd would refuse it).
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$WORK/sshd_host_key"
cp "$WORK/id_bench.pub" "$WORK/authorized_keys"
SSHD_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $WORK/sshd_host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
EOF
"$SSHD" -D -e -f "$WORK/sshd_config" -p "$SSHD_PORT" 2>"$WORK/sshd.log" &
SSHD_PID=$!
wait_for_line "$WORK/sshd.log" 'Server listening on' "$SSHD_PID" 15 \
    || { cat "$WORK/sshd.log" >&2; die "sshd did not start"; }
SSH_USER=$(id -un)

start_dropgate

TPUT=$WORK/tput.tsv   # server  cipher  run  seconds  negotiated  sync_seconds
: >"$TPUT"
TPUT_FAILED=0
# upload SERVER CIPHER RUN: one timed `sftp -b` put of $BIG.
upload() {
    local server=$1 cipher=$2 run=$3 port user target dest
    local copt=() t0 t1 rc=0 neg s0 s1
    [[ $cipher == default ]] || copt=(-c "$cipher")
    if [[ $server == dropgate ]]; then
        # A temporary name: kept as it is, never imported.
        port=$DG_PORT user=bench dest=big.bin.part target=$DROP/big.bin.part
    else
        port=$SSHD_PORT user=$SSH_USER target=$WORK/sshd-target/big.bin.part dest=$target
    fi
    printf 'put %s %s\n' "$BIG" "$dest" >"$WORK/put.batch"
    t0=$(now_ns)
    sftp -v -b "$WORK/put.batch" "${SFTP_OPTS[@]}" "${copt[@]}" -P "$port" "$user@127.0.0.1" \
        >"$WORK/sftp.out" 2>"$WORK/sftp.err" || rc=$?
    t1=$(now_ns)
    neg=$(sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' "$WORK/sftp.err" | head -n1)
    if ((rc != 0)) || [[ $(stat -c %s "$target" 2>/dev/null || echo 0) != "$BYTES" ]]; then
        echo "   $server $cipher run $run: FAILED (sftp exit $rc, negotiated '${neg:-none}')" >&2
        grep -v '^debug' "$WORK/sftp.err" | tail -n 5 | sed 's/^/     /' >&2
        TPUT_FAILED=1
        rm -f "$target"
        return 0
    fi
    # dropgate fsyncs every upload before answering its CLOSE; sshd does
    # not. Time a sync of sshd's file right after, for an "upload + durable"
    # comparison (informational; dropgate's is already durable: ~0 s).
    s0=$(now_ns)
    sync "$target"
    s1=$(now_ns)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$cipher" "$run" \
        "$(((t1 - t0) / 1000))e-6" "$neg" "$(((s1 - s0) / 1000))e-6" >>"$TPUT"
    awk -v b="$BYTES" -v us="$(((t1 - t0) / 1000))" -v s="$server" -v c="$cipher" -v n="$neg" -v r="$run" \
        'BEGIN { printf "   run %d %-8s %-24s %7.1f MB/s  %6.2f s  (cipher %s)\n", r, s, c, b / us, us / 1e6, n }'
    # Start the next upload from the same state: no file to truncate, no
    # dirty pages of this one still being written back.
    rm -f "$target"
    sync
}
# Connection setup alone (TCP, key exchange, auth, sftp subsystem start),
# to tell it apart from the transfer: it is in every upload's wall time.
: >"$WORK/setup.tsv"
echo pwd >"$WORK/pwd.batch"
for i in 1 2 3; do
    for server in dropgate sshd; do
        if [[ $server == dropgate ]]; then port=$DG_PORT user=bench; else port=$SSHD_PORT user=$SSH_USER; fi
        t0=$(now_ns)
        sftp -b "$WORK/pwd.batch" "${SFTP_OPTS[@]}" -P "$port" "$user@127.0.0.1" >/dev/null 2>"$WORK/sftp.err" \
            || { cat "$WORK/sftp.err" >&2; die "sftp to $server failed"; }
        t1=$(now_ns)
        echo "$server $(((t1 - t0) / 1000))e-6" >>"$WORK/setup.tsv"
    done
done
sync
for run in $(seq 1 "$RUNS"); do
    for cipher in $CIPHERS; do
        # Alternate the servers so slow drifts (page cache, other load on
        # the machine) hit both alike.
        if ((run % 2)); then order="dropgate sshd"; else order="sshd dropgate"; fi
        for server in $order; do
            upload "$server" "$cipher" "$run"
        done
    done
done
stop_dropgate
RSS1_KB="$RSS_KB $NOW_INFO"
stop_pid "$SSHD_PID"
SSHD_PID=""
rm -f "$BIG"
LOAD_T1=$(loadavg)

# ---------------------------------------------------------- 2 latency

echo "== test 2: close -> report latency, $LAT_FILES files of $ROWS lines in one sftp session"
start_dropgate
# The clients first (items refer to them), not timed.
printf 'client_code;client_business_name\nC1;Bench client\n' >"$WORK/clients.csv"
printf 'put %s clients.csv\n' "$WORK/clients.csv" >"$WORK/clients.batch"
sftp -b "$WORK/clients.batch" "${SFTP_OPTS[@]}" -P "$DG_PORT" bench@127.0.0.1 >/dev/null 2>"$WORK/sftp.err" \
    || { cat "$WORK/sftp.err" >&2; die "clients.csv upload failed"; }
[[ $(wait_imports clients.csv 1 30) == 1 ]] || die "clients.csv was not imported within 30 s"
[[ $(sql "SELECT success FROM imports WHERE file_name = 'clients.csv';") == 1 ]] \
    || die "clients.csv import failed: $(sql "SELECT report FROM imports WHERE file_name = 'clients.csv';")"

python3 - "$WORK/lat" "$LAT_FILES" "$ROWS" <<'EOF'
import sys
out, n, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
header = ("client_code;item_type;item_number;item_date_issue;"
          "item_date_due;item_amount_initial_inc_tax\n")
for i in range(1, n + 1):
    with open(f"{out}/items_lat_{i:04d}.csv", "w") as f:
        f.write(header)
        # Unique item numbers across all files: every line is a new item.
        f.writelines(f"C1;FAC;LAT{i}-{r};2025-01-01;2025-02-01;{10 + r % 90}\n"
                     for r in range(rows))
EOF
{
    echo "lcd $WORK/lat"
    for ((i = 1; i <= LAT_FILES; i++)); do printf 'put items_lat_%04d.csv\n' "$i"; done
} >"$WORK/lat.batch"
t0=$(now_ns)
sftp -b "$WORK/lat.batch" "${SFTP_OPTS[@]}" -P "$DG_PORT" bench@127.0.0.1 >/dev/null 2>"$WORK/sftp.err" \
    || { cat "$WORK/sftp.err" >&2; die "latency batch upload failed"; }
t1=$(now_ns)
LAT_DONE=$(wait_imports 'items_lat_%' "$LAT_FILES" $((60 + LAT_FILES)))
t2=$(now_ns)
LAT_UPLOAD_S=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e9 }')
LAT_ALL_S=$(awk -v d=$((t2 - t0)) 'BEGIN { printf "%.2f", d / 1e9 }')
echo "   $LAT_FILES puts in ${LAT_UPLOAD_S} s; $LAT_DONE imports done ${LAT_ALL_S} s after the first put"
python3 - "$DB" "$LAT_FILES" "$ROWS" "$WORK/latency.json" <<'EOF'
import datetime, json, math, sqlite3, sys
db, n, rows, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
got = con.execute(
    "SELECT file_name, received_at, processed_at, success, report FROM imports "
    "WHERE file_name LIKE 'items_lat_%' AND processed_at IS NOT NULL").fetchall()
ts = datetime.datetime.fromisoformat
lat, bad, by_name = [], 0, []
for name, rec, proc, success, report in got:
    lat.append((ts(proc) - ts(rec)).total_seconds() * 1000)
    by_name.append((lat[-1], name))
    r = json.loads(report or "{}")
    if not (success == 1 and r.get("success") is True and r.get("nb_exception_lines") == 0
            and r.get("lines_imported") == rows):
        bad += 1
lat.sort()
# Nearest-rank percentiles (p99 of 200 values is the 198th).
pct = lambda p: lat[max(0, math.ceil(p / 100 * len(lat)) - 1)] if lat else float("nan")
res = {"files": n, "done": len(lat), "bad": bad, "p50": pct(50), "p99": pct(99),
       "max": lat[-1] if lat else float("nan"),
       "mean": sum(lat) / len(lat) if lat else float("nan")}
json.dump(res, open(out, "w"))
print(f"   latency (server timestamps, CLOSE processed -> import committed, 1 ms resolution): "
      f"p50 {res['p50']:.0f} ms, p99 {res['p99']:.0f} ms, max {res['max']:.0f} ms, "
      f"mean {res['mean']:.1f} ms; {bad} imports not fully successful")
# Where the tail is: isolated spikes (a checkpoint, other load) or a queue
# that builds up (the import slower than the next upload).
by_name.sort(reverse=True)
print(f"   {sum(1 for x in lat if x > 50)} files over 50 ms; slowest: "
      + ", ".join(f"{n.removeprefix('items_lat_').removesuffix('.csv')} {x:.0f} ms" for x, n in by_name[:8]))
EOF
stop_dropgate
RSS2_KB="$RSS_KB $NOW_INFO"
LOAD_T2=$(loadavg)

# --------------------------------------------------------- 3 sessions

echo "== test 3: $SESSIONS concurrent sessions x $SESSION_FILES files ($SESSION_AUTH auth)"
limits=()
if [[ $MAX_SESSIONS != default ]]; then
    limits=(DROPGATE_SFTP_MAX_SESSIONS_PER_ADDRESS="$MAX_SESSIONS"
            DROPGATE_SFTP_MAX_SESSIONS_PER_ACCOUNT="$MAX_SESSIONS")
    echo "   dropgate session limits raised to $MAX_SESSIONS per address and per account"
fi
start_dropgate "${limits[@]}"
auth=(--key "$WORK/id_bench")
[[ $SESSION_AUTH == key ]] || { export BENCH_SFTP_PASSWORD=$PASSWORD; auth=(--password-env BENCH_SFTP_PASSWORD); }
EXPECT=$((SESSIONS * SESSION_FILES))
t0=$(now_ns)
python3 "$ROOT/scripts/bench_sftp_sessions.py" --port "$DG_PORT" --user bench "${auth[@]}" \
    --sessions "$SESSIONS" --files "$SESSION_FILES" --rows "$ROWS" --prefix items_s \
    --deadline 900 --out "$WORK/sessions.json" \
    || die "the sessions client crashed"
t1=$(now_ns)
UPLOADED=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["files_uploaded"])' "$WORK/sessions.json")
SES_DONE=$(wait_imports 'items_s%' "$UPLOADED" $((60 + EXPECT / 10)))
t2=$(now_ns)
echo "   $SES_DONE/$UPLOADED uploaded files imported"
stop_dropgate
RSS3_KB="$RSS_KB $NOW_INFO"
LOAD_T3=$(loadavg)
python3 - "$DB" "$EXPECT" "$ROWS" "$WORK/sessions.json" "$DROP" \
    "$(((t1 - t0) / 1000000))" "$(((t2 - t0) / 1000000))" <<'EOF'
import json, os, sqlite3, sys
db, expect, rows, path, drop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
client_ms, all_ms = int(sys.argv[6]), int(sys.argv[7])
res = json.load(open(path))
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
ok = bad = 0
samples = []
for name, success, report in con.execute(
        "SELECT file_name, success, report FROM imports WHERE file_name LIKE 'items_s%' "
        "AND processed_at IS NOT NULL"):
    r = json.loads(report or "{}")
    # Cross-check with the report file the client would read.
    on_disk = os.path.exists(os.path.join(drop, name + ".report.json"))
    if (success == 1 and r.get("success") is True and r.get("nb_exception_lines") == 0
            and r.get("lines_imported") == rows and on_disk):
        ok += 1
    else:
        bad += 1
        if len(samples) < 3:
            samples.append(f"{name}: success={r.get('success')} "
                           f"exceptions={r.get('nb_exception_lines')} report_file={on_disk} "
                           f"{r.get('error_code') or ''} {r.get('error_description') or ''}")
res.update({"reports_ok": ok, "reports_bad": bad, "missing": expect - ok - bad,
            "failures": expect - ok, "client_ms": client_ms, "all_ms": all_ms})
json.dump(res, open(path, "w"))
print(f"   {ok}/{expect} imports successful with no exception line; {bad} unsuccessful, "
      f"{expect - ok - bad} missing; all committed {all_ms / 1000:.2f} s after the start")
for s in samples:
    print(f"   sessions: {s}", file=sys.stderr)
EOF

# ------------------------------------------------------------ summary

echo
echo "== dropgate SFTP benchmark"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
echo "software: dropgate $BUILD_INFO, $(ssh -V 2>&1 | cut -d, -f1), paramiko $(python3 -c 'import paramiko; print(paramiko.__version__)')"
echo "load avg: start $LOAD_START | after test 1 $LOAD_T1 | after 2 $LOAD_T2 | after 3 $LOAD_T3"
echo "settings: SIZE_MB=$SIZE_MB RUNS=$RUNS LAT_FILES=$LAT_FILES SESSIONS=$SESSIONS SESSION_FILES=$SESSION_FILES ROWS=$ROWS SESSION_AUTH=$SESSION_AUTH MAX_SESSIONS=$MAX_SESSIONS"
echo
python3 - "$TPUT" "$BYTES" "$RUNS" "$WORK/latency.json" "$WORK/sessions.json" \
    "$RSS1_KB" "$RSS2_KB" "$RSS3_KB" "$T_RATIO" "$T_P99_MS" "$T_RSS_MB" "$CIPHERS" \
    "$LAT_UPLOAD_S" "$LAT_ALL_S" "$WORK/setup.tsv" <<'EOF'
import json, statistics, sys
(tput, nbytes, runs, latp, sesp, rss1, rss2, rss3, t_ratio, t_p99, t_rss, ciphers,
 lat_up, lat_all, setup) = sys.argv[1:]
def mem(info, test):
    hwm, now, threads = (int(x) for x in info.split())
    return (f"   dropgate peak RSS (VmHWM) during test {test}: {hwm / 1024:.1f} MB "
            f"(at the end: VmRSS {now / 1024:.1f} MB, {threads} threads)")
nbytes, runs = int(nbytes), int(runs)
t_ratio, t_p99, t_rss = float(t_ratio), float(t_p99), float(t_rss)
secs, sync, neg = {}, {}, {}
for line in open(tput):
    server, cipher, run, s, n, sy = line.rstrip("\n").split("\t")
    secs.setdefault((server, cipher), []).append(float(s))
    sync.setdefault((server, cipher), []).append(float(s) + float(sy))
    neg.setdefault((server, cipher), set()).add(n)
mbs = lambda s: nbytes / s / 1e6
rows = []   # (test, figure, target, verdict)
print(f"1. throughput: {nbytes / 1048576:.0f} MiB upload with sftp -b, MB/s = 10^6 B/s, "
      f"median of {runs} run(s)")
print(f"   {'cipher asked':<24} {'negotiated':<20} {'dropgate':>9} {'sshd':>9} "
      f"{'ratio':>6} {'sshd+sync':>10} {'ratio':>6}")
for c in ciphers.split():
    d, o = secs.get(("dropgate", c)), secs.get(("sshd", c))
    nd = ",".join(sorted(neg.get(("dropgate", c), {"-"}))).replace("@openssh.com", "")
    no = ",".join(sorted(neg.get(("sshd", c), {"-"}))).replace("@openssh.com", "")
    # One name when both servers agreed (the usual case), else both.
    nn = nd if nd == no else f"{nd}/{no}"
    if not d or not o:
        print(f"   {c:<24} {nn:<20} {'FAILED' if not d else f'{mbs(statistics.median(d)):9.1f}':>9} "
              f"{'FAILED' if not o else f'{mbs(statistics.median(o)):9.1f}':>9}")
        rows.append((f"throughput {c}", "upload failed", f"ratio >= {t_ratio:.1f}", "MISS"))
        continue
    md, mo = mbs(statistics.median(d)), mbs(statistics.median(o))
    ms = mbs(statistics.median(sync[("sshd", c)]))
    ratio = md / mo
    print(f"   {c:<24} {nn:<20} {md:9.1f} {mo:9.1f} {ratio:6.2f} {ms:10.1f} {md / ms:6.2f}")
    rows.append((f"throughput {c}", f"{md:.0f} vs {mo:.0f} MB/s = {ratio:.2f}",
                 f"ratio >= {t_ratio:.1f}", "PASS" if ratio >= t_ratio else "MISS"))
if runs > 1:
    for (server, c), v in sorted(secs.items()):
        print(f"   all runs {server:<8} {c:<24} " + " ".join(f"{mbs(s):.1f}" for s in v) + " MB/s")
print("   (sshd+sync: sshd's upload plus a sync of its file, since dropgate fsyncs each upload "
      "before answering CLOSE; informational)")
st = {}
for line in open(setup):
    server, sec = line.split()
    st.setdefault(server, []).append(float(sec))
if "dropgate" in st and "sshd" in st:
    sd, so = statistics.median(st["dropgate"]), statistics.median(st["sshd"])
    print(f"   connection setup (sftp -b with only pwd, default cipher, median of {len(st['sshd'])}): "
          f"dropgate {sd * 1000:.0f} ms, sshd {so * 1000:.0f} ms (included in the MB/s above)")
    ex = []
    for c in ciphers.split():
        d, o = secs.get(("dropgate", c)), secs.get(("sshd", c))
        if d and o:
            ex.append(f"{c.replace('@openssh.com', '')} "
                      f"{(statistics.median(o) - so) / (statistics.median(d) - sd):.2f}")
    print("   ratio with the setup subtracted (transfer only, informational): " + ", ".join(ex))
print(mem(rss1, 1))
print()
lat = json.load(open(latp))
print(f"2. latency close -> report, {lat['files']} files put in one sftp session "
      f"({lat_up} s for the puts; all imports committed {lat_all} s after the first put)")
print("   measured from the server's own DB timestamps: imports.received_at (upload CLOSE "
      "processed) -> processed_at (import committed; report written right after), 1 ms resolution")
print(f"   imports done {lat['done']}/{lat['files']}, not fully successful {lat['bad']}; "
      f"p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms, mean {lat['mean']:.1f} ms")
print(mem(rss2, 2))
lat_ok = lat["done"] == lat["files"] and lat["bad"] == 0
rows.append(("latency p50", f"{lat['p50']:.0f} ms", "-", ""))
rows.append(("latency p99", f"{lat['p99']:.0f} ms" + ("" if lat_ok else " (imports missing/failed)"),
             f"<= {t_p99:.0f} ms", "PASS" if lat_ok and lat["p99"] <= t_p99 else "MISS"))
print()
s = json.load(open(sesp))
expect = s["sessions"] * s["files_per_session"]
print(f"3. {s['sessions']} concurrent sessions x {s['files_per_session']} files ({s['auth']} auth, "
      f"paramiko, one connection per session)")
print(f"   logged in {s['logged_in']}/{s['sessions']}"
      + (f", all open {s['all_open_s']:.2f} s after the start" if s["all_open_s"] is not None else ", never all open at once")
      + f"; files uploaded {s['files_uploaded']}/{expect}; client wall {s['client_ms'] / 1000:.2f} s; "
      f"all imports committed {s['all_ms'] / 1000:.2f} s after the start")
print(f"   reports ok {s['reports_ok']}/{expect}, unsuccessful {s['reports_bad']}, missing {s['missing']}; "
      f"failed sessions (client side) {s['failed_sessions']}")
for e in s["errors"][:5]:
    print(f"   client error: {e}")
rss = int(rss3.split()[0]) / 1024
print(mem(rss3, 3))
fails = s["failures"] + s["failed_sessions"]
rows.append((f"sessions wall ({s['sessions']}x{s['files_per_session']})",
             f"{s['all_ms'] / 1000:.2f} s", "-", ""))
rows.append(("sessions failures", f"{s['failures']} imports, {s['failed_sessions']} sessions",
             "0", "PASS" if fails == 0 else "MISS"))
rows.append(("sessions peak RSS", f"{rss:.1f} MB", f"<= {t_rss:.0f} MB",
             "PASS" if rss <= t_rss else "MISS"))
print()
print(f"   {'measure':<36} {'figure':<34} {'target':<12} verdict")
for r in rows:
    print(f"   {r[0]:<36} {r[1]:<34} {r[2]:<12} {r[3]}")
EOF
if ((TPUT_FAILED)); then
    echo
    echo "WARNING: some throughput uploads failed (see FAILED above)"
fi

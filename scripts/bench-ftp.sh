#!/usr/bin/env bash
# Benchmark dropgate's FTP door against vsftpd: upload throughput with curl,
# plain FTP and explicit FTPS, side by side in one run.
#
# Usage: scripts/bench-ftp.sh          (as root: it adds a throwaway user)
#   SIZE_MB=1024   size of the upload, MiB (default 1024 = 1 GiB)
#   RUNS=3         uploads per server and protocol (the median is reported)
#   PROTOS="ftp ftps"  which protocols to measure
#
#   e.g. SIZE_MB=128 RUNS=1 scripts/bench-ftp.sh   # quick run
#
# What is measured: SIZE_MB of random data uploaded with `curl -T` to each
# server on 127.0.0.1, passive mode, the whole curl command timed (login and
# data connection included). FTPS is explicit (`--ssl-reqd`, AUTH TLS, PROT
# P) with the same RSA 2048 certificate on both servers; the TLS version
# each negotiated is printed. Runs alternate between the servers, so a
# slow moment of the machine is shared. MB/s is 10^6 bytes per second.
# Target: dropgate/vsftpd >= 1.0 for plain FTP and for FTPS.
#
# Fairness notes: dropgate is sent the file under a temporary name
# (`big.bin.part`), so no import follows; it still fsyncs the upload before
# its 226 (an acknowledged upload survives a crash), which vsftpd does not.
# So a second table adds to vsftpd's time the fsync of its file, done right
# after its upload: both servers' figures then end with the data on disk.
# vsftpd runs from a throwaway config on a free loopback port, as a
# throwaway local user (PAM login), with seccomp and namespaces off (they
# need privileges containers often lack) and TLS session reuse not required.
# dropgate's peak RSS over all its uploads is printed (memory must not grow
# with the file size).
#
# Needs: cargo, curl, openssl, vsftpd (/usr/sbin/vsftpd), python3, useradd.
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
PROTOS=${PROTOS:-ftp ftps}
T_RATIO=1.0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VSFTPD=${VSFTPD:-/usr/sbin/vsftpd}

die() { echo "bench-ftp: $*" >&2; exit 1; }
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
is_int "$SIZE_MB" && ((SIZE_MB >= 1)) || die "SIZE_MB must be an integer >= 1"
is_int "$RUNS" && ((RUNS >= 1)) || die "RUNS must be an integer >= 1"
[[ -x $VSFTPD ]] || die "$VSFTPD not found (Debian: apt-get install vsftpd)"
for c in curl openssl python3 useradd chpasswd; do
    command -v "$c" >/dev/null || die "$c not found"
done
((EUID == 0)) || die "run as root: vsftpd needs a local user, which this script adds and removes"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
clean_environment

echo "== building release binary"
(cd "$ROOT" && cargo build --release --quiet)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-ftp.XXXXXX")
chmod 755 "$WORK"
cp "$ROOT/target/release/dropgate" "$WORK/dropgate"
BIN=$WORK/dropgate
BUILD_INFO="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+uncommitted src changes')"
DATA=$WORK/data
FTP_USER="dgbench$$"
PASSWORD="bench-password-$$"
DG_PID=""
VS_PID=""
USER_ADDED=""

cleanup() {
    local rc=$?
    stop_pid "$DG_PID"
    stop_pid "$VS_PID"
    [[ -n $USER_ADDED ]] && userdel "$FTP_USER" 2>/dev/null
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_for FILE REGEX PID SECONDS
wait_for() {
    local file=$1 re=$2 pid=$3 deadline=$((SECONDS + $4))
    while ! grep -qE "$re" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}
now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "== setting up in $WORK"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
chmod 644 "$WORK/key.pem"
BIG=$WORK/big.bin
head -c "$((SIZE_MB * 1048576))" /dev/urandom >"$BIG"
BYTES=$(stat -c %s "$BIG")

# dropgate: one account, FTP with optional TLS on free ports.
echo "$PASSWORD" | "$BIN" --data-dir "$DATA" account add bench --password-stdin >"$WORK/account.out" 2>&1 ||
    { cat "$WORK/account.out" >&2; die "account add failed"; }
env DROPGATE_SFTP_LISTEN=127.0.0.1:0 DROPGATE_SFTP_RSA_HOST_KEY=false \
    DROPGATE_FTP_LISTEN=127.0.0.1:0 DROPGATE_FTP_PASSIVE_PORTS=0 \
    DROPGATE_FTP_TLS_CERT="$WORK/cert.pem" DROPGATE_FTP_TLS_KEY="$WORK/key.pem" \
    "$BIN" --data-dir "$DATA" serve >"$WORK/dropgate.out" 2>"$WORK/dropgate.err" &
DG_PID=$!
wait_for "$WORK/dropgate.out" '^dropgate ready' "$DG_PID" 60 || { cat "$WORK/dropgate.err" >&2; die "dropgate did not start"; }
DG_PORT=$(sed -n 's/^ftp listening on .*:\([0-9]*\)$/\1/p' "$WORK/dropgate.out")
DG_DROP=$DATA/drop/bench

# vsftpd: a throwaway user and config.
useradd -M -d "$WORK/vsftpd-home" -s /bin/sh "$FTP_USER"
USER_ADDED=1
echo "$FTP_USER:$PASSWORD" | chpasswd
mkdir -p "$WORK/vsftpd-home" "$WORK/empty"
chown "$FTP_USER" "$WORK/vsftpd-home"
VS_PORT=$(free_port)
cat >"$WORK/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VS_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
pasv_enable=YES
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir=$WORK/empty
pam_service_name=vsftpd
xferlog_enable=NO
ssl_enable=YES
rsa_cert_file=$WORK/cert.pem
rsa_private_key_file=$WORK/key.pem
allow_anon_ssl=NO
force_local_data_ssl=NO
force_local_logins_ssl=NO
require_ssl_reuse=NO
ssl_ciphers=HIGH
CONF
"$VSFTPD" "$WORK/vsftpd.conf" >"$WORK/vsftpd.log" 2>&1 &
VS_PID=$!
deadline=$((SECONDS + 30))
until curl -sS -o /dev/null "ftp://$FTP_USER:$PASSWORD@127.0.0.1:$VS_PORT/" 2>"$WORK/vsftpd.probe"; do
    kill -0 "$VS_PID" 2>/dev/null || { cat "$WORK/vsftpd.log" "$WORK/vsftpd.probe" >&2; die "vsftpd did not start"; }
    ((SECONDS < deadline)) || { cat "$WORK/vsftpd.probe" >&2; die "cannot log in to vsftpd"; }
    sleep 0.1
done

# upload SERVER PROTO: one timed upload; prints nanoseconds.
upload() {
    local server=$1 proto=$2 url tls=() start end
    case $server in
        dropgate) url="ftp://bench:$PASSWORD@127.0.0.1:$DG_PORT/big.bin.part" ;;
        vsftpd) url="ftp://$FTP_USER:$PASSWORD@127.0.0.1:$VS_PORT/big.bin" ;;
    esac
    [[ $proto == ftps ]] && tls=(--ssl-reqd --cacert "$WORK/cert.pem")
    # Each upload starts with no writeback of an earlier one (or of the
    # generated data) under way.
    sync
    start=$(now_ns)
    curl -sS --ftp-pasv "${tls[@]}" -T "$BIG" "$url" >/dev/null || die "curl upload to $server ($proto) failed"
    end=$(now_ns)
    if [[ $server == vsftpd ]]; then
        # What dropgate does before its 226, done to vsftpd's file after
        # its upload: the time to make it durable (fsync), kept apart.
        python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' \
            "$WORK/vsftpd-home/big.bin"
        SYNC_NS=$(($(now_ns) - end))
    fi
    # Remove the upload: the next run starts from an empty folder.
    rm -f "$DG_DROP/big.bin.part" "$WORK/vsftpd-home/big.bin"
    echo $((end - start))
}
# tls_version SERVER: the TLS version curl negotiates with it.
tls_version() {
    local url
    case $1 in
        dropgate) url="ftp://bench:$PASSWORD@127.0.0.1:$DG_PORT/" ;;
        vsftpd) url="ftp://$FTP_USER:$PASSWORD@127.0.0.1:$VS_PORT/" ;;
    esac
    curl -sv --ssl-reqd --cacert "$WORK/cert.pem" -l "$url" 2>&1 >/dev/null |
        sed -n 's/.*SSL connection using \([^ ]*\).*/\1/p' | head -n1
}

echo "== $RUNS upload(s) of $SIZE_MB MiB per server and protocol (dropgate $BUILD_INFO)"
echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A TIMES
for proto in $PROTOS; do
    for ((run = 1; run <= RUNS; run++)); do
        if ((run % 2)); then order="dropgate vsftpd"; else order="vsftpd dropgate"; fi
        for server in $order; do
            # Not in $(...): SYNC_NS must reach this shell.
            upload "$server" "$proto" >"$WORK/ns"
            ns=$(cat "$WORK/ns")
            TIMES[$server.$proto]+="$ns "
            [[ $server == vsftpd ]] && TIMES[durable.$proto]+="$((ns + SYNC_NS)) "
            printf '   %-5s run %d %-9s %8.1f MB/s\n' "$proto" "$run" "$server" \
                "$(awk -v b="$BYTES" -v ns="$ns" 'BEGIN {print b / (ns / 1e9) / 1e6}')"
        done
    done
done
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$DG_PID/status")

echo
echo "== results (median of $RUNS; MB/s = 10^6 bytes/s; $BYTES bytes)"
printf '   %-5s %12s %12s %8s %s\n' proto dropgate vsftpd ratio verdict
for proto in $PROTOS; do
    dg=$(tr ' ' '\n' <<<"${TIMES[dropgate.$proto]}" | grep . | median)
    vs=$(tr ' ' '\n' <<<"${TIMES[vsftpd.$proto]}" | grep . | median)
    read -r dg_mbs vs_mbs ratio < <(awk -v b="$BYTES" -v d="$dg" -v v="$vs" \
        'BEGIN {dm = b / (d / 1e9) / 1e6; vm = b / (v / 1e9) / 1e6; printf "%.1f %.1f %.2f\n", dm, vm, dm / vm}')
    verdict=$(awk -v r="$ratio" -v t="$T_RATIO" 'BEGIN {print (r >= t) ? "ok" : "BELOW TARGET"}')
    printf '   %-5s %8s MB/s %7s MB/s %7sx %s\n' "$proto" "$dg_mbs" "$vs_mbs" "$ratio" "$verdict"
done
echo "   with the fsync dropgate does before its 226 added to vsftpd's time (both durable when done):"
for proto in $PROTOS; do
    dg=$(tr ' ' '\n' <<<"${TIMES[dropgate.$proto]}" | grep . | median)
    vd=$(tr ' ' '\n' <<<"${TIMES[durable.$proto]}" | grep . | median)
    awk -v p="$proto" -v b="$BYTES" -v d="$dg" -v v="$vd" \
        'BEGIN {dm = b / (d / 1e9) / 1e6; vm = b / (v / 1e9) / 1e6; printf "   %-5s %8.1f MB/s %7.1f MB/s %7.2fx\n", p, dm, vm, dm / vm}'
done
echo "   TLS negotiated: dropgate $(tls_version dropgate), vsftpd $(tls_version vsftpd)"
echo "   dropgate peak RSS over all uploads: $((RSS_KB / 1024)) MB"
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"

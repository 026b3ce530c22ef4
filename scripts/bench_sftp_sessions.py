#!/usr/bin/env python3
"""Concurrent-session client for scripts/bench-sftp.sh.

Usage: bench_sftp_sessions.py --port P --user U (--key FILE | --password-env VAR)
                              [--sessions 200] [--files 5] [--rows 100]
                              [--prefix items_s] [--client C1] [--out result.json]

Opens SESSIONS SSH connections at once (one paramiko Transport each, each
in its own thread), waits until every one is logged in with an SFTP channel
open (a barrier, so the sessions really are concurrent rather than a quick
succession of short ones), then has each upload FILES small items files of
ROWS lines, one after the other, and close its connection.

File names are PREFIX<session>_f<file>.csv and item numbers are unique
across sessions and files, so every file is a distinct import of new items.

Prints nothing on success except a one-line summary; writes a JSON summary
to --out: sessions, files uploaded (CLOSE acknowledged by the server),
client-side failures with their first error messages, and timings.
Exit status 0 even with failures: the caller decides what they mean.

Needs paramiko (pip install paramiko).
"""

import argparse
import json
import os
import socket
import sys
import threading
import time

import paramiko

ITEMS_HEADER = (
    "client_code;item_type;item_number;item_date_issue;"
    "item_date_due;item_amount_initial_inc_tax\n"
)


def items_file(prefix: str, client: str, session: int, file_no: int, rows: int) -> bytes:
    lines = [ITEMS_HEADER]
    for r in range(rows):
        # Unique per (session, file, row): every line is a new item.
        lines.append(
            f"{client};FAC;{prefix.upper()}{session}-{file_no}-{r};"
            f"2025-01-01;2025-02-01;{10 + r % 90}\n"
        )
    return "".join(lines).encode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--key", help="private key file (Ed25519, OpenSSH format)")
    ap.add_argument("--password-env", help="name of the variable holding the password")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--prefix", default="items_s")
    ap.add_argument("--client", default="C1")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="per-operation socket/auth timeout and barrier wait, seconds")
    ap.add_argument("--deadline", type=float, default=600.0,
                    help="overall limit, seconds: threads still running then count as failed")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    if bool(a.key) == bool(a.password_env):
        ap.error("give exactly one of --key and --password-env")
    pkey = paramiko.Ed25519Key.from_private_key_file(a.key) if a.key else None
    password = os.environ[a.password_env] if a.password_env else None

    # Built before the clock starts: measure the server, not string building.
    payloads = {
        (s, f): items_file(a.prefix, a.client, s, f, a.rows)
        for s in range(1, a.sessions + 1)
        for f in range(1, a.files + 1)
    }

    lock = threading.Lock()
    errors = []            # (session, stage, message)
    uploaded = []          # file names whose CLOSE the server acknowledged
    logged_in = [0]
    # Parties: every session plus the main thread, which timestamps the
    # moment all sessions are open.
    barrier = threading.Barrier(a.sessions + 1)

    def fail(session: int, stage: str, e: BaseException) -> None:
        with lock:
            errors.append((session, stage, f"{type(e).__name__}: {e}"))

    def run(session: int) -> None:
        transport = None
        stage = "connect"
        try:
            sock = socket.create_connection((a.host, a.port), timeout=a.timeout)
            transport = paramiko.Transport(sock)
            transport.banner_timeout = a.timeout
            transport.auth_timeout = a.timeout
            transport.handshake_timeout = a.timeout
            stage = "login"
            # No host key check: loopback, throwaway server.
            transport.connect(username=a.user, password=password, pkey=pkey)
            stage = "sftp channel"
            sftp = paramiko.SFTPClient.from_transport(transport)
            sftp.get_channel().settimeout(a.timeout)
            with lock:
                logged_in[0] += 1
        except Exception as e:  # noqa: BLE001 - any failure is a failed session
            fail(session, stage, e)
            # Do not keep the others waiting for a session that will never
            # arrive: they go ahead at once (and still count as concurrent
            # as far as they got).
            barrier.abort()
            if transport is not None:
                transport.close()
            return
        try:
            barrier.wait(timeout=a.timeout)
        except threading.BrokenBarrierError:
            pass
        try:
            for f in range(1, a.files + 1):
                stage = f"upload {f}"
                name = f"{a.prefix}{session:04d}_f{f}.csv"
                # open/write/close rather than putfo: putfo stats the file
                # after the upload, and an imported upload is gone by then.
                with sftp.open(name, "wb") as fh:
                    fh.write(payloads[(session, f)])
                with lock:
                    uploaded.append(name)
        except Exception as e:  # noqa: BLE001
            fail(session, stage, e)
        finally:
            try:
                sftp.close()
            finally:
                transport.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(s,), daemon=True)
               for s in range(1, a.sessions + 1)]
    for t in threads:
        t.start()
    all_open_s = None
    try:
        barrier.wait(timeout=a.timeout)
        all_open_s = time.monotonic() - t0
    except threading.BrokenBarrierError:
        pass
    end = t0 + a.deadline
    for t in threads:
        t.join(timeout=max(0.0, end - time.monotonic()))
    wall = time.monotonic() - t0
    stuck = sum(t.is_alive() for t in threads)
    with lock:
        failed_sessions = sorted({s for s, _, _ in errors})
        result = {
            "sessions": a.sessions,
            "files_per_session": a.files,
            "rows_per_file": a.rows,
            "auth": "key" if pkey else "password",
            "logged_in": logged_in[0],
            "all_open_s": all_open_s,
            "files_uploaded": len(uploaded),
            "failed_sessions": len(failed_sessions) + stuck,
            "stuck_sessions": stuck,
            "errors": [f"session {s} {stage}: {m}" for s, stage, m in errors[:20]],
            "error_count": len(errors),
            "client_wall_s": wall,
        }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"   sessions: {result['logged_in']}/{a.sessions} logged in"
          + (f" (all open after {all_open_s:.2f} s)" if all_open_s is not None else "")
          + f", {len(uploaded)}/{a.sessions * a.files} files uploaded"
          + f", {result['failed_sessions']} failed sessions, client wall {wall:.2f} s")
    for e in result["errors"][:5]:
        print(f"   sessions: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

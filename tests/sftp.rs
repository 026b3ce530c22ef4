//! The SFTP door with real clients against a real `dropgate serve` on a
//! free loopback port: OpenSSH `sftp` and `scp` (key login) and paramiko
//! (password login, and a client killed in the middle of an upload).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

#[macro_use]
mod common;
use common::server::*;

#[test]
fn openssh_sftp_uploads_clients_then_items_and_reads_the_reports() {
    let s = Server::start();
    s.file("clients.csv", CLIENTS);
    s.file("items.csv", ITEMS);
    let out = s.sftp("acme", "put clients.csv\nput items.csv\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clients = s.report("clients.csv.report.json");
    assert_eq!(clients["nb_client_added"], 2);
    let items = s.report("items.csv.report.json");
    assert_eq!(items["nb_item_added"], 2, "{items}");
    assert!(
        items.get("exception_lines").is_none(),
        "clients were applied first: {items}"
    );
    // The uploads are gone; the reports are there and can be removed.
    let listing = s.listing("acme");
    assert!(
        !listing
            .lines()
            .any(|l| l.trim() == "clients.csv" || l.trim() == "items.csv"),
        "{listing}"
    );
    let out = s.sftp("acme", "rm clients.csv.report.json\n");
    assert!(out.status.success());
    assert!(!s.listing("acme").contains("clients.csv.report.json"));
    // One log line per login, upload and import.
    let log = s.log();
    assert!(
        log.contains("login") && log.contains("outcome=\"queued\"") && log.contains("import_id=2"),
        "{log}"
    );
}

#[test]
fn scp_uploads_through_the_sftp_subsystem() {
    let s = Server::start();
    let clients = s.file("clients_scp.csv", CLIENTS);
    let out = Command::new("scp")
        .args(s.ssh_options())
        .args(["-P", &s.port.to_string()])
        .arg(&clients)
        .arg("acme@127.0.0.1:clients_scp.csv")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.report("clients_scp.csv.report.json")["nb_client_added"],
        2
    );
}

#[test]
fn a_temporary_name_renamed_into_place_is_processed_once() {
    let s = Server::start();
    s.file("clients.csv", CLIENTS);
    // WinSCP's way: upload to .filepart, then rename.
    let out = s.sftp(
        "acme",
        "put clients.csv clients.csv.filepart\nls -1\nrename clients.csv.filepart clients.csv\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("clients.csv.filepart"));
    assert_eq!(s.report("clients.csv.report.json")["nb_client_added"], 2);
    let history = s.history();
    assert_eq!(
        history
            .lines()
            .filter(|l| l.ends_with("\tclients.csv"))
            .count(),
        1,
        "{history}"
    );
}

#[test]
fn paths_outside_the_folder_and_other_accounts_are_out_of_reach() {
    let s = Server::start();
    s.file("clients.csv", CLIENTS);
    assert!(
        s.sftp("other", "put clients.csv secret.part\n")
            .status
            .success()
    );
    for batch in [
        "get /etc/passwd\n",
        "get ../other/secret.part\n",
        "get ../../../../etc/passwd\n",
        "put clients.csv /etc/evil.csv\n",
        "put clients.csv sub/x.csv\n",
        "mkdir sub\n",
        "rm secret.part\n",
        "symlink /etc/passwd link\n",
    ] {
        let out = s.sftp("acme", batch);
        assert!(!out.status.success(), "{batch:?} succeeded");
    }
    assert!(
        !s.listing("acme").contains("secret"),
        "acme does not see other's files"
    );
    // Report names are dropgate's own.
    assert!(
        !s.sftp("acme", "put clients.csv fake.report.json\n")
            .status
            .success()
    );
}

#[test]
fn uploads_are_processed_in_order_within_one_session() {
    let s = Server::start();
    // 50 files: 25 clients files, each followed by the items that need it.
    let mut batch = String::new();
    for i in 0..25 {
        s.file(
            &format!("clients_{i}.csv"),
            &format!("client_code;client_business_name\nK{i};C{i}\n"),
        );
        s.file(
            &format!("items_{i}.csv"),
            &format!("client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\nK{i};FAC;N{i};2025-01-01;2025-02-01;1\n"),
        );
        batch.push_str(&format!("put clients_{i}.csv\nput items_{i}.csv\n"));
    }
    assert!(s.sftp("acme", &batch).status.success());
    for i in 0..25 {
        let r = s.report(&format!("items_{i}.csv.report.json"));
        assert_eq!(r["nb_item_added"], 1, "{r}");
    }
}

#[test]
fn paramiko_password_login_upload_and_failed_logins_look_alike() {
    require_paramiko!();
    let s = Server::start();
    let out = s.python(
        r#"
import os, paramiko, time, json
port = int(os.environ["PORT"])
t = paramiko.Transport(("127.0.0.1", port))
t.connect(username="acme", password=os.environ["PASSWORD"])
sftp = paramiko.SFTPClient.from_transport(t)
with sftp.open("clients_pm.csv", "w") as f:
    f.write("client_code;client_business_name\nP1;Paramiko\n")
deadline = time.time() + 60
while True:
    try:
        with sftp.open("clients_pm.csv.report.json") as f:
            print(json.load(f)["nb_client_added"])
        break
    except IOError:
        assert time.time() < deadline
        time.sleep(0.1)
t.close()
errors = []
for user, password in [("acme", "wrong-password"), ("ghost", "wrong-password")]:
    t = paramiko.Transport(("127.0.0.1", port))
    try:
        t.connect(username=user, password=password)
        errors.append("accepted")
    except paramiko.AuthenticationException as e:
        errors.append(type(e).__name__ + ":" + str(e))
    finally:
        t.close()
print(errors[0] == errors[1], errors[0])
"#,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(lines[1].starts_with("True "), "{stdout}");
}

#[test]
fn a_client_killed_mid_upload_leaves_nothing_imported_and_an_incomplete_report() {
    require_paramiko!();
    let s = Server::start();
    let out = s.python(
        r#"
import os, paramiko
t = paramiko.Transport(("127.0.0.1", int(os.environ["PORT"])))
t.connect(username="acme", password=os.environ["PASSWORD"])
sftp = paramiko.SFTPClient.from_transport(t)
f = sftp.open("clients.csv", "w")
f.write("client_code;client_business_name\nC1;Half\n")
f.flush()
os._exit(0)  # gone, with the file still open
"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = s.report("clients.csv.report.json");
    assert_eq!(r["error_code"], "UPLOAD_INCOMPLETE", "{r}");
    let export = dropgate(&s.data())
        .args(["export", "--account", "acme", "clients"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&export.stdout).lines().count(),
        1,
        "nothing imported"
    );
}

#[test]
fn uploads_acknowledged_before_a_stop_are_imported_after_the_restart() {
    let s = Server::start();
    s.file("clients.csv", CLIENTS);
    assert!(s.sftp("acme", "put clients.csv\n").status.success());
    // Stopped (gracefully or not, the upload was durable when acknowledged).
    let dir = s.stop();
    let s = Server::run(dir);
    assert_eq!(s.report("clients.csv.report.json")["nb_client_added"], 2);
    assert_eq!(s.history().lines().count(), 1, "imported once");
}

#[test]
fn the_host_key_is_kept_across_restarts() {
    let s = Server::start();
    let key = std::fs::read(s.data().join("ssh_host_ed25519_key")).unwrap();
    let dir = s.stop();
    let s = Server::run(dir);
    assert_eq!(
        std::fs::read(s.data().join("ssh_host_ed25519_key")).unwrap(),
        key
    );
}

/// Runs `command` to completion or fails the test after `secs`: a wedged
/// session must fail, not hang, the suite.
fn finish_within(mut command: Command, secs: u64) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn pipelined_large_downloads_do_not_wedge_the_session() {
    let s = Server::start();
    // 100 MB under a temporary name: kept as it is, so it can be read back.
    let block: Vec<u8> = (0u32..(1 << 18))
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let body: Vec<u8> = block.repeat(100);
    let local = s.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("big.bin.part"), &body).unwrap();
    assert!(s.sftp("acme", "put big.bin.part\n").status.success());

    // OpenSSH with 512 requests in flight (and the 255 KiB reads that
    // limits@openssh.com allows): the pattern that wedged russh sessions.
    std::fs::write(local.join("batch"), "get big.bin.part got_openssh.bin\n").unwrap();
    let mut sftp = Command::new("sftp");
    sftp.args(s.ssh_options())
        .args(["-R", "512", "-P", &s.port.to_string(), "-b"])
        .arg(local.join("batch"))
        .arg("acme@127.0.0.1")
        .current_dir(&local);
    let out = finish_within(sftp, 120);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(local.join("got_openssh.bin")).unwrap() == body,
        "byte-identical"
    );

    // paramiko's get prefetches: many READs before it reads any answer.
    if paramiko_available() {
        let mut python = Command::new("python3");
        python
            .arg("-c")
            .arg(
                r#"
import os, paramiko
t = paramiko.Transport(("127.0.0.1", int(os.environ["PORT"])))
t.connect(username="acme", password=os.environ["PASSWORD"])
paramiko.SFTPClient.from_transport(t).get("big.bin.part", os.environ["OUT"])
t.close()
"#,
            )
            .env("PORT", s.port.to_string())
            .env("PASSWORD", PASSWORD)
            .env("OUT", local.join("got_paramiko.bin"));
        let out = finish_within(python, 120);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::read(local.join("got_paramiko.bin")).unwrap() == body);
    }
}

/// Waits for the server to die by itself (an armed failpoint), and hands
/// back its data folder.
fn crashed(mut s: Server) -> tempfile::TempDir {
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the failpoint was not hit: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap())
}

/// Kills the server at one point of an import's life while 20 uploads are
/// being made, restarts it, and checks that every acknowledged upload ends
/// with exactly one import and one report, that no upload is imported twice,
/// and that the ledger holds exactly what the imported files say.
/// Uploads `PAIRS` pairs of files (clients, then items that need them)
/// with paramiko, printing each name once its close is acknowledged.
const UPLOAD_PAIRS: &str = r#"
import os, sys, paramiko
acknowledged = []
try:
    t = paramiko.Transport(("127.0.0.1", int(os.environ["PORT"])))
    t.connect(username="acme", password=os.environ["PASSWORD"])
    sftp = paramiko.SFTPClient.from_transport(t)
    for i in range(int(os.environ.get("PAIRS", "10"))):
        for name, body in [
            (f"clients_{i:02}.csv", f"client_code;client_business_name\nK{i};C{i}\n"),
            (f"items_{i:02}.csv", "client_code;item_type;item_number;item_date_issue;item_date_due;"
             f"item_amount_initial_inc_tax\nK{i};FAC;N{i};2025-01-01;2025-02-01;1\n"),
        ]:
            with sftp.open(name, "w") as f:
                f.write(body)
            acknowledged.append(name)  # close() returned: acknowledged
except Exception as e:
    print("stopped:", type(e).__name__, file=sys.stderr)
print("\n".join(acknowledged))
"#;

/// How the server is stopped in a crash test.
enum Stop<'a> {
    /// It aborts itself at this failpoint, at the first import.
    Failpoint(&'a str),
    /// It is killed from outside (SIGKILL) once this many imports committed.
    KillAfterImports(usize),
}

fn crash_and_recover(stop: Stop<'_>) {
    require_paramiko!();
    let (s, out) = match stop {
        Stop::Failpoint(failpoint) => {
            let s = Server::start_with(&[("DROPGATE_FAILPOINT", failpoint)]);
            let out = s.python(UPLOAD_PAIRS);
            (s, out)
        }
        Stop::KillAfterImports(n) => {
            let s = Server::start();
            let client = Command::new("python3")
                .arg("-c")
                .arg(UPLOAD_PAIRS)
                .env("PORT", s.port.to_string())
                .env("PASSWORD", PASSWORD)
                .env("PAIRS", "100")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if s.history().lines().filter(|l| l.contains("\tok\t")).count() >= n {
                    break;
                }
                assert!(Instant::now() < deadline, "no imports: {}", s.log());
                std::thread::sleep(Duration::from_millis(10));
            }
            unsafe { libc::kill(s.child.id() as i32, libc::SIGKILL) };
            (s, client.wait_with_output().unwrap())
        }
    };
    let acknowledged: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert!(
        !acknowledged.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = crashed(s);
    let s = Server::run(dir);
    for name in &acknowledged {
        let r = s.report(&format!("{name}.report.json"));
        assert_eq!(r["success"], true, "{name}: {r}");
        assert!(
            r.get("exception_lines").is_none(),
            "{name}, order kept: {r}"
        );
    }
    let history = s.history();
    // Imported: each file at most once. An upload the server queued but
    // died before acknowledging may be among them: it was durable, just not
    // confirmed; the promise is about the acknowledged ones.
    let imported: Vec<&str> = history
        .lines()
        .filter(|l| l.contains("\tok\t"))
        .filter_map(|l| l.rsplit('\t').next())
        .collect();
    let mut unique = imported.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        imported.len(),
        "nothing imported twice: {history}"
    );
    for name in &acknowledged {
        assert!(
            imported.contains(&name.as_str()),
            "{name} imported: {history}"
        );
    }
    // And the ledger holds exactly what the imported files say.
    let count = |t: &str| {
        let out = dropgate(&s.data())
            .args(["export", "--account", "acme", t])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count() - 1
    };
    let files = |prefix: &str| imported.iter().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(count("clients"), files("clients"));
    assert_eq!(count("items"), files("items"));
}

#[test]
fn a_crash_before_an_import_commits_is_recovered_exactly_once() {
    crash_and_recover(Stop::Failpoint("before-commit"));
}

#[test]
fn a_crash_after_the_commit_before_the_report_is_recovered_exactly_once() {
    crash_and_recover(Stop::Failpoint("after-commit"));
}

#[test]
fn a_crash_after_the_report_before_the_archive_is_recovered_exactly_once() {
    crash_and_recover(Stop::Failpoint("after-report"));
}

#[test]
fn curl_uploads_with_a_password_and_reads_the_report() {
    let s = Server::start();
    let local = s.file("clients_curl.csv", CLIENTS);
    let url = format!("sftp://127.0.0.1:{}/", s.port);
    let user = format!("acme:{PASSWORD}");
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--insecure", "-u", &user, "-T"])
        .arg(&local)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("curl")
            .args(["--silent", "--insecure", "-u", &user])
            .arg(format!("{url}clients_curl.csv.report.json"))
            .output()
            .unwrap();
        if out.status.success() {
            let r: Json = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["nb_client_added"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "no report");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lftp_with_a_temporary_file_is_processed_once() {
    if !have("lftp") {
        eprintln!("skipped: lftp is not installed (.ci/run installs it)");
        return;
    }
    let s = Server::start();
    s.file("clients.csv", CLIENTS);
    let connect = format!(
        "ssh -a -x -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -i {}",
        s.key().display()
    );
    let script = format!(
        "set sftp:connect-program \"{connect}\"; set xfer:use-temp-file yes; \
         open -u acme, sftp://127.0.0.1:{}; put clients.csv; bye",
        s.port
    );
    let mut lftp = Command::new("lftp");
    lftp.args(["-c", &script])
        .current_dir(s.dir.path().join("local"));
    let out = finish_within(lftp, 60);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.report("clients.csv.report.json")["nb_client_added"], 2);
    let history = s.history();
    assert_eq!(
        history.lines().count(),
        1,
        "one import, not one per name: {history}"
    );
}

/// FileZilla's own SFTP engine, through the shared harness.
#[test]
fn filezilla_engine_uploads_and_reads_the_report_with_password_and_key() {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/fzsftp_client.py");
    if !harness.exists() || !Path::new("/usr/bin/fzsftp").exists() {
        eprintln!(
            "skipped: FileZilla's fzsftp or the harness is missing (.ci/run installs filezilla)"
        );
        return;
    }
    let s = Server::start();
    let local = s.file("clients_fz.csv", CLIENTS);
    let ppk = s.dir.path().join("id.ppk");
    let convert = Command::new("python3")
        .arg(&harness)
        .arg("--convert-key")
        .arg(s.key())
        .arg(&ppk)
        .output()
        .unwrap();
    assert!(
        convert.status.success(),
        "{}",
        String::from_utf8_lossy(&convert.stderr)
    );
    // The same two clients twice: added by the first upload, unchanged by
    // the second.
    for (login, upload, counter) in [
        (
            vec!["--password-env".to_string(), "PASSWORD".to_string()],
            "clients_fz.csv",
            "nb_client_added",
        ),
        (
            vec!["--key".to_string(), ppk.display().to_string()],
            "clients_fz2.csv",
            "nb_client_unchanged",
        ),
    ] {
        let mut fz = Command::new("python3");
        fz.arg(&harness)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &s.port.to_string(),
                "--user",
                "acme",
            ])
            .args(&login)
            .args(["--accept-hostkey", "--no-agent", "--timeout", "60"])
            .args(["ls", "/", "put"])
            .arg(&local)
            .arg(format!("/{upload}"))
            .env("PASSWORD", PASSWORD);
        let out = finish_within(fz, 90);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(s.report(&format!("{upload}.report.json"))[counter], 2);
    }
}

/// Reads from a raw TCP connection until the server closes it; fails the
/// test if it stays open past `secs`.
fn closed_by_server_within(stream: &mut std::net::TcpStream, secs: u64) {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return, // reset: closed too
        }
        assert!(
            Instant::now() < deadline,
            "the server kept the connection open"
        );
    }
}

#[test]
fn a_connection_that_does_not_log_in_is_closed_after_the_grace_time() {
    let s = Server::start_with(&[("DROPGATE_SFTP_LOGIN_GRACE_SECS", "1")]);
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    closed_by_server_within(&mut idle, 15);
    // The close can reach us a moment before the server's log line.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("no login within the grace time") {
        assert!(Instant::now() < deadline, "{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn too_many_connections_from_one_address_are_refused() {
    let s = Server::start_with(&[("DROPGATE_SFTP_MAX_SESSIONS_PER_ADDRESS", "2")]);
    let _first = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let _second = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let mut third = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    closed_by_server_within(&mut third, 15);
    drop(_first);
    // The slot is free again once the server has seen the first one go.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if s.sftp("acme", "ls\n").status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sessions_per_account_are_limited_and_addresses_that_keep_failing_are_banned() {
    require_paramiko!();
    let s = Server::start_with(&[
        ("DROPGATE_SFTP_MAX_SESSIONS_PER_ACCOUNT", "2"),
        ("DROPGATE_AUTH_MAX_FAILURES", "3"),
        ("DROPGATE_AUTH_BAN_SECS", "3"),
    ]);
    let out = s.python(
        r#"
import os, time, paramiko
port, password = int(os.environ["PORT"]), os.environ["PASSWORD"]
def login(pw):
    t = paramiko.Transport(("127.0.0.1", port))
    try:
        t.connect(username="acme", password=pw)
        return t
    except Exception:
        t.close()
        return None
a, b = login(password), login(password)
print("two sessions:", a is not None and b is not None)
print("third refused:", login(password) is None)
a.close(); b.close()
deadline = time.time() + 30
while (c := login(password)) is None:  # once the server has seen them go
    assert time.time() < deadline, "the sessions were never released"
    time.sleep(0.2)
print("after closing:", c is not None)
c.close()
for _ in range(3):
    assert login("wrong-password") is None
print("banned:", login(password) is None)
deadline = time.time() + 30
while True:
    t = login(password)
    if t:
        t.close()
        break
    assert time.time() < deadline, "the ban never expired"
    time.sleep(0.5)
print("ban expired: True")
"#,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "two sessions: True",
        "third refused: True",
        "after closing: True",
        "banned: True",
        "ban expired: True",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
}

#[test]
fn a_killed_downloading_client_releases_its_session() {
    require_paramiko!();
    // One session per address: a new login succeeds only once the killed
    // client's session is gone.
    let s = Server::start_with(&[
        ("DROPGATE_SFTP_MAX_SESSIONS_PER_ADDRESS", "1"),
        ("DROPGATE_SFTP_KEEPALIVE_SECS", "1"),
    ]);
    let block: Vec<u8> = (0u32..(1 << 18)).flat_map(|i| i.to_le_bytes()).collect();
    let local = s.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("big.bin.part"), block.repeat(50)).unwrap();
    assert!(s.sftp("acme", "put big.bin.part\n").status.success());
    let mut client = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(os.environ["PORT"])))
t.connect(username="acme", password=os.environ["PASSWORD"])
sftp = paramiko.SFTPClient.from_transport(t)
print("downloading", flush=True)
sftp.get("big.bin.part", os.devnull)
"#,
        )
        .env("PORT", s.port.to_string())
        .env("PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "downloading");
    client.kill().unwrap(); // SIGKILL, mid-download
    client.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.sftp("acme", "ls\n").status.success() {
        assert!(
            Instant::now() < deadline,
            "the session was not released: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn only_the_sftp_subsystem_is_served() {
    let s = Server::start();
    let ssh = |extra: &[&str]| {
        let mut c = Command::new("ssh");
        c.args(s.ssh_options())
            .args(["-p", &s.port.to_string(), "-T"])
            .args(extra)
            .arg("acme@127.0.0.1");
        finish_within(c, 30)
    };
    let exec = ssh(&[]);
    assert!(!exec.status.success(), "a shell was served");
    let mut command = Command::new("ssh");
    command.args(s.ssh_options()).args([
        "-p",
        &s.port.to_string(),
        "acme@127.0.0.1",
        "cat",
        "/etc/passwd",
    ]);
    let out = finish_within(command, 30);
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("root:"),
        "exec was served"
    );
    let forward = ssh(&["-W", &format!("127.0.0.1:{}", s.port)]);
    assert!(!forward.status.success(), "a TCP forward was served");
}

#[test]
fn a_server_killed_with_sigkill_mid_stream_is_recovered_exactly_once() {
    crash_and_recover(Stop::KillAfterImports(3));
}

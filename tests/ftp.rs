//! The FTP door with real clients against a real `dropgate serve`: lftp,
//! curl, Python's ftplib (plain, explicit and implicit FTPS) and suppaftp,
//! plus raw protocol checks for what a client must not be able to do (FTP
//! bounce, data-connection hijacking, escapes) and for when an upload is
//! incomplete (ABOR, a dropped control connection, FTPS without
//! `close_notify`).

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

#[macro_use]
mod common;
use common::server::*;

/// A server with a test certificate: FTPS optional on the FTP port (or as
/// `tls` says), implicit FTPS on a port of its own.
fn ftps_server(tls: &str, env: &[(&str, &str)]) -> Server {
    let dir = Server::prepare();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let (cert_path, key_path) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let mut all = vec![
        ("DROPGATE_FTP_TLS_CERT", cert_path.as_str()),
        ("DROPGATE_FTP_TLS_KEY", key_path.as_str()),
        ("DROPGATE_FTP_TLS", tls),
        ("DROPGATE_FTP_IMPLICIT_TLS_LISTEN", "127.0.0.1:0"),
    ];
    all.extend_from_slice(env);
    Server::run_with(dir, &all)
}

/// Fetches reports with ftplib (over TLS when `TLS` is set), polling until
/// each is there; prints them as one JSON object by name.
const FETCH_REPORTS: &str = r#"
import ftplib, io, json, os, ssl, time
if os.environ.get("TLS"):
    f = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=os.environ["CERT"]))
    f.connect("127.0.0.1", int(os.environ["PORT"]))
    f.login("acme", os.environ["PASSWORD"])
    f.prot_p()
else:
    f = ftplib.FTP()
    f.connect("127.0.0.1", int(os.environ["PORT"]))
    f.login("acme", os.environ["PASSWORD"])
out = {}
deadline = time.time() + 90
for name in os.environ["NAMES"].split():
    while True:
        buf = io.BytesIO()
        try:
            f.retrbinary("RETR " + name, buf.write)
            break
        except ftplib.error_perm:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    out[name] = json.loads(buf.getvalue())
f.quit()
print(json.dumps(out))
"#;

fn reports(s: &Server, names: &[&str], tls: bool) -> Json {
    let joined = names.join(" ");
    let mut env = vec![("NAMES", joined.as_str())];
    if tls {
        env.push(("TLS", "1"));
    }
    let out = s.python_ftp(FETCH_REPORTS, &env);
    assert!(
        out.status.success(),
        "fetching {names:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn report(s: &Server, name: &str) -> Json {
    reports(s, &[name], false)[name].clone()
}

/// A clients file and an items file whose codes and numbers carry `tag`,
/// so that every pair adds two clients and two items.
fn pair(tag: &str) -> (String, String) {
    (
        format!("client_code;client_business_name\n{tag}1;One\n{tag}2;Two\n"),
        format!(
            "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\n\
             {tag}1;FAC;{tag}-1;2025-12-05;2025-12-12;\"6 580,10\"\n{tag}2;AVO;{tag}-2;2025-12-05;2025-12-12;10\n"
        ),
    )
}

/// Asserts that `clients*.csv` then `items*.csv` (from [`pair`]) were
/// imported: two clients, then two items that refer to them.
fn assert_clients_then_items(r: &Json, clients: &str, items: &str) {
    let c = &r[format!("{clients}.report.json")];
    let i = &r[format!("{items}.report.json")];
    assert_eq!(c["success"], true, "{c}");
    assert_eq!(c["nb_client_added"], 2, "{c}");
    assert_eq!(i["success"], true, "{i}");
    assert_eq!(i["nb_item_added"], 2, "{i}");
}

fn lftp(s: &Server, settings: &str, commands: &str) -> Output {
    let script = format!(
        "set net:max-retries 1\nset net:timeout 20\nset cmd:fail-exit true\n{settings}\n\
         open -u acme,{PASSWORD} -p {} 127.0.0.1\n{commands}\n",
        s.ftp_port()
    );
    let file = s.file("lftp.script", &script);
    let out = Command::new("lftp")
        .arg("-f")
        .arg(&file)
        .current_dir(s.dir.path().join("local"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lftp {commands:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    out
}

fn lftp_tls_settings(s: &Server) -> String {
    format!(
        "set ssl:ca-file {}\nset ftp:ssl-force true\nset ftp:ssl-protect-data true",
        s.dir.path().join("cert.pem").display()
    )
}

#[test]
fn lftp_uploads_clients_then_items_over_ftp_and_ftps_and_reads_the_reports() {
    if !have("lftp") {
        eprintln!("skipped: lftp is not installed (.ci/run installs it)");
        return;
    }
    let s = ftps_server("optional", &[]);
    let (c, i) = pair("A");
    s.file("clients_a.csv", &c);
    s.file("items_a.csv", &i);
    lftp(
        &s,
        "set ftp:ssl-allow no",
        "put clients_a.csv\nput items_a.csv",
    );
    assert_clients_then_items(
        &reports(
            &s,
            &["clients_a.csv.report.json", "items_a.csv.report.json"],
            false,
        ),
        "clients_a.csv",
        "items_a.csv",
    );
    // Explicit FTPS, TLS 1.3 (GnuTLS's default), then TLS 1.2; lftp reads
    // the reports itself.
    for (version, priority) in [("13", "NORMAL"), ("12", "NORMAL:-VERS-ALL:+VERS-TLS1.2")] {
        let (clients, items) = (
            format!("clients_{version}.csv"),
            format!("items_{version}.csv"),
        );
        let (c, i) = pair(&format!("L{version}"));
        s.file(&clients, &c);
        s.file(&items, &i);
        let settings = format!("{}\nset ssl:priority {priority}", lftp_tls_settings(&s));
        lftp(&s, &settings, &format!("put {clients}\nput {items}"));
        let names = [
            format!("{clients}.report.json"),
            format!("{items}.report.json"),
        ];
        let r = reports(&s, &[&names[0], &names[1]], true);
        assert_clients_then_items(&r, &clients, &items);
        lftp(
            &s,
            &settings,
            &format!("get {} -o fetched_{version}.json", names[1]),
        );
        let fetched: Json = serde_json::from_slice(
            &std::fs::read(
                s.dir
                    .path()
                    .join("local")
                    .join(format!("fetched_{version}.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(fetched["nb_item_added"], 2);
    }
    assert!(s.log().contains("tls=true"), "FTPS logins: {}", s.log());
}

#[test]
fn lftp_with_a_temporary_file_and_an_rnfr_rnto_flow_is_processed_once() {
    if !have("lftp") {
        eprintln!("skipped: lftp is not installed (.ci/run installs it)");
        return;
    }
    let s = Server::start();
    s.file("clients_tmp.csv", CLIENTS);
    lftp(
        &s,
        "set ftp:ssl-allow no\nset xfer:use-temp-file yes",
        "put clients_tmp.csv",
    );
    s.file("clients_mv.csv", CLIENTS);
    lftp(
        &s,
        "set ftp:ssl-allow no",
        "put clients_mv.csv -o clients_mv.csv.part\nmv clients_mv.csv.part clients_mv.csv",
    );
    let r = reports(
        &s,
        &["clients_tmp.csv.report.json", "clients_mv.csv.report.json"],
        false,
    );
    assert_eq!(r["clients_tmp.csv.report.json"]["nb_client_added"], 2);
    assert_eq!(r["clients_mv.csv.report.json"]["nb_client_modified"], 0);
    let history = s.history();
    assert_eq!(history.matches("clients_tmp.csv").count(), 1, "{history}");
    assert_eq!(history.matches("clients_mv.csv").count(), 1, "{history}");
    assert!(!history.contains(".part"), "{history}");
}

fn curl(args: &[&str]) -> Output {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn curl_uploads_over_ftp_and_ftps_with_pasv_epsv_and_active_mode() {
    let s = ftps_server("optional", &[]);
    let base = format!("ftp://acme:{PASSWORD}@127.0.0.1:{}/", s.ftp_port());
    let cert = s.dir.path().join("cert.pem").display().to_string();
    let tls = ["--ssl-reqd", "--cacert", cert.as_str()];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("epsv", vec!["--ftp-pasv"]),
        ("pasv", vec!["--ftp-pasv", "--disable-epsv"]),
        ("eprt", vec!["--ftp-port", "127.0.0.1"]),
        ("port", vec!["--ftp-port", "127.0.0.1", "--disable-eprt"]),
        ("ftps13", tls.to_vec()),
        (
            "ftps12",
            [&tls[..], &["--tls-max", "1.2", "--disable-epsv"]].concat(),
        ),
    ];
    for (case, options) in &cases {
        let (c, i) = pair(case);
        let clients = s.file(&format!("clients_{case}.csv"), &c);
        let items = s.file(&format!("items_{case}.csv"), &i);
        for file in [&clients, &items] {
            let mut args = options.clone();
            let path = file.display().to_string();
            args.extend(["-T", path.as_str(), base.as_str()]);
            curl(&args);
        }
        let (c, i) = (format!("clients_{case}.csv"), format!("items_{case}.csv"));
        let r = reports(
            &s,
            &[&format!("{c}.report.json"), &format!("{i}.report.json")],
            case.starts_with("ftps"),
        );
        assert_clients_then_items(&r, &c, &i);
        let _ = (c, i);
    }
    // curl reads a report and lists the folder over implicit FTPS too.
    let implicit = format!("ftps://acme:{PASSWORD}@127.0.0.1:{}/", s.ports["ftps"]);
    let listing = curl(&["--cacert", &cert, "-l", &implicit]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("items_ftps12.csv.report.json"));
    let got = curl(&[
        "--cacert",
        &cert,
        &format!("{implicit}items_ftps13.csv.report.json"),
    ]);
    let r: Json = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(r["nb_item_added"], 2);
}

/// ftplib, plain and explicit FTPS (and implicit, by wrapping the socket):
/// binary and `TYPE A` uploads, MLSD, SIZE, MDTM, DELE of a report, MKD
/// refused.
const FTPLIB_SESSION: &str = r#"
import ftplib, io, os, ssl, socket, time
mode = os.environ["MODE"]
ctx = ssl.create_default_context(cafile=os.environ["CERT"])
if mode == "plain":
    f = ftplib.FTP()
    f.connect("127.0.0.1", int(os.environ["PORT"]))
elif mode == "explicit":
    f = ftplib.FTP_TLS(context=ctx)
    f.connect("127.0.0.1", int(os.environ["PORT"]))
else:
    class Implicit(ftplib.FTP_TLS):
        def connect(self, host, port):
            self.host, self.port = host, port
            self.sock = ctx.wrap_socket(socket.create_connection((host, port), 30), server_hostname=host)
            self.af = self.sock.family
            self.file = self.sock.makefile("r", encoding=self.encoding)
            self.welcome = self.getresp()
            return self.welcome
    f = Implicit(context=ctx)
    f.connect("127.0.0.1", int(os.environ["FTPS_PORT"]))
f.login("acme", os.environ["PASSWORD"])
if mode != "plain":
    f.prot_p()
tag = os.environ["TAG"]
print(f.storbinary(f"STOR clients_{tag}.csv", io.BytesIO(os.environ["CLIENTS"].encode())))
# TYPE A: ftplib sends CRLF lines.
print(f.storlines(f"STOR items_{tag}.csv", io.BytesIO(os.environ["ITEMS"].encode())))
report = f"items_{tag}.csv.report.json"
deadline = time.time() + 90
while report not in [name for name, _ in f.mlsd()]:
    assert time.time() < deadline, "no report"
    time.sleep(0.1)
facts = dict(f.mlsd())[report]
assert facts["type"] == "file" and int(facts["size"]) > 0, facts
assert f.size(report) == int(facts["size"])
assert f.sendcmd("MDTM " + report).startswith("213 ")
try:
    f.mkd("sub")
    raise SystemExit("MKD accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
buf = io.BytesIO()
f.retrbinary("RETR " + report, buf.write)
print("REPORT " + buf.getvalue().decode().replace("\n", " "))
f.delete(report)
assert report not in f.nlst()
f.quit()
"#;

#[test]
fn ftplib_uploads_over_ftp_explicit_and_implicit_ftps() {
    let s = ftps_server("optional", &[]);
    for mode in ["plain", "explicit", "implicit"] {
        let (c, i) = pair(mode);
        let out = s.python_ftp(
            FTPLIB_SESSION,
            &[
                ("MODE", mode),
                ("TAG", mode),
                ("CLIENTS", &c),
                ("ITEMS", &i),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.log()
        );
        let report: Json = serde_json::from_str(stdout.split("REPORT ").nth(1).unwrap()).unwrap();
        assert_eq!(report["success"], true, "{mode}: {report}");
        assert_eq!(report["nb_item_added"], 2, "{mode}: {report}");
    }
}

/// suppaftp over explicit FTPS, in process.
#[test]
fn suppaftp_uploads_over_ftps_lists_renames_and_reads_reports() {
    use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
    use suppaftp::tokio_rustls::rustls;
    use suppaftp::types::FileType;
    let s = ftps_server("required", &[]);
    let cert_pem = std::fs::read(s.dir.path().join("cert.pem")).unwrap();
    let port = s.ftp_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&cert_pem).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = AsyncRustlsConnector::from(suppaftp::tokio_rustls::TlsConnector::from(
            Arc::new(config),
        ));
        let ftp = AsyncRustlsFtpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut ftp = ftp.into_secure(connector, "localhost").await.unwrap();
        ftp.login("acme", PASSWORD).await.unwrap();
        ftp.transfer_type(FileType::Binary).await.unwrap();
        let n = ftp
            .put_file("clients_s.csv.tmp", &mut CLIENTS.as_bytes())
            .await
            .unwrap();
        assert_eq!(n, CLIENTS.len() as u64);
        // A temporary name waits until it is renamed.
        assert!(
            ftp.nlst(None)
                .await
                .unwrap()
                .contains(&"clients_s.csv.tmp".to_string())
        );
        ftp.rename("clients_s.csv.tmp", "clients_s.csv")
            .await
            .unwrap();
        ftp.put_file("items_s.csv", &mut ITEMS.as_bytes())
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut got = Vec::new();
        for name in ["clients_s.csv.report.json", "items_s.csv.report.json"] {
            loop {
                if let Ok(mut stream) = ftp.retr_as_stream(name).await {
                    let mut body = Vec::new();
                    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut body)
                        .await
                        .unwrap();
                    stream.finish().await.unwrap();
                    got.push(serde_json::from_slice::<Json>(&body).unwrap());
                    break;
                }
                assert!(Instant::now() < deadline, "no {name}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        assert_eq!(got[0]["nb_client_added"], 2, "{}", got[0]);
        assert_eq!(got[1]["nb_item_added"], 2, "{}", got[1]);
        let listing = ftp.mlsd(None).await.unwrap();
        assert!(
            listing
                .iter()
                .any(|l| l.ends_with(" items_s.csv.report.json")),
            "{listing:?}"
        );
        ftp.rm("items_s.csv.report.json").await.unwrap();
        assert!(ftp.mkdir("sub").await.is_err());
        ftp.quit().await.unwrap();
    });
}

#[test]
fn a_curl_ftps_upload_killed_halfway_is_incomplete_and_nothing_is_imported() {
    let s = ftps_server("optional", &[]);
    // A large valid items file, sent slowly.
    let mut body = String::from(
        "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\n",
    );
    for n in 0..100_000 {
        body.push_str(&format!("C0001;FAC;N{n:08};2025-12-05;2025-12-12;10\n"));
    }
    s.file("clients_k.csv", CLIENTS);
    let clients = s
        .dir
        .path()
        .join("local/clients_k.csv")
        .display()
        .to_string();
    let big = s.file("items_k.csv", &body).display().to_string();
    let cert = s.dir.path().join("cert.pem").display().to_string();
    let base = format!("ftp://acme:{PASSWORD}@127.0.0.1:{}/", s.ftp_port());
    curl(&["--ssl-reqd", "--cacert", &cert, "-T", &clients, &base]);
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--ssl-reqd",
            "--cacert",
            &cert,
            "--limit-rate",
            "100k",
            "-T",
            &big,
            &base,
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let on_disk = s.drop_folder("acme").join("items_k.csv");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&on_disk).map_or(0, |m| m.len()) < 64 * 1024 {
        assert!(
            Instant::now() < deadline,
            "the upload did not start: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let r = reports(
        &s,
        &["clients_k.csv.report.json", "items_k.csv.report.json"],
        true,
    );
    assert_eq!(
        r["items_k.csv.report.json"]["error_code"], "UPLOAD_INCOMPLETE",
        "{r}"
    );
    let history = s.history();
    assert_eq!(history.matches("items_k.csv").count(), 1, "{history}");
    let export = Command::new(env!("CARGO_BIN_EXE_dropgate"))
        .arg("--data-dir")
        .arg(s.data())
        .args(["export", "--account", "acme", "items"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&export.stdout).lines().count(),
        1,
        "nothing imported: {}",
        String::from_utf8_lossy(&export.stdout)
    );
}

/// Starts an upload by hand, sends half, then ends it as `HOW` says:
/// `abor` (ABOR, as ftplib sends it: urgent data) or `hangup` (the control
/// connection closes first).
const CUT_OFF_UPLOAD: &str = r#"
import ftplib, os, socket
f = ftplib.FTP()
f.connect("127.0.0.1", int(os.environ["PORT"]))
f.login("acme", os.environ["PASSWORD"])
f.voidcmd("TYPE I")
name = os.environ["NAME"]
conn = f.transfercmd("STOR " + name)
body = os.environ["ITEMS"].encode()
conn.sendall(body[: len(body) // 2])
if os.environ["HOW"] == "abor":
    f.sock.sendall(b"ABOR\r\n", socket.MSG_OOB)
    conn.close()
    first = f.getline()
    second = f.getline()
    print(first, second)
    assert first.startswith("426"), first
    assert second.startswith("226"), second
    f.quit()
else:
    # (ftplib's reply reader holds the socket too: close() alone would
    # leave it open.)
    f.sock.shutdown(socket.SHUT_RDWR)
    conn.sendall(body[len(body) // 2 :])
    conn.close()
"#;

#[test]
fn abor_and_a_dropped_control_connection_leave_incomplete_uploads() {
    let s = Server::start();
    for how in ["abor", "hangup"] {
        let name = format!("items_{how}.csv");
        let out = s.python_ftp(
            CUT_OFF_UPLOAD,
            &[("NAME", name.as_str()), ("HOW", how), ("ITEMS", ITEMS)],
        );
        assert!(
            out.status.success(),
            "{how}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.log()
        );
        let r = report(&s, &format!("{name}.report.json"));
        assert_eq!(r["error_code"], "UPLOAD_INCOMPLETE", "{how}: {r}");
    }
    assert!(!s.history().contains("\"success\": true"));
}

/// Logins and paths that must be refused.
const REFUSALS: &str = r#"
import ftplib, os
def login(user, password):
    f = ftplib.FTP()
    f.connect("127.0.0.1", int(os.environ["PORT"]))
    f.login(user, password)
    return f
for user, password in [("anonymous", "guest@example.com"), ("ftp", ""), ("acme", "wrong-password")]:
    try:
        login(user, password)
        raise SystemExit(f"{user} logged in")
    except ftplib.error_perm as e:
        assert str(e).startswith("530"), e
f = login("acme", os.environ["PASSWORD"])
for command in ["RETR ../other/secret.csv", "RETR /etc/passwd", "RETR ../../../../etc/passwd",
                "SIZE ../other/secret.csv", "DELE ../other/secret.csv", "CWD ../other", "CWD /etc",
                "RMD sub", "MKD sub", "RNFR ../other/secret.csv"]:
    try:
        if command.startswith("RETR"):
            f.retrbinary(command, lambda b: None)
        else:
            f.sendcmd(command)
        raise SystemExit(f"{command} accepted")
    except ftplib.error_perm as e:
        assert str(e)[:3] in ("550", "553"), (command, e)
for name in ["/etc/evil.csv", "sub/x.csv", "../other/x.csv", "fake.report.json"]:
    try:
        f.storbinary("STOR " + name, __import__("io").BytesIO(b"x"))
        raise SystemExit(f"STOR {name} accepted")
    except ftplib.error_perm as e:
        assert str(e)[:3] in ("550", "553"), (name, e)
# As in a chroot, ".." at the top is the top: the file stays in the folder.
f.storbinary("STOR ../../escape.part", __import__("io").BytesIO(b"x"))
assert "escape.part" in f.nlst()
f.cwd("..")
assert f.pwd() == "/"
assert "secret.csv" not in f.nlst()
f.quit()
"#;

#[test]
fn anonymous_logins_wrong_passwords_and_path_escapes_are_refused() {
    let s = Server::start();
    std::fs::create_dir_all(s.drop_folder("other")).unwrap();
    std::fs::write(s.drop_folder("other").join("secret.csv.part"), "x").unwrap();
    std::fs::write(s.drop_folder("other").join("secret.csv"), "x").unwrap();
    let out = s.python_ftp(REFUSALS, &[]);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    assert!(!s.data().join("escape.part").exists());
    assert!(!s.data().join("drop").join("escape.part").exists());
    assert!(s.drop_folder("acme").join("escape.part").exists());
    assert!(!s.drop_folder("other").join("x.csv").exists());
    assert!(!s.drop_folder("acme").join("fake.report.json").exists());
    assert!(s.log().contains("failed login"));
}

/// A data connection from another address than the control connection's
/// (127.0.0.2) is closed unused; the client's own connection then works.
const HIJACK: &str = r#"
import ftplib, os, socket
f = ftplib.FTP()
f.connect("127.0.0.1", int(os.environ["PORT"]))
f.login("acme", os.environ["PASSWORD"])
f.voidcmd("TYPE I")
port = int(f.sendcmd("EPSV").split("|||")[1].split("|")[0])
# The rogue connects first, then the real client, from the control
# connection's address; the listing goes to the real client only.
rogue = socket.socket()
rogue.bind(("127.0.0.2", 0))
rogue.connect(("127.0.0.1", port))
rogue.settimeout(60)
conn = socket.create_connection(("127.0.0.1", port))
f.putcmd("NLST")
assert f.getresp().startswith("150")
names = conn.makefile("rb").read()
conn.close()
assert f.getresp().startswith("226")
assert b"secret.csv.report.json" in names, names
try:
    stolen = rogue.recv(100)
except ConnectionResetError:
    stolen = b""
assert stolen == b"", stolen
f.quit()
"#;

#[test]
fn a_data_connection_from_another_address_is_refused() {
    let s = Server::start();
    std::fs::create_dir_all(s.drop_folder("acme")).unwrap();
    std::fs::write(s.drop_folder("acme").join("secret.csv.report.json"), "{}").unwrap();
    let out = s.python_ftp(HIJACK, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    assert!(s.log().contains("data connection refused"), "{}", s.log());
}

/// PORT and EPRT to anyone but the client itself are refused (no FTP
/// bounce); to the client itself they work.
const BOUNCE: &str = r#"
import ftplib, os, socket
f = ftplib.FTP()
f.connect("127.0.0.1", int(os.environ["PORT"]))
f.login("acme", os.environ["PASSWORD"])
for command in ["PORT 127,0,0,2,200,10", "PORT 10,0,0,1,200,10", "PORT 127,0,0,1,0,25",
                "EPRT |1|127.0.0.2|51210|", "EPRT |1|192.0.2.1|51210|"]:
    try:
        f.sendcmd(command)
        raise SystemExit(f"{command} accepted")
    except ftplib.error_perm as e:
        assert str(e).startswith("504"), (command, e)
f.set_pasv(False)
print(f.nlst())
f.quit()
"#;

#[test]
fn port_and_eprt_to_a_third_party_address_are_refused() {
    let s = Server::start();
    let out = s.python_ftp(BOUNCE, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
}

/// With `tls = "required"`, nothing happens in the clear.
const TLS_REQUIRED: &str = r#"
import ftplib, os, ssl
f = ftplib.FTP()
f.connect("127.0.0.1", int(os.environ["PORT"]))
try:
    f.login("acme", os.environ["PASSWORD"])
    raise SystemExit("a plain login was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("530"), e
f.close()
f = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=os.environ["CERT"]))
f.connect("127.0.0.1", int(os.environ["PORT"]))
f.login("acme", os.environ["PASSWORD"])
try:
    f.prot_c()
    raise SystemExit("PROT C was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("534"), e
try:
    f.nlst()
    raise SystemExit("a clear data connection was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("521"), e
f.prot_p()
f.nlst()
f.quit()
"#;

#[test]
fn required_tls_refuses_clear_logins_and_clear_data() {
    let s = ftps_server("required", &[]);
    let out = s.python_ftp(TLS_REQUIRED, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
}

/// `SESSIONS` sessions log in, then all upload at once (a barrier), each
/// its own clients and items files.
const CONCURRENT: &str = r#"
import ftplib, io, os, threading
n = int(os.environ["SESSIONS"])
barrier = threading.Barrier(n)
errors = []
def session(i):
    try:
        f = ftplib.FTP()
        f.connect("127.0.0.1", int(os.environ["PORT"]), timeout=120)
        f.login("acme", os.environ["PASSWORD"])
        barrier.wait()
        f.storbinary(f"STOR clients_{i:02}.csv", io.BytesIO(f"client_code;client_business_name\nK{i};C{i}\n".encode()))
        f.storbinary(f"STOR items_{i:02}.csv", io.BytesIO(
            ("client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\n"
             f"K{i};FAC;N{i};2025-01-01;2025-02-01;{i + 1}\n").encode()))
        f.quit()
    except Exception as e:
        errors.append(f"{i}: {e!r}")
threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
"#;

#[test]
fn twenty_concurrent_sessions_uploading_at_once_all_get_correct_reports() {
    let s = Server::start();
    let out = s.python_ftp(CONCURRENT, &[("SESSIONS", "20")]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    let names: Vec<String> = (0..20)
        .flat_map(|i| {
            [
                format!("clients_{i:02}.csv.report.json"),
                format!("items_{i:02}.csv.report.json"),
            ]
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let r = reports(&s, &refs, false);
    for i in 0..20 {
        let c = &r[format!("clients_{i:02}.csv.report.json")];
        let it = &r[format!("items_{i:02}.csv.report.json")];
        assert_eq!(c["nb_client_added"], 1, "{c}");
        assert_eq!(it["success"], true, "{it}");
        assert_eq!(it["nb_item_added"], 1, "{it}");
    }
}

#[test]
fn too_many_failed_logins_ban_the_address_for_every_door() {
    let s = Server::start_with(&[
        ("DROPGATE_AUTH_MAX_FAILURES", "2"),
        ("DROPGATE_AUTH_BAN_SECS", "60"),
    ]);
    let script = r#"
import ftplib, os
for _ in range(2):
    f = ftplib.FTP()
    f.connect("127.0.0.1", int(os.environ["PORT"]))
    try:
        f.login("acme", "wrong-password")
    except ftplib.error_perm:
        pass
    f.close()
f = ftplib.FTP()
try:
    f.connect("127.0.0.1", int(os.environ["PORT"]))
    f.login("acme", os.environ["PASSWORD"])
    raise SystemExit("a banned address logged in")
except (ftplib.error_temp, EOFError, ConnectionError) as e:
    print("refused:", e)
"#;
    let out = s.python_ftp(script, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    // The SFTP door refuses the address too: the ban is the auth module's.
    let sftp = s.sftp("acme", "ls\n");
    assert!(!sftp.status.success());
    let _ = std::io::stdout().flush();
}

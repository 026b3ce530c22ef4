//! The `dropgate` command line, run as a real process on a real data folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value as Json;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dropgate"));
        c.arg("--data-dir").arg(self.data());
        c.env_remove("DROPGATE_CONFIG")
            .env_remove("DROPGATE_DATA_DIR")
            .env_remove("RUST_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn file(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn import(&self, extra: &[&str], files: &[&Path]) -> (i32, Vec<Json>, String) {
        let mut args: Vec<String> = vec!["import".into(), "--account".into(), "acme".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&args);
        let reports = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (
            out.status.code().unwrap(),
            reports,
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

const CLIENTS: &str = "client_code;client_business_name\nC0001;My company\n";
const ITEMS: &str = "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\n\
                     C0001;FAC;00000123;2025-12-05;2025-12-12;\"6 580,10\"\n";

#[test]
fn account_lifecycle() {
    let e = Env::new();
    let o = e.run_with_stdin(
        &["account", "add", "acme", "--password-stdin"],
        "s3cret-pass\n",
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        code(&e.run(&["account", "add", "acme"])),
        2,
        "duplicate name"
    );
    assert_eq!(
        code(&e.run(&["account", "add", "../evil"])),
        2,
        "unsafe name"
    );
    let o = e.run_with_stdin(&["account", "add", "weak", "--password-stdin"], "short\n");
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 8"));
    assert_eq!(code(&e.run(&["account", "add", "keyonly"])), 0);

    let list = String::from_utf8(e.run(&["account", "list"]).stdout).unwrap();
    assert!(
        list.contains("acme\tpassword=yes") && list.contains("keyonly\tpassword=no"),
        "{list}"
    );

    // The password is stored as an argon2id hash, never in clear.
    let db = std::fs::read(e.data().join("dropgate.db")).unwrap();
    assert!(!db.windows(11).any(|w| w == b"s3cret-pass"));

    let o = e.run(&[
        "account",
        "set",
        "acme",
        "clear_items_not_modified=true",
        "item_type_map.NF=FAC",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        code(&e.run(&["account", "set", "acme", "encoding=klingon"])),
        2
    );
    assert_eq!(
        code(&e.run(&["account", "set", "acme", "item_type_map.X=INV"])),
        2
    );

    let key = e.file(
        "id.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxSIDzP0zWGRmdAXgFZ3xsYvjd7SKGwF1vgr1rvXUeE ci@test\n",
    );
    assert_eq!(
        code(&e.run(&["account", "key", "add", "acme", key.to_str().unwrap()])),
        0
    );
    let bad = e.file("bad.pub", "ssh-ed25519 notbase64!\n");
    let o = e.run(&["account", "key", "add", "acme", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1"));

    let show: Json = serde_json::from_slice(&e.run(&["account", "show", "acme"]).stdout).unwrap();
    assert_eq!(show["password"], true);
    assert_eq!(show["settings"]["clear_items_not_modified"], "true");
    assert_eq!(show["settings"]["item_type_map.NF"], "FAC");
    assert!(show["keys"][0].as_str().unwrap().ends_with("ci@test"));
    assert!(!show.to_string().contains("argon2"), "no hash shown");

    let o = e.run_with_stdin(
        &["account", "passwd", "acme", "--password-stdin"],
        "another-pass\n",
    );
    assert_eq!(code(&o), 0);
    assert_eq!(code(&e.run(&["account", "remove", "acme"])), 0);
    assert_eq!(code(&e.run(&["account", "remove", "acme"])), 2);
    assert_eq!(code(&e.run(&["account", "show", "acme"])), 2);
}

#[test]
fn import_prints_one_report_per_file_in_order_and_exit_codes() {
    let e = Env::new();
    e.run(&["account", "add", "acme"]);
    let clients = e.file("clients_20251205.csv", CLIENTS);
    let items = e.file("items_20251205.csv", ITEMS);
    let (status, reports, _) = e.import(&[], &[&clients, &items]);
    assert_eq!(status, 0);
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["file"], "clients_20251205.csv");
    assert_eq!(reports[0]["nb_client_added"], 1);
    assert_eq!(reports[1]["nb_item_added"], 1);

    // Any report with success=false → exit 1; the other files are still done.
    let bad = e.file("items_bad.csv", "client_code;item_type\nC0001;FAC\n");
    let (status, reports, _) = e.import(&[], &[&bad, &clients]);
    assert_eq!(status, 1);
    assert_eq!(reports[0]["error_code"], "CSV_MISSING_COLUMN");
    assert_eq!(reports[1]["nb_client_unchanged"], 1);

    // Usage errors → exit 2, nothing imported.
    let missing = e.dir.path().join("nope.csv");
    let (status, reports, stderr) = e.import(&[], &[&items, &missing]);
    assert_eq!(status, 2);
    assert!(reports.is_empty());
    assert!(stderr.contains("nope.csv"), "{stderr}");
    let o = e.run(&["import", "--account", "ghost", clients.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("ghost"));
    let (status, _, _) = e.import(&["--option", "novalue"], &[&clients]);
    assert_eq!(status, 2);

    // Nothing on stderr looks like a progress bar when stderr is not a terminal.
    let (_, _, stderr) = e.import(&[], &[&clients]);
    assert!(!stderr.contains("[=") && !stderr.contains('\r'), "{stderr}");
}

#[test]
fn option_precedence_account_then_tags_then_command_line() {
    let e = Env::new();
    e.run(&["account", "add", "acme"]);
    let clients = e.file("clients.csv", CLIENTS);
    e.import(&[], &[&clients]);
    assert_eq!(
        code(&e.run(&["account", "set", "acme", "clear_items_not_modified=true"])),
        0
    );
    let items = e.file("items.csv", ITEMS);
    let (_, r, _) = e.import(&[], &[&items]);
    assert_eq!(
        r[0]["options"]["clear_items_not_modified"], true,
        "account default"
    );
    let delta = e.file("items@delta.csv", ITEMS);
    let (_, r, _) = e.import(&[], &[&delta]);
    assert_eq!(
        r[0]["options"]["clear_items_not_modified"], false,
        "tag over account"
    );
    let (_, r, _) = e.import(&["--option", "clear_items_not_modified=true"], &[&delta]);
    assert_eq!(
        r[0]["options"]["clear_items_not_modified"], true,
        "--option over tag"
    );
}

#[test]
fn configuration_file_and_environment() {
    let e = Env::new();
    e.run(&["account", "add", "acme"]);
    let config = e.file("dropgate.toml", "[import]\nencoding = \"UTF-8\"\n");
    let clients = e.file(
        "clients.csv",
        "client_code;client_business_name\nC1;Caf\u{e9}\n",
    );
    std::fs::write(&clients, b"client_code;client_business_name\nC1;Caf\xe9\n").unwrap();
    let o = e
        .cmd()
        .args([
            "--config",
            config.to_str().unwrap(),
            "import",
            "--account",
            "acme",
            clients.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let r: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["error_code"], "ENCODING_INVALID",
        "strict UTF-8 from the file"
    );
    let o = e
        .cmd()
        .env("DROPGATE_IMPORT_ENCODING", "windows-1252")
        .args([
            "--config",
            config.to_str().unwrap(),
            "import",
            "--account",
            "acme",
            clients.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let r: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["success"], true, "the variable wins over the file: {r}");
    let o = e
        .cmd()
        .env("DROPGATE_IMPORT_ENCODNG", "x")
        .args(["account", "list"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("DROPGATE_IMPORT_ENCODNG"));
    // DROPGATE_DATA_DIR chooses the data folder.
    let other = e.dir.path().join("other");
    let o = Command::new(env!("CARGO_BIN_EXE_dropgate"))
        .env("DROPGATE_DATA_DIR", &other)
        .args(["account", "add", "elsewhere"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert!(other.join("dropgate.db").exists());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let e = Env::new();
    let o = e.run(&["--log-format", "json", "account", "add", "acme"]);
    let stderr = String::from_utf8(o.stderr).unwrap();
    let log_line = stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON log line");
    let v: Json = serde_json::from_str(log_line).unwrap();
    assert_eq!(v["fields"]["message"], "account created");
}

#[test]
fn export_import_round_trip_through_the_cli() {
    let e = Env::new();
    e.run(&["account", "add", "acme"]);
    let clients = e.file("clients.csv", CLIENTS);
    let items = e.file("items.csv", ITEMS);
    e.import(&[], &[&clients, &items]);
    let o = e.run(&["export", "--account", "acme", "items"]);
    assert_eq!(code(&o), 0);
    let exported = e.file("items_export.csv", std::str::from_utf8(&o.stdout).unwrap());
    let (status, r, _) = e.import(&[], &[&exported]);
    assert_eq!(status, 0);
    assert_eq!(r[0]["nb_item_unchanged"], 1);
    assert_eq!(r[0]["nb_item_modified"], 0);
    let history = String::from_utf8(e.run(&["history", "--account", "acme"]).stdout).unwrap();
    assert_eq!(history.lines().count(), 3);
    assert!(
        history
            .lines()
            .next()
            .unwrap()
            .ends_with("items_export.csv"),
        "{history}"
    );
}

/// The README's walkthrough imports these; they must keep doing what it says.
#[test]
fn readme_example_files_import_as_described() {
    let e = Env::new();
    e.run(&["account", "add", "acme"]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/examples");
    let files: Vec<PathBuf> = ["clients", "items", "contacts", "users"]
        .iter()
        .map(|t| dir.join(format!("{t}_20251205.csv")))
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (status, r, _) = e.import(&["--pretty"], &[]);
    assert_eq!(status, 2, "no file given is a usage error");
    assert!(r.is_empty());
    let (status, r, _) = e.import(&[], &refs);
    assert_eq!(status, 0);
    assert_eq!(r[0]["nb_client_added"], 2);
    assert_eq!(r[1]["nb_item_added"], 2);
    assert_eq!(
        r[1]["exception_lines"]["line 4"],
        "Unknown client_code: 'C0009'"
    );
    assert_eq!(r[2]["nb_contact_added"], 1);
    assert_eq!(r[3]["nb_user_added"], 1);
}

/// A person watching a large import sees a progress bar; `script` gives the
/// command a terminal as stderr.
#[test]
fn a_large_import_shows_a_progress_bar_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let e = Env::new();
    e.run(&["account", "add", "acme"]);
    let mut body = String::from("client_code;client_business_name\n");
    for i in 0..60_000 {
        body.push_str(&format!("C{i:06};Client number {i} with a longish name\n"));
    }
    let clients = e.file("clients.csv", &body);
    assert!(std::fs::metadata(&clients).unwrap().len() > 1 << 20);
    let command = format!(
        "{} --data-dir {} import --account acme {} >/dev/null",
        env!("CARGO_BIN_EXE_dropgate"),
        e.data().display(),
        clients.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(
        terminal.contains("clients.csv") && terminal.contains("MiB"),
        "{terminal:?}"
    );
}

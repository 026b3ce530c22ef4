//! A real `dropgate serve` for the door tests: a temporary data folder
//! with two accounts, every door on a free loopback port, and helpers to
//! reach it with real clients.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// A running `dropgate serve` with one account `acme` (password and key)
/// and one account `other`.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Child,
    /// The SFTP port.
    pub port: u16,
    /// Every door's port, by the name it printed (`sftp`, `ftp`, `ftps`,
    /// `http` or `https`).
    pub ports: HashMap<String, u16>,
    /// Kept open: the server must be able to write to its standard output.
    _stdout: BufReader<ChildStdout>,
}

pub const PASSWORD: &str = "acme-password-1";

pub fn dropgate(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dropgate"));
    c.arg("--data-dir").arg(data);
    c.env_remove("DROPGATE_CONFIG").env("RUST_LOG", "info");
    c
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Server {
        Server::run_with(Server::prepare(), env)
    }

    /// A data folder with the two accounts, for [`Server::run_with`].
    pub fn prepare() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key = dir.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut add = dropgate(&data)
            .args(["account", "add", "acme", "--password-stdin"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        assert!(add.wait().unwrap().success());
        let pubkey = key.with_extension("pub");
        assert!(
            dropgate(&data)
                .args(["account", "key", "add", "acme"])
                .arg(&pubkey)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            dropgate(&data)
                .args(["account", "add", "other"])
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        );
        assert!(
            dropgate(&data)
                .args(["account", "key", "add", "other"])
                .arg(&pubkey)
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        );
        dir
    }

    pub fn run(dir: tempfile::TempDir) -> Server {
        Server::run_with(dir, &[])
    }

    pub fn run_with(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut child = dropgate(&data)
            .arg("serve")
            .env("DROPGATE_SFTP_LISTEN", "127.0.0.1:0")
            .env("DROPGATE_SFTP_RSA_HOST_KEY", "false")
            .env("DROPGATE_AUTH_FAILURE_DELAY_MS", "100")
            .env("DROPGATE_FTP_LISTEN", "127.0.0.1:0")
            .env("DROPGATE_FTP_PASSIVE_PORTS", "0")
            .env("DROPGATE_HTTP_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        // The server prints each door's address, then that it is ready.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ports = HashMap::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!(
                    "the server stopped before it was ready: {}",
                    std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
                );
            }
            if line.trim() == "dropgate ready" {
                break;
            }
            if let Some((door, address)) = line.trim().split_once(" listening on ") {
                let port = address.rsplit(':').next().and_then(|p| p.parse().ok());
                ports.insert(door.to_string(), port.unwrap_or_else(|| panic!("{line:?}")));
            }
        }
        Server {
            dir,
            child,
            port: ports["sftp"],
            ports,
            _stdout: stdout,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    pub fn file(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join("local").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p
    }

    pub fn ssh_options(&self) -> Vec<String> {
        [
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["-i".into(), self.key().display().to_string()])
        .collect()
    }

    /// Runs an OpenSSH `sftp -b` batch as `user`, from the local folder.
    pub fn sftp(&self, user: &str, batch: &str) -> Output {
        let batch_file = self.file("batch", batch);
        Command::new("sftp")
            .args(self.ssh_options())
            .args(["-P", &self.port.to_string(), "-b"])
            .arg(&batch_file)
            .arg(format!("{user}@127.0.0.1"))
            .current_dir(self.dir.path().join("local"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Polls, through SFTP itself, until `name` can be fetched, and reads it.
    pub fn report(&self, name: &str) -> Json {
        let deadline = Instant::now() + Duration::from_secs(60);
        let local = self.dir.path().join("local").join(name);
        loop {
            let _ = std::fs::remove_file(&local);
            let out = self.sftp("acme", &format!("-get {name}\n"));
            if out.status.success() && local.exists() {
                return serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap();
            }
            assert!(Instant::now() < deadline, "no {name}: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn listing(&self, user: &str) -> String {
        let out = self.sftp(user, "ls -1\n");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `dropgate history` of acme, newest first.
    pub fn history(&self) -> String {
        let out = dropgate(&self.data())
            .args(["history", "--account", "acme", "--limit", "1000"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn python(&self, script: &str) -> Output {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .env("PORT", self.port.to_string())
            .env("PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Stops the server with SIGTERM, as a service manager would.
    pub fn stop(mut self) -> tempfile::TempDir {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const CLIENTS: &str =
    "client_code;client_business_name\nC0001;My company\nC0002;Other company\n";
pub const ITEMS: &str = "client_code;item_type;item_number;item_date_issue;item_date_due;item_amount_initial_inc_tax\n\
                     C0001;FAC;00000123;2025-12-05;2025-12-12;\"6 580,10\"\nC0002;AVO;7;2025-12-05;2025-12-12;10\n";

/// Skips a test that needs paramiko where it is not installed (`.ci/run`
/// installs it, so CI always runs these).
#[macro_export]
macro_rules! require_paramiko {
    () => {
        if !paramiko_available() {
            eprintln!("skipped: paramiko is not installed (.ci/run installs it)");
            return;
        }
    };
}

pub fn paramiko_available() -> bool {
    Command::new("python3")
        .args(["-c", "import paramiko"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Server {
    /// The FTP door's port.
    /// The URL of `path` at the HTTP door.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports["http"])
    }

    /// A new API token for `account`, made by `dropgate account token add`.
    pub fn token(&self, account: &str, label: &str) -> String {
        let out = dropgate(&self.data())
            .args(["account", "token", "add", account, label])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `curl -s` with `args`; the answer's body, and its status code as the
    /// last line.
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-S", "--max-time", "120", "-w", "\n%{http_code}"])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_string())
    }

    pub fn ftp_port(&self) -> u16 {
        self.ports["ftp"]
    }

    /// The account's folder on the server's disk.
    pub fn drop_folder(&self, account: &str) -> PathBuf {
        self.data().join("drop").join(account)
    }

    /// Runs a Python script with `PORT` (FTP), `FTPS_PORT` (implicit, if
    /// any), `PASSWORD` and `CERT` (the test certificate, if any) set.
    pub fn python_ftp(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("python3");
        c.arg("-c")
            .arg(script)
            .env("PORT", self.ftp_port().to_string())
            .env("PASSWORD", PASSWORD)
            .env("CERT", self.dir.path().join("cert.pem"))
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        if let Some(p) = self.ports.get("ftps") {
            c.env("FTPS_PORT", p.to_string());
        }
        c.output().unwrap()
    }
}

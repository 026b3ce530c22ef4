//! One FTP session: login, the commands, and the transfers.
//!
//! The completion rule of FTP (SPEC §3) lives in [`Session::store`]: a
//! `STOR` or `APPE` is complete when its data connection ended cleanly (over
//! TLS, with `close_notify`), no `ABOR` came, and the control connection is
//! still open; only then is the upload handed to
//! [`AccountArea::complete`] and answered 226. Anything else (`ABOR`, a
//! dropped control or data connection, a TLS connection that just stops)
//! leaves a partial upload, which [`AccountArea::abandon`] answers with
//! `UPLOAD_INCOMPLETE`. Plain FTP cannot tell a truncated upload whose
//! connections closed cleanly from a complete one; FTPS can.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::control::{Command, Control, Waiting};
use super::data::{self, DataPlan, DataStream};
use super::listing;
use super::{FtpDoor, TlsPolicy};
use crate::auth::AuthError;
use crate::doors::log_upload;
use crate::doors::sessions::canonical;
use crate::doors::sessions::{SessionGuard, SessionKey};
use crate::drop_area::{AccountArea, AreaError, Completion, Target, Upload};

/// Failed passwords on one connection before it is closed.
const MAX_PASSWORD_TRIES: u32 = 3;

/// Answers a connection that is refused before any FTP is spoken.
pub async fn refuse(mut stream: TcpStream, reply: &str) {
    use tokio::io::AsyncWriteExt;
    let _ = stream.write_all(format!("{reply}\r\n").as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Runs one session to its end.
pub async fn run(
    door: Arc<FtpDoor>,
    stream: TcpStream,
    peer: IpAddr,
    implicit_tls: bool,
    address_guard: SessionGuard,
    shutdown: CancellationToken,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut session = Session {
        door: door.clone(),
        peer,
        local,
        control: Control::new(stream),
        user: None,
        account: None,
        password_failures: 0,
        protected: implicit_tls,
        data_plan: DataPlan::None,
        restart_at: 0,
        rename_from: None,
        queued: VecDeque::new(),
        _address: address_guard,
    };
    if implicit_tls {
        let config = door
            .settings
            .tls_control
            .clone()
            .expect("implicit FTPS has a certificate");
        let handshake = session.control.start_tls(config);
        match tokio::time::timeout(door.settings.login_grace, handshake).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peer = %session.peer, error = %e, "implicit FTPS handshake failed");
                return;
            }
            Err(_) => return,
        }
    }
    if let Err(e) = session.serve(shutdown).await {
        tracing::debug!(peer = %session.peer, error = %e, "ftp session ended with an error");
    }
    session.control.close().await;
}

struct Session {
    door: Arc<FtpDoor>,
    peer: IpAddr,
    local: SocketAddr,
    control: Control,
    /// The name given by `USER`, waiting for `PASS`.
    user: Option<String>,
    account: Option<LoggedIn>,
    password_failures: u32,
    /// `PROT P`: data connections are TLS.
    protected: bool,
    data_plan: DataPlan,
    /// `REST`: where the next transfer starts.
    restart_at: u64,
    rename_from: Option<String>,
    /// Commands that arrived while a transfer was running.
    queued: VecDeque<Command>,
    _address: SessionGuard,
}

struct LoggedIn {
    area: AccountArea,
    _guard: SessionGuard,
}

/// How a session's loop goes on after a command.
enum Next {
    Continue,
    Quit,
}

/// What a download sends.
enum Outgoing {
    /// A file, from an offset (`REST`).
    File(std::fs::File, u64),
    /// A listing.
    Text(String),
}

/// How a transfer ended, seen from the control connection.
enum Ending<T> {
    Done(std::io::Result<T>),
    Aborted,
    ControlClosed,
    Stopping,
}

type Result<T> = std::io::Result<T>;

impl Session {
    async fn serve(&mut self, shutdown: CancellationToken) -> Result<()> {
        self.control.reply(220, "dropgate FTP ready").await?;
        let started = Instant::now();
        loop {
            let command = if let Some(queued) = self.queued.pop_front() {
                queued
            } else {
                let deadline = if self.account.is_none() {
                    self.door
                        .settings
                        .login_grace
                        .saturating_sub(started.elapsed())
                } else {
                    self.door.settings.idle_timeout
                };
                tokio::select! {
                    line = self.control.next_line() => match line? {
                        Some(command) => command,
                        None => return Ok(()),
                    },
                    _ = tokio::time::sleep(deadline) => {
                        let why = if self.account.is_none() { "no login in time" } else { "idle too long" };
                        tracing::info!(peer = %self.peer, why, "ftp session closed");
                        self.control.reply(421, &format!("Closing the connection: {why}.")).await?;
                        return Ok(());
                    }
                    _ = shutdown.cancelled() => {
                        self.control.reply(421, "The server is stopping.").await?;
                        return Ok(());
                    }
                }
            };
            if let Next::Quit = self.command(command, &shutdown).await? {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, command: Command, shutdown: &CancellationToken) -> Result<Next> {
        let Command { verb, arg } = command;
        let arg = arg.as_str();
        // Before login, only what leads to it.
        let before_login = matches!(
            verb.as_str(),
            "USER"
                | "PASS"
                | "AUTH"
                | "PBSZ"
                | "PROT"
                | "FEAT"
                | "SYST"
                | "QUIT"
                | "NOOP"
                | "HELP"
                | "OPTS"
                | "CCC"
        );
        if self.account.is_none() && !before_login {
            self.control
                .reply(530, "Please log in with USER and PASS.")
                .await?;
            return Ok(Next::Continue);
        }
        match verb.as_str() {
            "USER" => self.user(arg).await?,
            "PASS" => return self.pass(arg).await,
            "AUTH" => self.auth_tls(arg).await?,
            "PBSZ" => self.pbsz().await?,
            "PROT" => self.prot(arg).await?,
            "CCC" => {
                self.control
                    .reply(534, "The control connection stays protected.")
                    .await?
            }
            "FEAT" => self.feat().await?,
            "SYST" => self.control.reply(215, "UNIX Type: L8").await?,
            "OPTS" => self.opts(arg).await?,
            "NOOP" => self.control.reply(200, "OK").await?,
            "HELP" => self.control.reply(214, "See RFC 959 and RFC 4217.").await?,
            "QUIT" => {
                self.control.reply(221, "Goodbye.").await?;
                return Ok(Next::Quit);
            }
            "PWD" | "XPWD" => self.control.reply(257, "\"/\" is the drop area").await?,
            "CWD" | "XCWD" => self.cwd(arg).await?,
            "CDUP" | "XCUP" => self.control.reply(250, "Directory is \"/\".").await?,
            "TYPE" => self.type_(arg).await?,
            "MODE" => self.simple_option(arg, "S", "Mode S").await?,
            "STRU" => self.simple_option(arg, "F", "Structure F").await?,
            "ALLO" => {
                self.control
                    .reply(202, "No storage allocation necessary.")
                    .await?
            }
            "PASV" => self.pasv(false).await?,
            "EPSV" => self.epsv(arg).await?,
            "PORT" => self.port(data::parse_port(arg)).await?,
            "EPRT" => self.port(data::parse_eprt(arg)).await?,
            "REST" => self.rest(arg).await?,
            "STOR" => self.store(arg, false, shutdown).await?,
            "APPE" => self.store(arg, true, shutdown).await?,
            "RETR" => self.retrieve(arg, shutdown).await?,
            "LIST" | "NLST" | "MLSD" => self.list(&verb, arg, shutdown).await?,
            "MLST" => self.mlst(arg).await?,
            "SIZE" => self.size(arg).await?,
            "MDTM" => self.mdtm(arg).await?,
            "MFMT" => self.mfmt(arg).await?,
            "SITE" => self.site(arg).await?,
            "DELE" => self.dele(arg).await?,
            "RNFR" => self.rnfr(arg).await?,
            "RNTO" => self.rnto(arg).await?,
            "MKD" | "XMKD" | "RMD" | "XRMD" => {
                self.control
                    .reply(550, &AreaError::NoFolders.to_string())
                    .await?
            }
            "ABOR" => self.control.reply(225, "No transfer to abort.").await?,
            "STAT" => self.control.reply(211, "dropgate FTP: connected.").await?,
            "STOU" | "REIN" | "ACCT" | "SMNT" => {
                self.control
                    .reply(502, &format!("{verb} is not implemented."))
                    .await?
            }
            _ => {
                self.control
                    .reply(500, &format!("Unknown command {verb}."))
                    .await?
            }
        }
        Ok(Next::Continue)
    }

    fn area(&self) -> &AccountArea {
        &self.account.as_ref().expect("checked: logged in").area
    }

    /// Whether the session must be on TLS before it logs in.
    fn tls_required(&self) -> bool {
        self.door.settings.tls_policy == TlsPolicy::Required
    }

    async fn user(&mut self, name: &str) -> Result<()> {
        if self.account.is_some() {
            return self.control.reply(530, "Already logged in.").await;
        }
        if self.tls_required() && !self.control.is_tls() {
            return self
                .control
                .reply(530, "This server requires TLS: use AUTH TLS (FTPS) first.")
                .await;
        }
        self.user = Some(name.to_string());
        self.control.reply(331, "Password required.").await
    }

    async fn pass(&mut self, password: &str) -> Result<Next> {
        if self.account.is_some() {
            self.control.reply(230, "Already logged in.").await?;
            return Ok(Next::Continue);
        }
        let Some(user) = self.user.take() else {
            self.control.reply(503, "Send USER first.").await?;
            return Ok(Next::Continue);
        };
        let (auth, peer, pass) = (self.door.auth.clone(), self.peer, password.to_string());
        let name = user.clone();
        let checked = tokio::task::spawn_blocking(move || auth.password(peer, &name, &pass))
            .await
            .map_err(std::io::Error::other)?;
        let account = match checked {
            Ok(account) => account,
            Err(AuthError::Banned) => {
                self.control
                    .reply(
                        421,
                        "Too many failed logins from your address; try again later.",
                    )
                    .await?;
                return Ok(Next::Quit);
            }
            Err(e) => {
                if !matches!(e, AuthError::Denied) {
                    tracing::error!(error = %e, "password check failed");
                }
                let delay = self.door.auth.config().failure_delay_ms;
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                self.password_failures += 1;
                self.control.reply(530, "Login incorrect.").await?;
                if self.password_failures >= MAX_PASSWORD_TRIES {
                    return Ok(Next::Quit);
                }
                return Ok(Next::Continue);
            }
        };
        let Some(guard) = self.door.sessions.enter(
            SessionKey::Account(account.id),
            self.door.settings.max_sessions_per_account,
        ) else {
            tracing::warn!(peer = %self.peer, account = %account.name, "login refused: too many sessions for this account");
            self.control
                .reply(530, "Too many sessions for this account.")
                .await?;
            return Ok(Next::Continue);
        };
        let area = match self.door.area.account(account.id, &account.name) {
            Ok(area) => area,
            Err(e) => {
                tracing::error!(error = %e, account = %account.name, "drop area unavailable");
                self.control
                    .reply(421, "The drop area is unavailable.")
                    .await?;
                return Ok(Next::Quit);
            }
        };
        tracing::info!(peer = %self.peer, account = %account.name, method = "password",
            door = "ftp", tls = self.control.is_tls(), "login");
        self.account = Some(LoggedIn {
            area,
            _guard: guard,
        });
        self.control.reply(230, "Logged in.").await?;
        Ok(Next::Continue)
    }

    async fn auth_tls(&mut self, mechanism: &str) -> Result<()> {
        let Some(config) = self.door.settings.tls_control.clone() else {
            return self
                .control
                .reply(502, "TLS is not configured on this server.")
                .await;
        };
        if self.door.settings.tls_policy == TlsPolicy::Off {
            return self.control.reply(502, "TLS is off on this server.").await;
        }
        if !matches!(
            mechanism.trim().to_ascii_uppercase().as_str(),
            "TLS" | "SSL" | "TLS-C" | "TLS-P"
        ) {
            return self.control.reply(504, "Use AUTH TLS.").await;
        }
        if self.control.is_tls() {
            return self.control.reply(503, "TLS is already on.").await;
        }
        self.control
            .reply(234, "Proceed with the TLS handshake.")
            .await?;
        let handshake = self.control.start_tls(config);
        match tokio::time::timeout(self.door.settings.data_timeout, handshake).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no TLS handshake",
            )),
        }
    }

    async fn pbsz(&mut self) -> Result<()> {
        if !self.control.is_tls() {
            return self.control.reply(503, "PBSZ needs AUTH TLS first.").await;
        }
        self.control.reply(200, "PBSZ=0").await
    }

    async fn prot(&mut self, level: &str) -> Result<()> {
        if !self.control.is_tls() {
            return self.control.reply(503, "PROT needs AUTH TLS first.").await;
        }
        match level.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.protected = true;
                self.control
                    .reply(200, "Data connections will be protected.")
                    .await
            }
            "C" if self.tls_required() => {
                self.control
                    .reply(
                        534,
                        "This server requires protected data connections (PROT P).",
                    )
                    .await
            }
            "C" => {
                self.protected = false;
                self.control
                    .reply(200, "Data connections will be clear.")
                    .await
            }
            _ => self.control.reply(504, "Use PROT P or PROT C.").await,
        }
    }

    async fn feat(&mut self) -> Result<()> {
        let mut lines = vec!["Features:"];
        if self.door.settings.tls_policy != TlsPolicy::Off {
            lines.extend(["AUTH TLS", "PBSZ", "PROT"]);
        }
        lines.extend([
            "EPRT",
            "EPSV",
            "MDTM",
            "MFMT",
            "MLST type*;size*;modify*;perm*;",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
            "End",
        ]);
        self.control.reply(211, &lines.join("\n")).await
    }

    async fn opts(&mut self, arg: &str) -> Result<()> {
        let option = arg.trim().to_ascii_uppercase();
        if option.starts_with("UTF8") || option.starts_with("MLST") {
            self.control.reply(200, "OK").await
        } else {
            self.control.reply(501, "Unknown option.").await
        }
    }

    async fn cwd(&mut self, path: &str) -> Result<()> {
        match self.area().resolve(path) {
            Ok(Target::Root) => self.control.reply(250, "Directory is \"/\".").await,
            _ => {
                self.control
                    .reply(550, "The drop area has no folders.")
                    .await
            }
        }
    }

    async fn type_(&mut self, arg: &str) -> Result<()> {
        // Files are stored as received in both types: the importer reads
        // CRLF and LF alike, and byte counts stay exact for REST and APPE.
        match arg.trim().to_ascii_uppercase().as_str() {
            "I" | "L 8" => self.control.reply(200, "Type set to I.").await,
            "A" | "A N" => self.control.reply(200, "Type set to A.").await,
            _ => self.control.reply(504, "Use TYPE I or TYPE A.").await,
        }
    }

    async fn simple_option(&mut self, arg: &str, only: &str, what: &str) -> Result<()> {
        if arg.trim().eq_ignore_ascii_case(only) {
            self.control.reply(200, &format!("{what}.")).await
        } else {
            self.control.reply(504, &format!("Only {what}.")).await
        }
    }

    async fn pasv(&mut self, extended: bool) -> Result<()> {
        let settings = &self.door.settings;
        let listener = match data::listen_passive(self.local.ip(), settings.passive_ports.as_ref())
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "no passive port");
                return self
                    .control
                    .reply(425, "No passive port is free; try again.")
                    .await;
            }
        };
        let port = listener.local_addr()?.port();
        self.data_plan = DataPlan::Passive(listener);
        if extended {
            return self
                .control
                .reply(229, &format!("Entering Extended Passive Mode (|||{port}|)"))
                .await;
        }
        let ip = match (settings.passive_host, canonical(self.local.ip())) {
            (Some(host), _) => host,
            (None, IpAddr::V4(v4)) => v4,
            (None, IpAddr::V6(_)) => {
                self.data_plan = DataPlan::None;
                return self
                    .control
                    .reply(522, "PASV is IPv4 only; use EPSV.")
                    .await;
            }
        };
        let [a, b, c, d] = ip.octets();
        self.control
            .reply(
                227,
                &format!(
                    "Entering Passive Mode ({a},{b},{c},{d},{},{})",
                    port >> 8,
                    port & 0xFF
                ),
            )
            .await
    }

    async fn epsv(&mut self, arg: &str) -> Result<()> {
        if arg.trim().eq_ignore_ascii_case("ALL") {
            return self.control.reply(200, "EPSV ALL accepted.").await;
        }
        self.pasv(true).await
    }

    async fn port(&mut self, target: Option<SocketAddr>) -> Result<()> {
        let Some(target) = target else {
            return self.control.reply(501, "Cannot parse the address.").await;
        };
        if !data::active_target_allowed(target, self.peer) {
            tracing::warn!(peer = %self.peer, target = %target, "active data connection refused: not the client's own address");
            return self
                .control
                .reply(
                    504,
                    "Active mode only to your own address and an unprivileged port.",
                )
                .await;
        }
        self.data_plan = DataPlan::Active(target);
        self.control.reply(200, "PORT command successful.").await
    }

    async fn rest(&mut self, arg: &str) -> Result<()> {
        match arg.trim().parse::<u64>() {
            Ok(n) => {
                self.restart_at = n;
                self.control
                    .reply(350, &format!("Restarting at {n}."))
                    .await
            }
            Err(_) => self.control.reply(501, "REST needs a byte offset.").await,
        }
    }

    /// A file name from a client path, or the reply that refuses it.
    async fn file_name(&mut self, path: &str) -> Result<Option<String>> {
        match self.area().file_name(path) {
            Ok(name) => Ok(Some(name)),
            Err(e) => {
                self.refusal(&e).await?;
                Ok(None)
            }
        }
    }

    async fn refusal(&mut self, e: &AreaError) -> Result<()> {
        let code = match e {
            AreaError::Path(_) | AreaError::ReportName(_) => 553,
            AreaError::Io(_) | AreaError::Store(_) => 451,
            _ => 550,
        };
        if !e.is_refusal() {
            tracing::error!(error = %e, "ftp: drop area operation failed");
        }
        self.control.reply(code, &e.to_string()).await
    }

    /// Opens the data connection of the next transfer: the TCP connection
    /// first, then (after `150`) TLS when protected. `None` after a reply.
    async fn open_data(&mut self) -> Result<Option<tokio::net::TcpStream>> {
        if self.tls_required() && !self.protected {
            self.data_plan = DataPlan::None;
            self.control
                .reply(521, "Data connections must be protected: send PROT P.")
                .await?;
            return Ok(None);
        }
        let plan = std::mem::replace(&mut self.data_plan, DataPlan::None);
        match data::connect(plan, self.peer, self.door.settings.data_timeout).await {
            Ok(stream) => Ok(Some(stream)),
            Err(e) => {
                self.control
                    .reply(425, &format!("Cannot open the data connection: {e}."))
                    .await?;
                Ok(None)
            }
        }
    }

    async fn secure_data(&mut self, stream: tokio::net::TcpStream) -> Result<DataStream> {
        let tls = if self.protected {
            self.door.settings.tls_data.clone()
        } else {
            None
        };
        DataStream::open(stream, tls, self.door.settings.data_timeout).await
    }

    /// Runs a transfer while watching the control connection: an `ABOR`,
    /// the control connection closing, or the server stopping ends it.
    /// Other commands wait in `queued`.
    async fn watch<T>(
        control: &mut Control,
        queued: &mut VecDeque<Command>,
        transfer: impl std::future::Future<Output = Result<T>>,
        shutdown: &CancellationToken,
    ) -> Ending<T> {
        tokio::pin!(transfer);
        loop {
            tokio::select! {
                result = &mut transfer => return Ending::Done(result),
                line = control.next_line() => match line {
                    Ok(Some(c)) if c.verb == "ABOR" => return Ending::Aborted,
                    Ok(Some(c)) => queued.push_back(c),
                    Ok(None) | Err(_) => return Ending::ControlClosed,
                },
                _ = shutdown.cancelled() => return Ending::Stopping,
            }
        }
    }

    /// `STOR` and `APPE`: see the module documentation for when an upload
    /// is complete.
    async fn store(
        &mut self,
        path: &str,
        append: bool,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let restart_at = std::mem::take(&mut self.restart_at);
        let Some(name) = self.file_name(path).await? else {
            return Ok(());
        };
        let Some(stream) = self.open_data().await? else {
            return Ok(());
        };
        let area = self.area().clone();
        let mut upload = match area.create_upload(&name, !append && restart_at == 0) {
            Ok(u) => u,
            Err(e) => return self.refusal(&e).await,
        };
        let offset = if append { upload.bytes } else { restart_at };
        if !append && restart_at > 0 {
            upload.file().set_len(restart_at)?;
            upload.bytes = restart_at;
        }
        self.control
            .reply(150, &format!("Ok to send {name}."))
            .await?;
        let mut data = match self.secure_data(stream).await {
            Ok(d) => d,
            Err(e) => {
                self.finish_incomplete(upload, "data-connection TLS failed")
                    .await;
                return self
                    .control
                    .reply(425, &format!("TLS on the data connection failed: {e}."))
                    .await;
            }
        };
        let tls = data.is_tls();
        let ending = Self::watch(
            &mut self.control,
            &mut self.queued,
            data::receive(&mut data, &mut upload, offset),
            shutdown,
        )
        .await;
        match ending {
            Ending::Done(Ok(_)) => {
                // Our side of the clean end (TLS close_notify): clients
                // that wait for it (Python's ftplib) fail without.
                let _ = data.finish().await;
                // Plain FTP: the end of the data stream is all there is, so
                // look once more at the control connection: an ABOR or a
                // hang-up that arrived with it means the upload was cut off.
                // The file's flush comes first: it also gives a hang-up
                // that left with the data's end the time to arrive.
                if !tls {
                    tokio::task::block_in_place(|| upload.file().sync_data())?;
                }
                if !tls && let Some(reason) = self.cut_off_now() {
                    self.finish_incomplete(upload, reason).await;
                    return self.after_cut_off(reason).await;
                }
                self.complete(upload).await
            }
            Ending::Done(Err(e)) => {
                self.finish_incomplete(upload, "data connection failed")
                    .await;
                let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "the data connection closed without TLS close_notify".to_string()
                } else {
                    e.to_string()
                };
                self.control
                    .reply(
                        426,
                        &format!(
                            "Transfer failed, {name} is incomplete and will not be imported: {why}."
                        ),
                    )
                    .await
            }
            Ending::Aborted => {
                self.finish_incomplete(upload, "aborted").await;
                self.after_cut_off("aborted").await
            }
            Ending::ControlClosed => {
                self.finish_incomplete(upload, "control connection closed")
                    .await;
                Err(std::io::ErrorKind::ConnectionAborted.into())
            }
            Ending::Stopping => {
                self.finish_incomplete(upload, "server stopping").await;
                self.control.reply(421, "The server is stopping.").await?;
                Err(std::io::ErrorKind::ConnectionAborted.into())
            }
        }
    }

    /// Whether an `ABOR` or the end of the control connection is already
    /// there, without waiting for one; another command waits its turn.
    fn cut_off_now(&mut self) -> Option<&'static str> {
        loop {
            match self.control.waiting() {
                Waiting::Nothing => return None,
                Waiting::Command(c) if c.verb == "ABOR" => return Some("aborted"),
                Waiting::Command(c) => self.queued.push_back(c),
                Waiting::Closed => return Some("control connection closed"),
            }
        }
    }

    async fn after_cut_off(&mut self, reason: &str) -> Result<()> {
        if reason == "aborted" {
            self.control
                .reply(426, "Transfer aborted; the upload will not be imported.")
                .await?;
            self.control.reply(226, "ABOR successful.").await
        } else {
            Err(std::io::ErrorKind::ConnectionAborted.into())
        }
    }

    /// Hands a finished upload to the drop area (durable before the reply).
    async fn complete(&mut self, upload: Upload) -> Result<()> {
        let area = self.area().clone();
        let (name, bytes, started) = (upload.name.clone(), upload.bytes, upload.started);
        let completed = tokio::task::spawn_blocking(move || area.complete(upload))
            .await
            .map_err(std::io::Error::other)?;
        match completed {
            Ok(completion) => {
                log_upload(
                    "ftp",
                    self.peer,
                    &self.area().account_name,
                    &name,
                    bytes,
                    started,
                    &completion,
                );
                let text = match completion {
                    Completion::Queued(id) => {
                        format!("Transfer complete: {name} is queued for import as #{id}.")
                    }
                    Completion::Kept => {
                        format!("Transfer complete: {name} is kept until it is renamed.")
                    }
                };
                self.control.reply(226, &text).await
            }
            Err(e) => self.refusal(&e).await,
        }
    }

    async fn finish_incomplete(&mut self, upload: Upload, why: &'static str) {
        let area = self.area().clone();
        let peer = self.peer;
        let _ = tokio::task::spawn_blocking(move || {
            crate::doors::log_incomplete(
                "ftp",
                peer,
                &area.account_name,
                &upload.name,
                upload.bytes,
                why,
            );
            if let Err(e) = area.abandon(upload) {
                tracing::error!(error = %e, "could not answer for an incomplete upload");
            }
        })
        .await;
    }

    async fn retrieve(&mut self, path: &str, shutdown: &CancellationToken) -> Result<()> {
        let restart_at = std::mem::take(&mut self.restart_at);
        let Some(name) = self.file_name(path).await? else {
            return Ok(());
        };
        let file = match self.area().open_read(&name) {
            Ok(f) => f,
            Err(e) => return self.refusal(&e).await,
        };
        self.send(
            format!("Sending {name}."),
            Outgoing::File(file, restart_at),
            shutdown,
        )
        .await
    }

    /// Sends a file or a listing over the next data connection (`150`,
    /// TLS if protected, the bytes, `226`), watching the control connection.
    async fn send(
        &mut self,
        opening: String,
        outgoing: Outgoing,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let Some(stream) = self.open_data().await? else {
            return Ok(());
        };
        self.control.reply(150, &opening).await?;
        let mut data = match self.secure_data(stream).await {
            Ok(d) => d,
            Err(e) => {
                return self
                    .control
                    .reply(425, &format!("TLS on the data connection failed: {e}."))
                    .await;
            }
        };
        let sending = async {
            let n = match outgoing {
                Outgoing::File(file, offset) => data::send_file(&mut data, file, offset).await?,
                Outgoing::Text(text) => data::send_bytes(&mut data, text.as_bytes()).await?,
            };
            data.finish().await?;
            Ok(n)
        };
        let ending = Self::watch(&mut self.control, &mut self.queued, sending, shutdown).await;
        self.download_ended(ending).await
    }

    async fn download_ended(&mut self, ending: Ending<u64>) -> Result<()> {
        match ending {
            Ending::Done(Ok(_)) => self.control.reply(226, "Transfer complete.").await,
            Ending::Done(Err(e)) => {
                self.control
                    .reply(426, &format!("Transfer failed: {e}."))
                    .await
            }
            Ending::Aborted => {
                self.control.reply(426, "Transfer aborted.").await?;
                self.control.reply(226, "ABOR successful.").await
            }
            Ending::ControlClosed | Ending::Stopping => {
                Err(std::io::ErrorKind::ConnectionAborted.into())
            }
        }
    }

    async fn list(&mut self, verb: &str, arg: &str, shutdown: &CancellationToken) -> Result<()> {
        // `LIST -la` and the like: options are not paths.
        let path = arg
            .split_whitespace()
            .filter(|w| !w.starts_with('-'))
            .collect::<Vec<_>>()
            .join(" ");
        let entries = match self.area().resolve(&path) {
            Ok(Target::Root) => self.area().list(),
            Ok(Target::Name(name)) if verb != "MLSD" => self.area().stat(&name).map(|e| vec![e]),
            Ok(Target::Name(_)) => Err(AreaError::NoFolders),
            Err(e) => Err(e),
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => return self.refusal(&e).await,
        };
        let now = SystemTime::now();
        let text: String = match verb {
            "NLST" => entries.iter().map(|e| format!("{}\r\n", e.name)).collect(),
            "MLSD" => entries
                .iter()
                .map(|e| format!("{}\r\n", listing::facts(e)))
                .collect(),
            _ => entries.iter().map(|e| listing::list_line(e, now)).collect(),
        };
        self.send(
            "Here comes the listing.".into(),
            Outgoing::Text(text),
            shutdown,
        )
        .await
    }

    async fn mlst(&mut self, path: &str) -> Result<()> {
        let facts = match self.area().resolve(path) {
            Ok(Target::Root) => Ok(listing::root_facts()),
            Ok(Target::Name(name)) => self.area().stat(&name).map(|e| listing::facts(&e)),
            Err(e) => Err(e),
        };
        match facts {
            Ok(f) => {
                self.control
                    .reply(250, &format!("Listing\n {f}\nEnd"))
                    .await
            }
            Err(e) => self.refusal(&e).await,
        }
    }

    async fn size(&mut self, path: &str) -> Result<()> {
        let Some(name) = self.file_name(path).await? else {
            return Ok(());
        };
        match self.area().stat(&name) {
            Ok(e) => self.control.reply(213, &e.size.to_string()).await,
            Err(e) => self.refusal(&e).await,
        }
    }

    async fn mdtm(&mut self, path: &str) -> Result<()> {
        let Some(name) = self.file_name(path).await? else {
            return Ok(());
        };
        match self.area().stat(&name) {
            Ok(e) => self.control.reply(213, &listing::mdtm(e.modified)).await,
            Err(e) => self.refusal(&e).await,
        }
    }

    /// `MFMT time name`: like SFTP's SETSTAT, a no-op that succeeds on a
    /// file that is there or was just taken for import (SPEC §3.5).
    async fn mfmt(&mut self, arg: &str) -> Result<()> {
        let Some((time, path)) = arg.trim().split_once(' ') else {
            return self
                .control
                .reply(501, "MFMT needs a time and a file name.")
                .await;
        };
        self.no_op_on_file(path, 213, &format!("Modify={time}; {path}"))
            .await
    }

    /// `SITE CHMOD mode name` (FileZilla, WinSCP): a no-op, as `MFMT`.
    async fn site(&mut self, arg: &str) -> Result<()> {
        let mut words = arg.trim().splitn(3, ' ');
        match (
            words.next().map(|w| w.to_ascii_uppercase()),
            words.next(),
            words.next(),
        ) {
            (Some(site), Some(_mode), Some(path)) if site == "CHMOD" => {
                self.no_op_on_file(path, 200, "SITE CHMOD ignored: permissions are fixed here.")
                    .await
            }
            _ => {
                self.control
                    .reply(502, "Only SITE CHMOD, which changes nothing.")
                    .await
            }
        }
    }

    async fn no_op_on_file(&mut self, path: &str, code: u16, text: &str) -> Result<()> {
        let Some(name) = self.file_name(path).await? else {
            return Ok(());
        };
        if self.area().setstat_allowed(&name) {
            self.control.reply(code, text).await
        } else {
            self.refusal(&AreaError::NotFound(name)).await
        }
    }

    async fn dele(&mut self, path: &str) -> Result<()> {
        let Some(name) = self.file_name(path).await? else {
            return Ok(());
        };
        match self.area().remove(&name) {
            Ok(()) => self.control.reply(250, &format!("{name} deleted.")).await,
            Err(e) => self.refusal(&e).await,
        }
    }

    async fn rnfr(&mut self, path: &str) -> Result<()> {
        let Some(name) = self.file_name(path).await? else {
            return Ok(());
        };
        match self.area().stat(&name) {
            Ok(_) => {
                self.rename_from = Some(name);
                self.control.reply(350, "Ready for RNTO.").await
            }
            Err(e) => self.refusal(&e).await,
        }
    }

    async fn rnto(&mut self, path: &str) -> Result<()> {
        let Some(from) = self.rename_from.take() else {
            return self.control.reply(503, "Send RNFR first.").await;
        };
        let Some(to) = self.file_name(path).await? else {
            return Ok(());
        };
        let area = self.area().clone();
        let (from_name, to_name) = (from.clone(), to.clone());
        let renamed = tokio::task::spawn_blocking(move || area.rename(&from_name, &to_name))
            .await
            .map_err(std::io::Error::other)?;
        match renamed {
            Ok(completion) => {
                if let Completion::Queued(_) = completion {
                    log_upload(
                        "ftp",
                        self.peer,
                        &self.area().account_name,
                        &to,
                        0,
                        Instant::now(),
                        &completion,
                    );
                }
                self.control
                    .reply(250, &format!("Renamed {from} to {to}."))
                    .await
            }
            Err(e) => self.refusal(&e).await,
        }
    }
}
